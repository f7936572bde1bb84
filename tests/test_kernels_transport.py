"""kernels/transport.cu (backend cpu) against its reference, spatialdtp.numerics.transport.move_state.

The kernel comparisons run twice on the host: with the loop the ``cpu`` backend uses (whole
rows, the inner voxels vectorised) and with the GPU's one-thread-per-voxel loop
(``SDTP_TRANSPORT_PER_VOXEL``), so that the index arithmetic the GPU runs is checked here too.
"""

import numpy as np
import pytest

from spatialdtp.backends.compiled_ops import CompiledOps
from spatialdtp.backends.reference import ReferenceOps
from spatialdtp.config import CELL_TYPES
from spatialdtp.model.grid import Grid
from spatialdtp.model.state import FieldLayout, State
from spatialdtp.numerics import transport

LAYOUT = FieldLayout(substrates=("oxygen", "glucose", "hgf", "chemokine", "drug"),
                     drugs=("drug",))
DX = 10.0
# capacity (cells/voxel) against random densities up to 3 per type (sums up to ~15): some
# voxels are over-full (no room), some empty, most in between, so the room clamp, the
# room-limited flux and plain diffusion are all exercised
CAP = 8.0

# (motilities S, P, R, F, M; chi; tau; chemokine amplitude)
CASES = {
    # one sub-step each (the copy-then-write path), CAFs static
    "motility_one_substep": ((0.5, 0.5, 0.5, 0.0, 2.0), 0.0, 5.0, 0.0),
    # several sub-steps, odd and even counts differing by cell type
    "motility_many_substeps": ((30.0, 5.0, 0.0, 11.0, 60.0), 0.0, 10.0, 0.0),
    # steep chemokine (q jumps by up to 0.2 between voxels): the drift alone needs several
    # sub-steps
    "chemotaxis_steep": ((0.5, 0.0, 0.5, 0.0, 2.0), 80.0, 10.0, 0.2),
    # drift without random motility of M
    "chemotaxis_only": ((0.0, 0.0, 0.0, 0.0, 0.0), 50.0, 5.0, 0.3),
}
SHAPES = {"2d": (7, 9), "3d": (5, 6, 7), "3d_small": (3, 4, 3)}
DTYPES = (np.float32, np.float64)


@pytest.fixture(scope="module", params=["rows", "per_voxel"])
def loop(request, cpu, per_voxel_library, tmp_path_factory):
    """{dtype: CompiledOps} for one of the two voxel loops of transport.cu: the host's rows
    (reading the other cell types' total summed by the launcher) and the GPU's per-voxel
    loop (summing them itself, as on the GPU)."""
    if request.param == "rows":
        return {d: cpu.ops(d) for d in DTYPES}
    tmp = tmp_path_factory.mktemp("per_voxel")
    out = {}
    for dtype in DTYPES:
        lib = per_voxel_library(dtype, tmp, "transport.cu", "SDTP_TRANSPORT_PER_VOXEL")
        lib.sums_in_kernel = True      # as on the GPU: the kernel adds the other cell types
        out[dtype] = CompiledOps(lib, np)
    return out


def random_state(shape, dtype, q_amplitude, seed=0, negative=False):
    """Random fields; ``negative`` puts a few unphysical negative densities in, which only
    the final clamp (not one after every sub-step) turns into the reference's zeros."""
    rng = np.random.default_rng(seed)
    st = State(Grid(shape, DX), LAYOUT, dtype=dtype)
    st.data[...] = rng.uniform(0.0, 3.0, st.data.shape)
    for c in CELL_TYPES:                # empty voxels and a sharp peak next to them
        st[c][rng.uniform(size=shape) < 0.3] = 0.0
        if negative:
            st[c][rng.uniform(size=shape) < 0.1] = -2.0
    st["chemokine"] = rng.uniform(0.0, q_amplitude, shape) if q_amplitude else 0.0
    return st


def max_substeps(st, motilities, chi, tau):
    q = st["chemokine"].astype(np.float64)
    v = transport.chemotactic_velocity(q, chi, DX, np) if chi > 0 else []
    v_max = max((float(np.abs(a).max()) for a in v), default=0.0)
    return max(transport.substeps(D, v_max if i == 4 else 0.0, tau, DX, st.grid.ndim)
               for i, D in enumerate(motilities))


def tolerance(st, m):
    """Each sub-step is a positive (convex) combination at the CFL bound, so rounding does
    not grow: a few operations per face (4 per axis), each one rounding of the largest
    density, per sub-step. On the host the kernel does the reference's operations in its
    order and agrees exactly; the margin is for FMA contraction on the GPU."""
    eps = np.finfo(st.dtype).eps
    return (4 * st.grid.ndim + 4) * m * eps * float(np.abs(st.cells).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("dim", SHAPES)
@pytest.mark.parametrize("case", CASES)
def test_transport_kernel_matches_reference(loop, case, dim, dtype):
    motilities, chi, tau, amplitude = CASES[case]
    ref = random_state(SHAPES[dim], dtype, amplitude, negative=True)
    got = ref.copy()
    m = max_substeps(ref, motilities, chi, tau)
    if case != "motility_one_substep":
        assert m >= 3, "the case must exercise several sub-steps"
    ReferenceOps(np).move_cells(ref, motilities, chi, tau, CAP)
    loop[dtype].move_cells(got, motilities, chi, tau, CAP)
    atol = tolerance(ref, m)
    for c in CELL_TYPES:
        np.testing.assert_allclose(got[c], ref[c], rtol=0, atol=atol, err_msg=c)
    others = [i for i, name in enumerate(LAYOUT.names) if name not in CELL_TYPES]
    np.testing.assert_array_equal(got.data[others], ref.data[others])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("dim", SHAPES)
def test_transport_kernel_conserves_every_cell_total(loop, dim, dtype):
    motilities, chi, tau, amplitude = CASES["chemotaxis_steep"]
    motilities = (3.0, 1.0, 0.5, 0.2, 2.0)
    st = random_state(SHAPES[dim], dtype, amplitude, seed=1)
    before = st.cells.reshape(5, -1).astype(np.float64).sum(axis=1)
    m = max_substeps(st, motilities, chi, tau)
    loop[dtype].move_cells(st, motilities, chi, tau, CAP)
    after = st.cells.reshape(5, -1).astype(np.float64).sum(axis=1)
    # zero flux: each face's flux leaves one voxel and enters the other; only the rounding
    # of n + h·t (one per voxel and sub-step, ≤ eps/2 · n) changes a total
    np.testing.assert_allclose(after, before, rtol=m * np.finfo(dtype).eps, atol=0)
    assert st.cells.min() >= 0


def test_transport_kernel_leaves_static_cells_and_zero_motility_alone(cpu):
    st = random_state((6, 8), np.float64, 5.0)
    before = st.data.copy()
    cpu.ops(np.float64).move_cells(st, (0.0, 0.0, 0.0, 0.0, 0.0), 0.0, 10.0, CAP)
    np.testing.assert_array_equal(st.data, before)


def test_transport_max_speed_kernel_is_the_reference_v_max(loop):
    from spatialdtp.backends.compiled_transport import _grid3, max_face_speed
    for shape in SHAPES.values():
        for dtype in DTYPES:
            st = random_state(shape, dtype, 20.0, seed=2)
            q = st["chemokine"]
            v = transport.chemotactic_velocity(q, 50.0, DX, np)
            want = max(float(np.abs(a).max()) for a in v)
            assert max_face_speed(loop[dtype], q, 50.0, DX, _grid3(st)) == want
            q.flat[q.size // 2 + 1] = np.nan        # propagates, as the reference's max
            assert np.isnan(max_face_speed(loop[dtype], q, 50.0, DX, _grid3(st)))


def test_transport_kernel_refuses_nan_chemokine_like_reference(cpu):
    st = random_state(SHAPES["3d"], np.float64, 1.0)
    st["chemokine"].flat[7] = np.nan
    motilities = CASES["chemotaxis_steep"][0]
    with pytest.raises(ValueError):
        ReferenceOps(np).move_cells(st.copy(), motilities, 50.0, 10.0, CAP)
    with pytest.raises(ValueError, match="NaN"):
        cpu.ops(np.float64).move_cells(st, motilities, 50.0, 10.0, CAP)


# ------------------------------------------------------------------ the pressure flux
# sub-step counts: one (the copy-first path), and several of odd and even count
PRESSURE_SUBSTEPS = (1, 3, 4)


def mobility_for(substeps, tau, ndim):
    """A D_p whose CFL bound 2d D_p τ/dx² ≤ 0.9 takes exactly ``substeps`` sub-steps."""
    return 0.99 * substeps * 0.9 * DX**2 / (2 * ndim * tau)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("dim", SHAPES)
@pytest.mark.parametrize("m", PRESSURE_SUBSTEPS)
def test_pressure_kernel_matches_reference(loop, m, dim, dtype):
    """transport_pressure_substep against push_tumour (random fields: over-full, empty and
    negative voxels included; CAP keeps most voxels with room)."""
    tau = 10.0
    ref = random_state(SHAPES[dim], dtype, 0.0, negative=True)
    mobility = mobility_for(m, tau, ref.grid.ndim)
    assert transport.pressure_substeps(mobility, tau, DX, ref.grid.ndim) == m
    got, before = ref.copy(), ref.copy()
    still = (0.0,) * 5                        # no motility: the pressure flux alone
    ReferenceOps(np).move_cells(ref, still, 0.0, tau, CAP, mobility)
    loop[dtype].move_cells(got, still, 0.0, tau, CAP, mobility)
    atol = tolerance(ref, m)
    for c in CELL_TYPES:
        np.testing.assert_allclose(got[c], ref[c], rtol=0, atol=atol, err_msg=c)
    # the case moves cells (S, P, R), and only them
    assert np.abs(ref["S"] - before["S"]).max() > 100 * atol
    for c in ("F", "M"):
        np.testing.assert_array_equal(ref[c], before[c])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_pressure_and_motility_together_match_reference(loop, dtype):
    ref = random_state(SHAPES["3d"], dtype, 0.2, seed=4)
    got = ref.copy()
    motilities, chi, tau, _ = CASES["chemotaxis_steep"]
    ReferenceOps(np).move_cells(ref, motilities, chi, tau, CAP, 30.0)
    loop[dtype].move_cells(got, motilities, chi, tau, CAP, 30.0)
    for c in CELL_TYPES:
        np.testing.assert_allclose(got[c], ref[c], rtol=0, atol=tolerance(ref, 8), err_msg=c)


# The pressure flux leaves S, P, R in its buffers after an odd number of sub-steps, and the
# motility that follows starts from there (no copy back); a pushed type that motility does
# not move is copied home at the end. Each combination below takes a different path: P
# still (copied home), S and R with one sub-step (read from the buffer, written to the
# plane) or several (buffer → ping-pong → plane), after an odd and an even pressure count.
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("m_pressure", (1, 2, 3))
@pytest.mark.parametrize("motilities", [(0.5, 0.0, 0.5, 0.0, 2.0), (30.0, 0.0, 5.0, 0.0, 0.5)],
                         ids=["one_substep", "many_substeps"])
def test_pressure_then_motility_from_the_buffers(loop, dtype, m_pressure, motilities):
    tau = 5.0
    ref = random_state(SHAPES["3d"], dtype, 0.0, seed=7, negative=True)
    mobility = mobility_for(m_pressure, tau, ref.grid.ndim)
    assert transport.pressure_substeps(mobility, tau, DX, ref.grid.ndim) == m_pressure
    got, before = ref.copy(), ref.copy()
    ReferenceOps(np).move_cells(ref, motilities, 0.0, tau, CAP, mobility)
    loop[dtype].move_cells(got, motilities, 0.0, tau, CAP, mobility)
    atol = tolerance(ref, m_pressure + max_substeps(before, motilities, 0.0, tau))
    for c in CELL_TYPES:
        np.testing.assert_allclose(got[c], ref[c], rtol=0, atol=atol, err_msg=c)
    # P moved only by the pressure flux, and visibly (its copy home is checked above)
    assert np.abs(ref["P"] - before["P"]).max() > 100 * atol
