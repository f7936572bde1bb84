"""The fused cell-kinetics kernel (kernels/cell_kinetics.cu) against its NumPy reference,
:func:`spatialdtp.numerics.cell_kinetics.react_state`, on random states that reach every branch."""
import copy

import numpy as np
import pytest

from spatialdtp.config import CELL_TYPES, CellsConfig, DrugConfig, TreatmentConfig
from spatialdtp.model.cells import CellKinetics
from spatialdtp.model.grid import Grid
from spatialdtp.model.state import FieldLayout, State
from spatialdtp.numerics.cell_kinetics import react_state

CAP = 3.2
SHAPES = {2: (17, 23), 3: (5, 7, 9)}       # odd sizes: no accidental alignment
DTYPES = (np.float64, np.float32)

# Tolerances. The kernel keeps the reference's operation order, and constants that the
# reference combines in Python double arrive pre-combined, so the two differ only where
# libm's exp/expm1/pow and NumPy's (SIMD) versions round differently, by an ulp or a few,
# and in what such differences become downstream. Each flow is multiplicative (N e^{rτ},
# S − moved, ...), so a relative error of a rate passes to N with condition ~1 and a
# sub-step chains about ten of them: measured ≤ 6 ulp of N in both precisions. But some
# factors are differences of numbers near 1, exact only to an absolute eps: 1 − E (ρ, at
# E → 1), 1 − B, 1 − E_epi, free = 1 − ΣN/capacity. Their error is eps × the rate at full
# effect, so what such a flow moves is off by ~eps·k·Στ·N, which a density made mostly by
# that flow shows as a large relative error (seen: 35 ulp of an S refilled only by
# reversion at E = 0.99; 150 ulp of a small M fed by the TAM source ψ·free). Hence each
# density is compared on |N| + k_max·Στ·(largest density of the voxel) (+ ψ·Στ for M):
#     |kernel − reference| <= RTOL·(|N| + k_max Στ max_j N_j [+ ψ Στ])
# with k_max the largest rate constant. float64: 1e-12 (~4500 ulp); float32 (eps 6e-8):
# 2e-6 (~32 ulp). A wrong index changes a flow by O(1), i.e. N by ~k·τ·N ≫ that bound.
RTOL = {np.float64: 1e-12, np.float32: 2e-6}


def fast_cells(kill_model="constant"):
    """Rates raised so that one sub-step moves every process well above rounding."""
    c = CellsConfig(kill_model=kill_model)
    c.sensitive.growth, c.sensitive.kill = 2e-3, 3e-3
    c.persister.growth, c.persister.kill = 2e-4, 5e-4
    c.resistant.kill = 1e-4
    c.switching.alpha0, c.switching.alpha_drug = 1e-4, 1e-3
    c.switching.rho0, c.switching.mu = 5e-4, 2e-4
    c.macrophage.recruitment, c.macrophage.baseline_recruitment = 5e-3, 1e-3
    c.fibroblast.growth, c.fibroblast.death = 4e-4, 1e-4   # CAF turnover (off by default)
    return c


def drug(cls, ec50=0.3, hill=1.0, emax=1.0, kill_rate=0.0):
    return DrugConfig(drug_class=cls, ec50=ec50, hill=hill, emax=emax, kill_rate=kill_rate)


#: two drugs of every class (so that Bliss/HSA really combine); Hill exponents below and
#: above 1, and 1, 2, 1/2 (where the kernel avoids pow, as NumPy's ** does)
EVERY_CLASS = {
    "tki": drug("targeted", 0.1, 1.0), "tki2": drug("targeted", 0.5, 2.0, 0.8),
    "kdm5i": drug("epigenetic", 0.5, 0.7), "hdaci": drug("epigenetic", 0.2, 1.5, 0.9),
    "met_i": drug("met", 0.01, 1.0), "met_i2": drug("met", 0.05, 3.0, 0.7),
    "oxphos_i": drug("oxphos", 0.01, 1.0, 1.0, 1e-3), "ox2": drug("oxphos", 0.1, 2.0, 0.6, 4e-3),
    "gpx4_i": drug("gpx4", 0.1, 1.2, 1.0, 1e-3), "gpx4_b": drug("gpx4", 0.3, 0.5, 1.0, 2e-3),
    "fao_i": drug("fao", 0.2, 4.0, 1.0, 5e-4), "fao_b": drug("fao", 0.05, 0.5, 0.5, 3e-3),
}


def random_state(ndim, dtype, drugs, seed=0, scale=1.0, extra_substrate=False):
    """Substrates spanning every ramp of the environment (O2 0-200 mmHg across the growth,
    hypoxia and necrosis thresholds, glucose around K and the starvation level), drugs from
    negative round-off to far above EC50 (and past the Hill cap), densities from empty to
    over capacity (free = 0), vessels on a random subset."""
    rng = np.random.default_rng(seed)
    subs = ("oxygen", "glucose", "hgf", "chemokine") + (("lactate",) if extra_substrate else ())
    layout = FieldLayout(substrates=subs + tuple(drugs), drugs=tuple(drugs))
    grid = Grid(SHAPES[ndim], 20.0)
    shape = grid.shape
    st = State(grid, layout, np, dtype)
    st["oxygen"] = rng.uniform(0.0, 200.0, shape)
    st["glucose"] = rng.uniform(0.0, 1.0, shape) * rng.choice([0.1, 1.0], shape)
    st["glucose"][rng.random(shape) < 0.05] = 0.0     # 0/0 where K_G or G_st is 0
    st["hgf"] = rng.uniform(0.0, 60.0, shape)
    st["chemokine"] = rng.uniform(0.0, 3.0, shape)
    for name in drugs:
        c = 10.0 ** rng.uniform(-4.0, 2.0, shape)
        c[rng.random(shape) < 0.05] = -1e-9           # solver round-off
        c[rng.random(shape) < 0.03] = 1e35            # past the Hill cap
        c[rng.random(shape) < 0.03] = 0.0
        st[name] = c
    total = rng.uniform(0.0, 1.3 * CAP, shape)
    parts = rng.dirichlet([4.0, 1.0, 0.5, 1.0, 0.5], shape)
    for k, name in enumerate(CELL_TYPES):
        st[name] = scale * total * parts[..., k]
    st["S"][rng.random(shape) < 0.05] = 0.0
    st.vessels[...] = (rng.random(shape) < 0.3) * rng.uniform(0.2, 1.0, shape)
    return st


def run_both(cpu, st, cells_cfg, treatment, taus, cap=CAP):
    """Cell fields after the reference and after the kernel, from the same state."""
    ref, ker = st.copy(), st.copy()
    kin_ref = CellKinetics(cells_cfg, cap, ref.vessels, np)
    kin_ker = CellKinetics(cells_cfg, cap, ker.vessels, np)
    ops = cpu.ops(st.dtype)
    for tau in taus:
        react_state(ref, kin_ref, treatment, tau)
        ops.react_cells(ker, kin_ker, treatment, tau)
    # substrates, drugs and exposure maps are read, never written
    untouched = [i for n, i in st.layout.index.items() if n not in CELL_TYPES]
    assert np.array_equal(ker.data[untouched], st.data[untouched])
    return ref, ker


def rate_scale(cells_cfg, drugs):
    """k_max: the largest per-capita rate (1/min) any flow of the model can reach."""
    c, sw, e = cells_cfg, cells_cfg.switching, cells_cfg.environment
    hazard = sum(d.kill_rate for d in drugs.values())
    return max(c.sensitive.growth, c.sensitive.kill, c.sensitive.death, c.persister.growth,
               c.persister.kill + hazard, c.resistant.kill, c.fibroblast.growth,
               c.macrophage.death, sw.rho0, sw.mu, e.necrosis_rate + e.starvation_rate,
               sw.alpha0 + sw.alpha_drug * (1 + sw.beta_hgf) * (1 + sw.beta_hypoxia))


def assert_cells_match(ref, ker, dtype, cells_cfg, drugs, taus):
    """Every cell field agrees to the bound derived above."""
    rtol = RTOL[np.dtype(dtype).type]
    cells = np.stack([ref[n] for n in CELL_TYPES]).astype(np.float64)
    voxel = np.abs(cells).max(axis=0) * rate_scale(cells_cfg, drugs) * sum(taus)
    source = cells_cfg.macrophage.recruitment * sum(taus)
    for name in CELL_TYPES:
        r, k = ref[name].astype(np.float64), ker[name]
        assert k.dtype == np.dtype(dtype)
        assert np.all(np.isfinite(k)) and np.all(k >= 0)
        floor = voxel + (source if name == "M" else 0.0) + 1e-300
        err = np.abs(k - r) / (np.abs(r) + floor)
        worst = np.unravel_index(np.argmax(err), err.shape)
        assert err.max() <= rtol, (name, err.max(), worst, r[worst], k[worst])


def treatment_of(drugs, combination="bliss"):
    return TreatmentConfig(name="t", combination=combination, drugs=copy.deepcopy(drugs))


def check(cpu, ndim, dtype, drugs, combination="bliss", cells_cfg=None, taus=(10.0,),
          scale=1.0, seed=0):
    cells_cfg = fast_cells() if cells_cfg is None else cells_cfg
    st = random_state(ndim, dtype, list(drugs), seed=seed, scale=scale)
    ref, ker = run_both(cpu, st, cells_cfg, treatment_of(drugs, combination), taus)
    assert_cells_match(ref, ker, dtype, cells_cfg, drugs, taus)
    # the step did something: a kernel that skipped the update would not pass
    assert not np.allclose(ref.cells, st.cells, rtol=1e-4, atol=0)


params = pytest.mark.parametrize("ndim,dtype", [(d, t) for d in (2, 3) for t in DTYPES],
                                 ids=lambda v: str(v) if isinstance(v, int) else
                                 np.dtype(v).name)


@params
def test_cell_kinetics_matches_reference_without_drugs(cpu, ndim, dtype):
    check(cpu, ndim, dtype, {})


@params
def test_cell_kinetics_matches_reference_with_one_targeted_drug(cpu, ndim, dtype):
    check(cpu, ndim, dtype, {"drug": drug("targeted", 0.1, 1.0)})


@params
@pytest.mark.parametrize("combination", ["bliss", "hsa"])
def test_cell_kinetics_matches_reference_with_every_drug_class(cpu, ndim, dtype, combination):
    check(cpu, ndim, dtype, EVERY_CLASS, combination)


@params
def test_cell_kinetics_matches_reference_with_one_drug_of_each_class(cpu, ndim, dtype):
    # a lone drug of a class is its effect itself under Bliss (not 1 − (1 − E))
    one_each = {k: EVERY_CLASS[k] for k in ("tki", "kdm5i", "met_i", "oxphos_i", "gpx4_i",
                                            "fao_i")}
    check(cpu, ndim, dtype, one_each, "bliss")


@params
def test_cell_kinetics_matches_reference_with_norton_simon_kill(cpu, ndim, dtype):
    check(cpu, ndim, dtype, EVERY_CLASS, cells_cfg=fast_cells("norton_simon"))


@params
def test_cell_kinetics_matches_reference_without_glucose_limit_or_starvation(cpu, ndim, dtype):
    c = fast_cells()
    c.environment.glucose_k = 0.0
    c.environment.glucose_starvation = 0.0
    check(cpu, ndim, dtype, {"drug": drug("targeted")}, cells_cfg=c)


@params
def test_cell_kinetics_matches_reference_at_large_tau_and_tiny_densities(cpu, ndim, dtype):
    check(cpu, ndim, dtype, EVERY_CLASS, taus=(60.0,), scale=1e-20)
    check(cpu, ndim, dtype, EVERY_CLASS, taus=(60.0,), seed=1)


@params
def test_cell_kinetics_matches_reference_at_default_rates(cpu, ndim, dtype):
    c = CellsConfig()
    c.macrophage.recruitment = 5e-2        # TAM source well above the densities' rounding
    check(cpu, ndim, dtype, {"drug": drug("targeted"), "kdm5i": drug("epigenetic", 0.5)},
          cells_cfg=c, taus=(5.0,))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_cell_kinetics_parameters_are_cached_but_tau_is_not(cpu, dtype):
    """Successive sub-steps of different τ reuse the packed parameters; two kinetics (here:
    two kill models) on one ops do not share them."""
    st = random_state(2, dtype, ["tki", "met_i"], seed=3)
    drugs = {k: EVERY_CLASS[k] for k in ("tki", "met_i")}
    for model in ("constant", "norton_simon"):
        cells_cfg = fast_cells(model)
        taus = (10.0, 2.5, 30.0)
        ref, ker = run_both(cpu, st, cells_cfg, treatment_of(drugs), taus)
        assert_cells_match(ref, ker, dtype, cells_cfg, drugs, taus)


def test_cell_kinetics_reads_substrates_by_layout_index(cpu):
    # an extra substrate before the drugs shifts every drug plane
    drugs = {k: EVERY_CLASS[k] for k in ("tki", "kdm5i", "oxphos_i")}
    st = random_state(3, np.float64, list(drugs), seed=4, extra_substrate=True)
    st["lactate"] = 1e6
    ref, ker = run_both(cpu, st, fast_cells(), treatment_of(drugs), (10.0,))
    assert_cells_match(ref, ker, np.float64, fast_cells(), drugs, (10.0,))


def test_cell_kinetics_rejects_what_the_reference_rejects(cpu):
    st = random_state(2, np.float64, ["tki"])
    ops = cpu.ops(np.float64)
    kin = CellKinetics(fast_cells(), CAP, st.vessels, np)
    with pytest.raises(KeyError, match="absent"):
        ops.react_cells(st, kin, treatment_of({"absent": drug("targeted")}), 10.0)
    with pytest.raises(ValueError, match="drug_class"):
        ops.react_cells(st, kin, treatment_of({"tki": drug("antibody")}), 10.0)
    with pytest.raises(ValueError, match="combination"):
        ops.react_cells(st, kin, treatment_of({"tki": drug("targeted")}, "loewe"), 10.0)
