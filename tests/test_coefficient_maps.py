"""Coefficients from files (``substrates.<name>.maps``) and a tissue from arrays alone.

The layered slab: 0 <= x <= L, c = c0 on the face x = 0, no flux at x = L; D = D1 and no
sink for x < h, D = D2 and first-order uptake k for x > h (both from maps). At steady state
the left layer is linear, c = c0 − J x/D1, and the right one is c = A cosh((L − x)/λ),
λ = √(D2/k); continuity of c and of the flux D c' at x = h give

    A = c0 / (cosh β + (h D2/(D1 λ)) sinh β),   β = (L − h)/λ.
"""
import math

import numpy as np
import pytest

from spatialdtp.api import load_config
from spatialdtp.config import ConfigError
from spatialdtp.run.simulation import Simulation

C0, D1, D2, K, L = 1.0, 1000.0, 250.0, 0.01, 400.0
#: no cells anywhere, and none that move: a step of any length is the substrate solve
EMPTY = ["tissue=from_files", "treatment=none", "backend=numpy64", "numerics.rtol=1e-12",
         "cells.pressure_mobility=0",
         *(f"cells.{c}.motility=0" for c in ("sensitive", "persister", "resistant",
                                              "fibroblast", "macrophage"))]


def slab_exact(x):
    lam = math.sqrt(D2 / K)
    beta, h = (L - L / 2) / lam, L / 2
    A = C0 / (math.cosh(beta) + h * D2 / (D1 * lam) * math.sinh(beta))
    J = D2 * A * math.sinh(beta) / lam
    return np.where(x < h, C0 - J * x / D1, A * np.cosh((L - x) / lam))


def slab_config(tmp_path, n, extra=()):
    """Oxygen alone matters: no cells, no vessels, no decay; the maps give D and k."""
    shape = (3, n)
    x = (np.arange(n) + 0.5) * (L / n)
    np.save(tmp_path / "D.npy", np.broadcast_to(np.where(x < L / 2, D1, D2), shape))
    np.save(tmp_path / "k.npy", np.broadcast_to(np.where(x < L / 2, 0.0, K), shape))
    np.save(tmp_path / "v.npy", np.zeros(shape))
    return load_config(EMPTY + [
        f"grid.shape=[3,{n}]", f"grid.dx={L / n}",
        f"+tissue.files.vessels={tmp_path / 'v.npy'}", "substrates.oxygen.decay=0",
        "substrates.oxygen.initial=0", "+substrates.oxygen.boundary.x-=fixed",
        f"substrates.oxygen.boundary_value={C0}",
        f"substrates.oxygen.maps.diffusion={tmp_path / 'D.npy'}",
        f"substrates.oxygen.maps.uptake={tmp_path / 'k.npy'}", *extra]), x


def steady(cfg):
    """One backward-Euler step of Δt = 1e11 minutes: (I + Δt A) c = c + Δt b is A c = b
    to relative 1/(Δt λ_min), λ_min >= D/(2L)² ~ 1e-3/min: 1e-8."""
    sim = Simulation(cfg)
    sim.step(1e11)
    return sim.field("oxygen")


def test_layered_slab_from_maps_converges_to_its_closed_form_at_second_order(tmp_path):
    """Cell-centred finite volumes with the interface on a face: second order. Observed
    order between dx = 20, 10, 5 µm asserted > 1.7 (first order would give 1)."""
    errs = []
    for n in (20, 40, 80):
        cfg, x = slab_config(tmp_path, n)
        c = steady(cfg)
        assert np.ptp(c, axis=0).max() < 1e-9        # uniform across y
        errs.append(float(np.abs(c[1] - slab_exact(x)).max()))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders > 1.7), (errs, orders)


def test_uniform_maps_are_the_scalar_coefficients(tmp_path):
    """A uniform diffusion map D and uptake map k give the fields of diffusion = D and
    decay = k, and a secretion map s the steady level s/k of a source s: the same
    equations, so the same numbers to the solver's tolerance."""
    shape = (6, 7)
    for name, value in (("D", 700.0), ("k", 0.02), ("s", 0.3), ("v", 0.0)):
        np.save(tmp_path / f"{name}.npy", np.full(shape, value))
    base = EMPTY + ["grid.shape=[6,7]", "numerics.rtol=1e-13", "run.dt=30",
                    f"+tissue.files.vessels={tmp_path / 'v.npy'}"]
    chemokine = np.random.default_rng(1).uniform(0.0, 2.0, shape)
    np.save(tmp_path / "q.npy", chemokine)
    base_q = base + [f"+tissue.files.chemokine={tmp_path / 'q.npy'}"]
    mapped = Simulation(load_config(base_q + [
        f"substrates.chemokine.maps.diffusion={tmp_path / 'D.npy'}",
        f"substrates.chemokine.maps.uptake={tmp_path / 'k.npy'}",
        "substrates.chemokine.decay=0", "substrates.chemokine.diffusion=1"]))
    scalar = Simulation(load_config(base_q + ["substrates.chemokine.diffusion=700",
                                            "substrates.chemokine.decay=0.02"]))
    for _ in range(5):
        mapped.step()
        scalar.step()
    np.testing.assert_allclose(mapped.field("chemokine"), scalar.field("chemokine"),
                               rtol=1e-10, atol=1e-14)
    source = Simulation(load_config(base + [
        f"substrates.glucose.maps.secretion={tmp_path / 's.npy'}",
        "substrates.glucose.decay=0.02", "substrates.glucose.initial=0"]))
    source.step(1e11)      # c = Δt s/(1 + Δt k): s/k to relative 1/(Δt k) = 5e-10
    np.testing.assert_allclose(source.field("glucose"), 0.3 / 0.02, rtol=1e-9)


@pytest.mark.parametrize("array,match", [
    (np.ones((5, 5)), r"substrates.oxygen.maps.diffusion=.*shape \(5, 5\)"),
    (-np.ones((6, 7)), r"substrates.oxygen.maps.diffusion=.*negative"),
    (np.full((6, 7), np.nan), r"substrates.oxygen.maps.diffusion=.*NaN"),
])
def test_bad_maps_are_refused_by_name(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError, match=match):
        Simulation(load_config(["grid.shape=[6,7]", "backend=numpy",
                                f"substrates.oxygen.maps.diffusion={tmp_path / 'bad.npy'}"]))


def test_a_drugs_map_is_named_by_its_transport_key(tmp_path):
    np.save(tmp_path / "bad.npy", np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"treatment.drugs.drug.transport.maps.uptake="):
        Simulation(load_config(["grid.shape=[6,7]", "backend=numpy", "treatment=continuous",
                                f"treatment.drugs.drug.transport.maps.uptake="
                                f"{tmp_path / 'bad.npy'}"]))


def test_from_files_with_arrays_alone_generates_nothing(tmp_path):
    S = np.random.default_rng(0).uniform(0.0, 1.0, (6, 7))
    np.save(tmp_path / "S.npy", S)
    sim = Simulation(load_config(["grid.shape=[6,7]", "backend=numpy64", "tissue=from_files",
                                  f"+tissue.files.S={tmp_path / 'S.npy'}"]))
    np.testing.assert_array_equal(sim.field("S"), S)
    for name in ("P", "R", "F", "M"):
        assert not sim.field(name).any(), name
    assert not sim.backend.to_host(sim.state.vessels).any()


def test_from_files_with_no_file_at_all_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"tissue.files=.*labels.path"):
        Simulation(load_config(["grid.shape=[6,7]", "tissue=from_files"]))


# ------------------------------------------------------------------ fixed-value voxels
# A column of fixed voxels at the centre of the slab 0 <= x <= L (no flux at both ends),
# oxygen decaying at K and diffusing at D: at steady state c'' = c/λ², c = V at the column,
# c' = 0 at the walls, so c = V cosh((L/2 − r)/λ) / cosh(L/2/λ), r = |x − L/2|, λ = √(D/K).
V, LF = 2.0, 420.0


def fixed_column_config(tmp_path, n, backend="numpy64"):
    """n odd: the centre voxel's centre is x = L/2, where the column holds V."""
    fixed = np.full((3, n), np.nan)
    fixed[:, n // 2] = V
    np.save(tmp_path / "fixed.npy", fixed)
    np.save(tmp_path / "v.npy", np.zeros((3, n)))
    cfg = load_config(EMPTY + [
        f"backend={backend}", f"grid.shape=[3,{n}]", f"grid.dx={LF / n}",
        f"+tissue.files.vessels={tmp_path / 'v.npy'}", f"substrates.oxygen.decay={K}",
        f"substrates.oxygen.diffusion={D1}", "substrates.oxygen.initial=0",
        f"substrates.oxygen.maps.fixed={tmp_path / 'fixed.npy'}"])
    return cfg, (np.arange(n) + 0.5) * (LF / n)


def test_fixed_voxels_inside_the_tissue_give_the_cosh_profile_at_second_order(tmp_path):
    """The fixed voxels sit on voxel centres and their neighbours couple to them across one
    voxel: the centred difference of a smooth profile, second order (observed orders over
    dx = 20, 9.8, 4.8 µm asserted > 1.8; first order would give 1). The column holds V."""
    lam = math.sqrt(D1 / K)
    errs, dxs = [], []
    for n in (21, 43, 87):
        cfg, x = fixed_column_config(tmp_path, n)
        c = steady(cfg)
        assert np.all(c[:, n // 2] == V)
        exact = V * np.cosh((LF / 2 - np.abs(x - LF / 2)) / lam) / math.cosh(LF / 2 / lam)
        errs.append(float(np.abs(c[1] - exact).max()))
        dxs.append(LF / n)
    orders = np.log(np.array(errs[:-1]) / errs[1:]) / np.log(np.array(dxs[:-1]) / dxs[1:])
    assert np.all(orders > 1.8), (errs, orders)


def ring_map(tmp_path, shape, value):
    """A ring of fixed voxels (a perfused vessel wall seen in section), NaN elsewhere."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    ring = np.abs(np.hypot(yy - shape[0] / 3, xx - shape[1] / 2) - 5) < 1.0
    fixed = np.where(ring, value, np.nan)
    np.save(tmp_path / "ring.npy", fixed)
    return ring, str(tmp_path / "ring.npy")


@pytest.mark.parametrize("scheme", ["backward_euler", "tr_bdf2", "crank_nicolson"])
def test_fixed_voxels_hold_their_value_exactly_in_a_living_tissue(tmp_path, scheme):
    """Cells take the oxygen up around the ring and the tumour consumes it; the ring starts
    and stays at its value (30 mmHg, not the tissue's initial 38) at every step, on every
    time scheme, and the solves converge."""
    ring, path = ring_map(tmp_path, (40, 40), 30.0)
    sim = Simulation(load_config(["backend=numpy", "grid.shape=[40,40]", "run.dt=30",
                                  "tissue.tumour.radius=200",
                                  f"numerics.scheme={scheme}", "treatment=none",
                                  f"substrates.oxygen.maps.fixed={path}"]))
    assert np.all(sim.field("oxygen")[ring] == np.float32(30.0))
    for _ in range(6):
        sim.step()
        values = sim.substrate_step.report.step_values()
        assert values["solver_unconverged_oxygen"] == 0
        o2 = sim.field("oxygen")
        assert np.all(o2[ring] == np.float32(30.0))
        assert o2[~ring].min() < 37.9                  # the free tissue does evolve


@pytest.mark.parametrize("backend", ["cpu", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_a_fixed_ring_is_the_same_run_on_every_backend(tmp_path, backend):
    """The penalty and the put-back are array expressions, so the compiled backends run
    them as the reference does (float64: summation order only)."""
    from spatialdtp.backends import get_backend

    _, path = ring_map(tmp_path, (26, 21), 38.0)
    drug = np.full((26, 21), np.nan)
    drug[:3, :] = 0.5                                  # a drug reservoir along one edge
    np.save(tmp_path / "drug.npy", drug)
    overrides = ["grid.shape=[26,21]", "grid.dx=20", "run.dt=20", "numerics.rtol=1e-12",
                 "tissue.tumour.radius=150", "run.progress=false",
                 "backend.precision=float64", "treatment=continuous", "treatment.lead_in_days=0",
                 f"substrates.oxygen.maps.fixed={path}",
                 f"treatment.drugs.drug.transport.maps.fixed={tmp_path / 'drug.npy'}"]
    fields = {}
    for name in ("numpy", backend):
        sim = Simulation(load_config(overrides), get_backend(name))
        sim.run_until(days=0.25)
        fields[name] = sim.fields()
    assert np.all(fields[backend]["drug"][:3] == 0.5)
    for name, ref in fields["numpy"].items():
        scale = max(float(np.abs(ref).max()), 1e-300)
        assert float(np.abs(fields[backend][name] - ref).max()) / scale <= 1e-10, name


@pytest.mark.parametrize("values,match", [
    (np.full((6, 7), np.inf), r"substrates.oxygen.maps.fixed=.*infinite"),
    (np.where(np.eye(6, 7) > 0, -1.0, np.nan), r"substrates.oxygen.maps.fixed=.*negative"),
    (np.ones((6, 7), dtype=complex), r"substrates.oxygen.maps.fixed=.*dtype complex"),
    (np.ones((7, 6)), r"substrates.oxygen.maps.fixed=.*shape \(7, 6\)"),
])
def test_bad_fixed_maps_are_refused_by_name(tmp_path, values, match):
    np.save(tmp_path / "bad.npy", values)
    with pytest.raises(ValueError, match=match):
        Simulation(load_config(["grid.shape=[6,7]", "backend=numpy",
                                f"substrates.oxygen.maps.fixed={tmp_path / 'bad.npy'}"]))


def test_an_all_nan_fixed_map_fixes_nothing(tmp_path):
    np.save(tmp_path / "free.npy", np.full((6, 7), np.nan))
    base = ["grid.shape=[6,7]", "backend=numpy64", "run.dt=30"]
    free = Simulation(load_config(base + [f"substrates.oxygen.maps.fixed={tmp_path / 'free.npy'}"]))
    plain = Simulation(load_config(base))
    for sim in (free, plain):
        sim.step()
    np.testing.assert_array_equal(free.field("oxygen"), plain.field("oxygen"))
