"""kernels/observables.cu (backend cpu) against its reference, Observer.sums_reference."""
import math

import numpy as np
import pytest

from spatialdtp.config import RunConfig
from spatialdtp.model.grid import Grid
from spatialdtp.model.state import FieldLayout, State
from spatialdtp.run.observables import Observer

SHAPES = {"2d": (9, 11), "3d": (5, 7, 6)}
DRUGS = {0: (), 1: ("osimertinib",), 3: ("osimertinib", "savolitinib", "chemo")}
RUN = RunConfig(hypoxic_threshold=15.0)
N_FIXED = 12            # sums before the drugs'; [8] and [10] are voxel counts


def layout_with(drugs):
    return FieldLayout(substrates=("oxygen", "glucose", "hgf", "chemokine") + drugs,
                       drugs=drugs)


def random_state(shape, dtype, drugs, seed=0):
    """Fields that put voxels on both sides of every test the sums make, and on their
    edges: a voxel exactly at the tumour floor, one exactly at the hypoxic threshold."""
    rng = np.random.default_rng(seed)
    st = State(Grid(shape, 20.0), layout_with(drugs), dtype=dtype)
    st.data[...] = rng.uniform(0.0, 5.0, st.data.shape)
    for c in ("S", "P", "R"):
        st[c][rng.uniform(size=shape) < 0.4] = 0.0
    st["oxygen"] = rng.uniform(0.0, 30.0, shape)
    st["oxygen"].flat[3] = RUN.hypoxic_threshold
    st["S"].flat[3] = 1.0                        # so that the voxel at the threshold counts
    near = rng.uniform(size=shape) < 0.4
    tumour_cells = st["S"] + st["P"] + st["R"]
    floor = float(np.sort(tumour_cells.ravel())[tumour_cells.size // 2])   # half are below
    return st, near, floor


def observer_for(st, ops=None):
    return Observer(st.grid, st.layout, RUN, capacity=10.0, drugs=st.layout.drugs, ops=ops)


def assert_sums_match(got, want):
    """Counts exactly; sums in double to their summation order (n·eps64 of the sum of the
    non-negative terms, whatever the field dtype: every term is converted exactly)."""
    assert got.dtype == np.float64 and got.shape == want.shape
    assert got[8] == want[8] and got[10] == want[10]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("dim", SHAPES)
@pytest.mark.parametrize("n_drugs", DRUGS)
def test_observable_sums_kernel_matches_reference(cpu, n_drugs, dim, dtype):
    st, near, floor = random_state(SHAPES[dim], dtype, DRUGS[n_drugs])
    obs = observer_for(st)
    want = obs.sums_reference(st, near, floor)
    got = cpu.ops(dtype).observable_sums(obs, st, near, floor)
    assert len(want) == N_FIXED + n_drugs
    assert 0 < want[8] and 0 < want[10]          # both near and far tumour voxels exist
    assert_sums_match(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("dim", SHAPES)
def test_observable_sums_kernel_with_empty_tumour(cpu, dim, dtype):
    st, near, _ = random_state(SHAPES[dim], dtype, DRUGS[1], seed=3)
    for c in ("S", "P", "R"):
        st[c] = 0.0
    obs = observer_for(st)
    want = obs.sums_reference(st, near, 0.0)
    got = cpu.ops(dtype).observable_sums(obs, st, near, 0.0)
    assert got[8] == got[10] == 0.0
    assert_sums_match(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("dim", SHAPES)
def test_observable_sums_kernel_with_empty_niche(cpu, dim, dtype):
    st, near, floor = random_state(SHAPES[dim], dtype, DRUGS[3], seed=4)
    near[...] = False
    obs = observer_for(st)
    want = obs.sums_reference(st, near, floor)
    got = cpu.ops(dtype).observable_sums(obs, st, near, floor)
    assert got[8] == 0.0 and got[10] > 0
    assert_sums_match(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_observer_compute_on_cpu_backend_matches_numpy(cpu, dtype):
    st, _, _ = random_state(SHAPES["3d"], dtype, DRUGS[3], seed=5)
    st["F"][st["F"] < 4.0] = 0.0                 # a few niches, so near and far both exist
    st["M"] = 0.0
    plasma = dict.fromkeys(st.layout.drugs, 1.0)
    on = dict.fromkeys(st.layout.drugs, True)
    want = observer_for(st).compute(st, plasma, on)
    got = observer_for(st, cpu.ops(dtype)).compute(st, plasma, on)
    assert tuple(got) == tuple(want)
    assert math.isfinite(want["niche_index"])
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12, nan_ok=True), k
