"""kernels/substrate_coefficients.cu (backend cpu) against its reference,
Substrate.coefficients, and the step's uniform coefficients.

The kernel makes every substrate's D(x), a(x), b(x) in one pass: one thread per voxel reads
the cell densities and the vessel map once for the whole batch, then writes each
substrate's maps. Each expression is the reference's in its order, so float64 agrees bit
for bit and float32 to the rounding of the same operations (also bit for bit: NumPy rounds
a float32 array times a Python float in float32, as the kernel does).
"""
import numpy as np
import pytest

from spatialdtp.api import load_config
from spatialdtp.backends import get_backend
from spatialdtp.run.simulation import Simulation


def bench_simulation(backend, overrides=()):
    """bench_tissue3d's five substrates (oxygen and glucose from vessels, HGF and the drug
    hindered by CAFs, the chemokine secreted by persisters only) on a small grid."""
    cfg = load_config(["experiment=bench_tissue3d", "grid.shape=[6,5,7]",
                       f"backend={backend}", *overrides])
    return Simulation(cfg)


def random_cells(sim, seed=0):
    rng = np.random.default_rng(seed)
    for c in ("S", "P", "R", "F", "M"):
        sim.state[c][...] = rng.uniform(0.0, sim.capacity, sim.grid.shape)
    sim.state["glucose"][...] = rng.uniform(-0.1, 5.0, sim.grid.shape)   # max(c*, 0) used


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_pass_gives_every_substrates_maps_as_the_reference(dtype):
    backend = "cpu" if dtype == "float32" else "cpu64"
    sim = bench_simulation(backend)
    random_cells(sim)
    subs, st = sim.substrate_step.subs, sim.state
    levels = [float(s.cfg.blood) for s in subs]
    blocks = tuple(np.full((len(subs),) + sim.grid.shape, np.nan, sim.dtype) for _ in range(3))
    active = [True] * len(subs)
    got = sim.ops.coefficients_batch(subs, st, st.substrates, levels, blocks, active)
    for s, sub in enumerate(subs):
        want = sub.coefficients(st, st[sub.name], levels[s])
        varying = sub.varying()
        assert any(varying), sub.name
        for name, g, w, varies, block in zip("Dab", got[s], want, varying, blocks):
            if varies:
                assert g is not None and np.shares_memory(g, block[s])
                np.testing.assert_array_equal(g, np.broadcast_to(w, g.shape),
                                              err_msg=f"{sub.name} {name}")
            else:                 # a uniform coefficient: its row is not written
                assert g is None and np.isnan(block[s]).all(), f"{sub.name} {name}"


def test_a_substrate_left_out_of_the_batch_is_not_touched():
    sim = bench_simulation("cpu64")
    random_cells(sim, seed=1)
    subs, st = sim.substrate_step.subs, sim.state
    blocks = tuple(np.full((len(subs),) + sim.grid.shape, np.nan) for _ in range(3))
    active = [s != 0 for s in range(len(subs))]
    got = sim.ops.coefficients_batch(subs, st, st.substrates,
                                     [float(s.cfg.blood) for s in subs], blocks, active)
    assert got[0] is None and all(np.isnan(b[0]).all() for b in blocks)
    assert got[1] is not None and not np.isnan(blocks[1][1]).any()     # glucose's a


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_uniform_coefficients_are_the_free_levels(backend):
    """Without CAF hindrance HGF's D is uniform, and it is the free level's D0/R (R = 1 +
    sites/Kd, the binding retardation), as the reference's Substrate.coefficients gives
    it: not the unbound D0 of the config (which diffused bound HGF R ≈ 113 times too
    fast)."""
    sim = bench_simulation(backend, ["substrates.hgf.hindrance=0"])
    step = sim.substrate_step
    s = [sub.name for sub in step.subs].index("hgf")
    hgf = step.subs[s]
    assert hgf.retardation > 100
    D, a, b, _ = step._coefficients(sim.state, sim.state.substrates,
                                    sim.treatment.plasma())[s]
    assert isinstance(D, float)
    assert D == pytest.approx(hgf.cfg.diffusion / hgf.retardation, rel=1e-12)
    assert D == hgf.coefficients(sim.state, sim.state["hgf"], 0.0)[0]


def test_each_plane_a_batch_needs_is_read_even_when_one_substrate_alone_needs_it():
    """The kernel loads only the planes some substrate reads: the chemokine, computed
    alone, reads P (secretion) and, hindered, F (for D) and nothing else."""
    sim = bench_simulation("cpu64", ["substrates.chemokine.hindrance=2.0"])
    random_cells(sim, seed=2)
    subs, st = sim.substrate_step.subs, sim.state
    s = [sub.name for sub in subs].index("chemokine")
    chemokine = subs[s]
    assert chemokine.varying() == (True, False, True)
    assert {j for j, r in chemokine.cfg.secretion.items() if r > 0} == {"P"}
    blocks = tuple(np.full((len(subs),) + sim.grid.shape, np.nan) for _ in range(3))
    active = [k == s for k in range(len(subs))]
    got = sim.ops.coefficients_batch(subs, st, st.substrates,
                                     [float(x.cfg.blood) for x in subs], blocks, active)
    D, _a, b = chemokine.coefficients(st, st["chemokine"], 0.0)
    np.testing.assert_array_equal(got[s][0], D)
    np.testing.assert_array_equal(got[s][2], b)
