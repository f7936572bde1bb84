"""kernels/observables.cu (backend cpu) against its reference, Observer.sums_reference."""
import math

import numpy as np
import pytest

from spatialdtp.config import RunConfig
from spatialdtp.model.grid import Grid
from spatialdtp.model.state import FieldLayout, State
from spatialdtp.run import niche
from spatialdtp.run.observables import FIXED_SUMS, Observer

SHAPES = {"2d": (9, 11), "3d": (5, 7, 6)}
DRUGS = {0: (), 1: ("osimertinib",), 3: ("osimertinib", "savolitinib", "chemo")}
RUN = RunConfig(hypoxic_threshold=15.0, niche_threshold=0.3, niche_distance=20.0,
                niche_far_distance=40.0, niche_edge_bin=20.0)
CAP = 10.0


def layout_with(drugs):
    return FieldLayout(substrates=("oxygen", "glucose", "hgf", "chemokine") + drugs,
                       drugs=drugs)


def random_state(shape, dtype, drugs, seed=0):
    """Fields that put voxels on both sides of every test the sums make, and on their
    edges (a voxel exactly at the hypoxic threshold), and random niche labels: every near
    and far stratum label, "none", each with and without the niche bit."""
    rng = np.random.default_rng(seed)
    st = State(Grid(shape, 20.0), layout_with(drugs), dtype=dtype)
    st.data[...] = rng.uniform(0.0, 5.0, st.data.shape)
    for c in ("S", "P", "R"):
        st[c][rng.uniform(size=shape) < 0.4] = 0.0
    st["oxygen"] = rng.uniform(0.0, 30.0, shape)
    st["oxygen"].flat[3] = RUN.hypoxic_threshold
    st["S"].flat[3] = 1.0                        # so that the voxel at the threshold counts
    n_labels = 6
    labels = rng.integers(0, n_labels + 1, shape).astype(np.uint8)
    labels[labels == n_labels] = niche.NO_LABEL
    labels |= (rng.uniform(size=shape) < 0.3).astype(np.uint8) * niche.NICHE_BIT
    T0 = rng.uniform(0.0, 5.0, shape).astype(dtype)
    return st, labels, T0, n_labels


def observer_for(st, ops=None):
    return Observer(st.grid, st.layout, RUN, capacity=CAP, drugs=st.layout.drugs, ops=ops)


def assert_sums_match(got, want, n_labels):
    """Counts exactly; sums in double to their summation order (n·eps64 of the sum of the
    non-negative terms, whatever the field dtype: every term is converted exactly)."""
    assert got.dtype == np.float64 and got.shape == want.shape
    counts = [FIXED_SUMS - 1] + [FIXED_SUMS + 3 * k for k in range(n_labels)]
    np.testing.assert_array_equal(got[counts], want[counts])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("dim", SHAPES)
@pytest.mark.parametrize("n_drugs", DRUGS)
def test_observable_sums_kernel_matches_reference(cpu, n_drugs, dim, dtype):
    st, labels, T0, n_labels = random_state(SHAPES[dim], dtype, DRUGS[n_drugs])
    obs = observer_for(st)
    want = obs.sums_reference(st, labels, T0, n_labels)
    got = cpu.ops(dtype).observable_sums(obs, st, labels, T0, n_labels)
    assert len(want) == FIXED_SUMS + 3 * n_labels + n_drugs + len(obs.also_totalled)
    # what no other sum reads: glucose, the chemokine and each drug's exposure
    assert obs.also_totalled == ("glucose", "chemokine") + tuple(f"auc_{d}" for d in DRUGS[n_drugs])
    assert all(want[FIXED_SUMS + 3 * k] > 0 for k in range(n_labels))   # every label used
    assert_sums_match(got, want, n_labels)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("dim", SHAPES)
def test_observable_sums_kernel_without_a_reference(cpu, dim, dtype):
    """Before treatment start: no labels to sum and no T0 (a null pointer), only the niche
    voxels counted."""
    st, labels, _, _ = random_state(SHAPES[dim], dtype, DRUGS[1], seed=3)
    labels = (labels & niche.NICHE_BIT) | niche.NO_LABEL
    obs = observer_for(st)
    want = obs.sums_reference(st, labels, None, 0)
    got = cpu.ops(dtype).observable_sums(obs, st, labels, None, 0)
    assert got[FIXED_SUMS - 1] == float(((labels & niche.NICHE_BIT) > 0).sum())
    assert_sums_match(got, want, 0)


def test_observable_sums_kernel_refuses_too_many_labels(cpu):
    st, labels, T0, _ = random_state(SHAPES["2d"], np.float64, DRUGS[0])
    with pytest.raises(ValueError, match="n_labels=33"):
        cpu.ops(np.float64).observable_sums(observer_for(st), st, labels, T0, 33)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_observer_compute_on_cpu_backend_matches_numpy(cpu, dtype):
    st, _, _, _ = random_state(SHAPES["3d"], dtype, DRUGS[3], seed=5)
    st["F"][...] = 0.0
    st["F"][2, 1:3, 0] = 4.0                     # a niche at one side: near and far exist
    st["M"] = 0.0
    plasma = dict.fromkeys(st.layout.drugs, 1.0)
    on = dict.fromkeys(st.layout.drugs, True)
    want = observer_for(st).compute(st, plasma, on)
    got = observer_for(st, cpu.ops(dtype)).compute(st, plasma, on)
    assert tuple(got) == tuple(want)
    assert math.isfinite(want["niche_contrast"])
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12, nan_ok=True), k


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_the_sums_total_every_field_of_the_state(cpu, dtype):
    """Observer.field_sums after compute: each field's float64 total, on both backends
    (the run's finiteness check reads them instead of summing the state again)."""
    st, _, _, _ = random_state(SHAPES["3d"], dtype, DRUGS[3], seed=6)
    plasma = dict.fromkeys(st.layout.drugs, 1.0)
    on = dict.fromkeys(st.layout.drugs, True)
    want = st.data.reshape(len(st.layout), -1).sum(axis=1, dtype=np.float64)
    for ops in (None, cpu.ops(dtype)):
        obs = observer_for(st, ops)
        obs.compute(st, plasma, on)
        assert tuple(obs.field_sums) != () and set(obs.field_sums) == set(st.layout.names)
        got = np.array([obs.field_sums[f] for f in st.layout.names])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("shape", [(9, 11), (5, 7, 6)], ids=["2d", "3d"])
@pytest.mark.parametrize("top", [2, 50], ids=["cut", "whole-line"])
def test_niche_distance_pass_kernel_is_the_min_plus_pass_exactly(cpu, shape, top):
    """``kernels/niche_distance.cu`` against ``numerics.distance.min_plus_pass``: on
    integer squared distances and inf (what the niche distance passes carry) both are
    exact, so equal bit for bit along every axis, with the shifts cut at ``top`` and with
    ``top`` past the line's ends (those shifts skipped, not read out of bounds)."""
    from spatialdtp.numerics.distance import min_plus_pass

    rng = np.random.default_rng(11)
    d2 = rng.integers(0, 40, shape).astype(np.float32)
    d2[rng.uniform(size=shape) < 0.5] = np.inf
    ops = cpu.ops(np.float32)
    for axis in range(len(shape)):
        want = min_plus_pass(d2, axis, top)
        got = ops.min_plus_pass(d2, axis, top)
        np.testing.assert_array_equal(got, want, err_msg=f"axis {axis}")
    # the whole distance: three passes from the mask, equal to the squared Euclidean one
    mask = rng.uniform(size=shape) < 0.1
    mask.flat[0] = True
    k = niche.squared_voxel_distance(mask, ops=ops)
    np.testing.assert_array_equal(k, niche.squared_voxel_distance(mask))
    i = np.indices(shape).reshape(len(shape), -1)
    j = i[:, mask.ravel()]
    exact = ((i[:, :, None] - j[:, None, :]) ** 2).sum(axis=0).min(axis=1)
    np.testing.assert_array_equal(k.ravel(), exact)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_niche_mask_kernel_is_the_twin_exactly(cpu, dtype):
    """``niche_mask`` against ``numerics.niche_labels.niche_mask``, with voxels exactly on
    the threshold (F + M = threshold is a niche voxel)."""
    from spatialdtp.numerics.niche_labels import niche_mask

    rng = np.random.default_rng(8)
    F = rng.uniform(0, 4, (6, 7, 5)).astype(dtype)
    M = rng.uniform(0, 4, F.shape).astype(dtype)
    threshold = 3.0
    F.flat[:20] = threshold - M.flat[:20]               # on the threshold (to rounding)
    want = niche_mask(F, M, threshold)
    got = cpu.ops(dtype).niche_mask(F, M, threshold)
    assert got.dtype == np.bool_ and want.any() and not want.all()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("has_niche", [True, False], ids=["niche", "no_niche"])
@pytest.mark.parametrize("distance", [np.float32, np.uint8, np.float64],
                         ids=["kernel", "byte_kernel", "float64_twin"])
def test_niche_labels_kernel_is_the_twin_exactly(cpu, has_niche, distance):
    """``niche_labels`` against ``numerics.niche_labels.label_voxels``: squared distances
    on both cuts and between them, voxels outside the bed, every stratum, the niche bit;
    without a niche voxel (no distance) every bed voxel is far."""
    from spatialdtp.numerics.niche_labels import OUTSIDE_BED, label_voxels

    rng = np.random.default_rng(9)
    shape, n_strata, near, far = (7, 6, 5), 4, 5.0, 9.0
    k = rng.integers(0, 14, shape).astype(distance)
    k.flat[:6] = [near, far, near + 1, far + 1, 0, 255 if distance == np.uint8 else np.inf]
    code = rng.integers(0, n_strata, shape).astype(np.uint8)
    code[rng.uniform(size=shape) < 0.2] = OUTSIDE_BED
    niche = rng.uniform(size=shape) < 0.3
    k = k if has_niche else None
    want = label_voxels(niche, k, code, n_strata, near, far)
    for dtype in (np.float32, np.float64):
        got = cpu.ops(dtype).label_voxels(niche, k, code, n_strata, near, far)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)
    low = want & 127
    assert {0, n_strata, 127} <= set(np.unique(low)) if has_niche else 127 in low
    assert ((want & 128) > 0).sum() == niche.sum()


@pytest.mark.parametrize("shape", [(9, 11), (5, 7, 6)], ids=["2d", "3d"])
@pytest.mark.parametrize("top", [2, 50], ids=["cut", "whole-line"])
def test_byte_distance_pass_kernel_is_the_saturating_twin_exactly(cpu, shape, top):
    """``niche_distance_pass_u8`` against the byte ``min_plus_pass``: the same minima, sums
    saturating at 255 ("beyond"), with values near 255 so that saturation happens."""
    from spatialdtp.numerics.distance import BEYOND, min_plus_pass

    rng = np.random.default_rng(12)
    d2 = rng.integers(200, 256, shape).astype(np.uint8)
    d2[rng.uniform(size=shape) < 0.3] = BEYOND
    d2[rng.uniform(size=shape) < 0.1] = 0
    ops = cpu.ops(np.float32)
    as_float = np.where(d2 == BEYOND, np.inf, d2).astype(np.float32)
    for axis in range(len(shape)):
        want = min_plus_pass(d2, axis, top)
        # the float pass, clipped at 255: what saturating is
        clipped = np.minimum(min_plus_pass(as_float, axis, top), BEYOND).astype(np.uint8)
        np.testing.assert_array_equal(want, clipped, err_msg=f"axis {axis}")
        got = ops.min_plus_pass(d2, axis, top)
        np.testing.assert_array_equal(got, want, err_msg=f"axis {axis}")
    # the reference saturates rather than wraps: 250 + 4 = 254, 250 + 9 = 255 (not 3)
    line = np.array([250, 255, 255, 255], np.uint8)
    np.testing.assert_array_equal(min_plus_pass(line, 0, 3), [250, 251, 254, 255])


def test_byte_distance_is_the_exact_one_below_255_and_beyond_above():
    """The labels' byte distance (``label_distance_dtype``: the bound ndim·top² < 255) is
    the float32 one wherever that is below 255, and 255 wherever it is not."""
    mask = np.zeros((21, 19, 13), bool)
    mask[0, 0, 0] = mask[12, 3, 7] = True
    top = 9                                       # 3 · 81 = 243 < 255
    assert niche.label_distance_dtype(3, top) == np.uint8
    assert niche.label_distance_dtype(3, top + 1) == np.float32
    k8 = niche.squared_voxel_distance(mask, limit_voxels=top, dtype=np.uint8)
    k32 = niche.squared_voxel_distance(mask, limit_voxels=top, dtype=np.float32)
    below = k32 < 255
    assert below.any() and (~below).any()
    np.testing.assert_array_equal(k8[below], k32[below])
    assert (k8[~below] == 255).all()
