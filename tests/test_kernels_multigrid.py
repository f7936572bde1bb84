"""The multigrid kernels (kernels/stencil.cu) against their NumPy references in
spatialdtp.numerics.implicit.stencil: apply_stencil (operator and residual), jacobi_sweep, and the
transfers restrict_children / prolong_add; then whole ImplicitSolver steps with the
kernels against the same steps with the references.

Each kernel comparison runs twice on the host: with the loop the ``cpu`` backend uses (whole
rows, vectorised runs) and with the GPU's one-thread-per-voxel loop
(``SDTP_STENCIL_PER_VOXEL``), so that the index arithmetic the GPU runs is checked here too.
"""
import itertools

import numpy as np
import pytest

from spatialdtp.backends import compiled_multigrid, get_backend
from spatialdtp.backends.compiled_ops import CompiledOps
from spatialdtp.model.boundary import Boundary
from spatialdtp.numerics.implicit import ImplicitSolver
from spatialdtp.numerics.implicit.multigrid import Multigrid
from spatialdtp.numerics.implicit.stencil import (
    _Level,
    _with,
    apply_stencil,
    jacobi_sweep,
    prolong_add,
    restrict_children,
)

DTYPES = (np.float64, np.float32)

# Tolerance. Kernel and reference add the same terms (rhs, mass·x, and per axis up to two
# face fluxes and a boundary term: at most 11) in the same order. If a compiler contracts
# a multiply-add or reorders, each of the two sums is still within (terms − 1)·u·Σ|terms|
# of the exact value (u = eps/2), so they differ by at most 10·eps·Σ|terms|; we allow
# 32·eps·Σ|terms|, computed per voxel (term_magnitude). A wrong index moves a term by
# O(|terms|), far outside. The transfers only add values in the reference's order: exact.
ULPS = 32


# --------------------------------------------------------------------------- libraries
@pytest.fixture(scope="module", params=["rows", "per_voxel"])
def loop(request, cpu, per_voxel_library, tmp_path_factory):
    """{dtype: CompiledOps} for one of the two voxel loops of stencil.cu."""
    if request.param == "rows":
        return {d: cpu.ops(d) for d in DTYPES}
    tmp = tmp_path_factory.mktemp("per_voxel")
    return {dtype: CompiledOps(per_voxel_library(dtype, tmp, "stencil.cu",
                                                  "SDTP_STENCIL_PER_VOXEL"), np)
            for dtype in DTYPES}


class Launches:
    """Counts the kernel launches of some ops (a silent fallback would pass any parity)."""

    def __init__(self, monkeypatch, ops):
        self.names = []
        launch = ops.lib.launch

        def counted(name, *args):
            self.names.append(name)
            return launch(name, *args)
        monkeypatch.setattr(ops.lib, "launch", counted)


# --------------------------------------------------------------------------- random levels
AXIS_KINDS = [("no_flux", "no_flux"), ("fixed", "no_flux"), ("no_flux", "fixed"),
              ("fixed", "fixed"), ("periodic", "periodic")]


def kinds_covering(ndim):
    """Boundary kinds per axis such that every axis sees every (low, high) pair: all of
    them in 2D, a Latin set in 3D."""
    if ndim == 2:
        return list(itertools.product(AXIS_KINDS, repeat=2))
    return [tuple(AXIS_KINDS[(j + s * k) % 5] for k in range(3))
            for j in range(5) for s in (1, 2)]


def random_level(shape, kinds, dtype, rng):
    """A level with random mass, faces and Jacobi weights (a 1-cell axis: no interior
    faces, a periodic one demoted to no-flux as on a coarse level)."""
    lev = _Level(shape, [np.ones(n) for n in shape], np, dtype)
    lev.set_modes(kinds)
    lev.mass[...] = rng.uniform(0.5, 2.0, shape)
    lev.winv[...] = rng.uniform(0.1, 0.6, shape)

    def faces(s):
        return rng.uniform(0.1, 3.0, s).astype(dtype)
    for k, n in enumerate(shape):
        lev.tin[k] = faces(_with(lev.shape, k, n - 1)) if n >= 2 else None
        lo, hi = lev.modes[k]
        if lo == "periodic":
            lev.tlo[k] = lev.thi[k] = faces(_with(lev.shape, k, 1))
            continue
        lev.tlo[k] = faces(_with(lev.shape, k, 1)) if lo == "fixed" else None
        lev.thi[k] = faces(_with(lev.shape, k, 1)) if hi == "fixed" else None
    return lev


def solver_levels(shape, kinds, dtype, rng):
    """Every level of a real ImplicitSolver hierarchy, set up for a random D and a."""
    solver = ImplicitSolver(shape, 10.0, dtype=dtype)
    bc = Boundary(kinds, 1.0)
    D = rng.uniform(0.5, 2.0, shape).astype(dtype)
    a = rng.uniform(0.0, 1.0, shape).astype(dtype)
    solver.multigrid.setup_fine(D, bc, 1.0 / 100.0)
    solver.multigrid.scale_fine(3.0)
    solver.multigrid.setup(a, 3.0, bc.kinds)
    return solver.levels


def term_magnitude(lev, x, rhs=None, mass=None):
    """Σ over the terms of the stencil of |term|, per voxel, in float64."""
    x = x.astype(np.float64)
    mass = lev.mass if mass is None else mass
    mag = np.abs(np.asarray(mass, np.float64) * x)
    if rhs is not None:
        mag = mag + np.abs(np.asarray(rhs, np.float64))
    for k in range(lev.ndim):
        head, tail, lo, hi = lev.head[k], lev.tail[k], lev.lo[k], lev.hi[k]
        if lev.tin[k] is not None:
            F = np.abs(lev.tin[k] * (x[tail] - x[head]))
            mag[head] += F
            mag[tail] += F
        if lev.modes[k][0] == "periodic":
            F = np.abs(lev.tlo[k] * (x[lo] - x[hi]))
            mag[lo] += F
            mag[hi] += F
            continue
        if lev.tlo[k] is not None:
            mag[lo] += np.abs(lev.tlo[k] * x[lo])
        if lev.thi[k] is not None:
            mag[hi] += np.abs(lev.thi[k] * x[hi])
    return mag


def assert_close(got, want, magnitude, dtype, what):
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bound = ULPS * np.finfo(dtype).eps * magnitude
    bad = err > bound
    assert not bad.any(), (f"{what}: {int(bad.sum())} voxels off, worst at "
                           f"{np.unravel_index(np.argmax(err - bound), err.shape)}: "
                           f"|diff| {err.max():.3g} > bound")


def check_stencil(ops, lev, rng, launches):
    """Operator and residual forms with array/scalar rhs and mass against apply_stencil."""
    dtype = lev.mass.dtype
    x = rng.standard_normal(lev.shape).astype(dtype)
    rhs = rng.standard_normal(lev.shape).astype(dtype)
    mass = rng.uniform(0.0, 2.0, lev.shape).astype(dtype)
    for r, m in [(None, None), (rhs, None), (rhs, mass), (0.75, None), (None, 1.5),
                 (0.75, 0.0)]:
        want = apply_stencil(np, lev, x, np.empty_like(x), r, m)
        before = len(launches.names)
        got = ops.stencil(lev, x, np.full_like(x, np.nan), rhs=r, mass=m)
        assert launches.names[before:] == ["stencil_apply"]
        form = f"{lev.shape} {lev.modes} rhs {type(r).__name__} mass {type(m).__name__}"
        assert_close(got, want, term_magnitude(lev, x, r, m), dtype, form)


def check_jacobi(ops, lev, rng, launches):
    dtype = lev.mass.dtype
    x0 = rng.standard_normal(lev.shape).astype(dtype)
    b = rng.standard_normal(lev.shape).astype(dtype)
    want = x0.copy()
    jacobi_sweep(np, lev, b, want, lev.winv)
    lev.x[...] = x0
    before = len(launches.names)
    ops.jacobi(lev, b, lev.x, lev.winv)
    assert launches.names[before:] == ["jacobi_sweep"]
    mag = lev.winv * term_magnitude(lev, x0, b) + np.abs(x0) + np.abs(want)
    assert_close(lev.x, want, mag, dtype, f"jacobi {lev.shape} {lev.modes}")


# --------------------------------------------------------------------------- the stencil
SHAPES_2D = [(3, 5), (65, 33), (4, 1), (1, 7), (2, 2)]
SHAPES_3D = [(7, 3, 4), (5, 6, 9), (1, 10, 2), (2, 1, 3), (3, 4, 1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_stencil_and_jacobi_match_reference_on_random_levels(loop, ndim, dtype, monkeypatch):
    ops = loop[dtype]
    launches = Launches(monkeypatch, ops)
    rng = np.random.default_rng(11 + ndim)
    for shape in (SHAPES_2D if ndim == 2 else SHAPES_3D):
        for kinds in kinds_covering(ndim):
            lev = random_level(shape, kinds, dtype, rng)
            check_stencil(ops, lev, rng, launches)
            check_jacobi(ops, lev, rng, launches)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("shape", [(65, 33), (3, 130), (3, 40, 5), (9, 20, 13)])
def test_stencil_and_jacobi_match_reference_on_every_level_of_a_solver(loop, shape, dtype,
                                                                        monkeypatch):
    ops = loop[dtype]
    launches = Launches(monkeypatch, ops)
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    ndim = len(shape)
    for kinds in kinds_covering(ndim)[::3 if ndim == 2 else 2]:
        levels = solver_levels(shape, kinds, dtype, rng)
        assert len(levels) > 1
        for lev in levels:
            check_stencil(ops, lev, rng, launches)
            check_jacobi(ops, lev, rng, launches)


def test_jacobi_on_the_level_iterate_swaps_buffers_and_other_arrays_update_in_place(cpu):
    ops = cpu.ops(np.float64)
    rng = np.random.default_rng(3)
    lev = random_level((6, 7), AXIS_KINDS[3:5], np.float64, rng)
    b = rng.standard_normal(lev.shape)
    x0 = rng.standard_normal(lev.shape)
    want = x0.copy()
    jacobi_sweep(np, lev, b, want, lev.winv)

    old_x, old_r = lev.x, lev.r
    lev.x[...] = x0
    ops.jacobi(lev, b, lev.x, lev.winv)
    assert lev.x is old_r and lev.r is old_x           # swapped, not copied back
    np.testing.assert_allclose(lev.x, want, rtol=1e-14, atol=1e-14)

    other = x0.copy()
    ops.jacobi(lev, b, other, lev.winv)
    np.testing.assert_allclose(other, want, rtol=1e-14, atol=1e-14)


def test_stencil_falls_back_to_reference_for_batches_and_foreign_dtypes(cpu, monkeypatch):
    ops = cpu.ops(np.float64)
    launches = Launches(monkeypatch, ops)
    rng = np.random.default_rng(5)
    lev = random_level((5, 4), AXIS_KINDS[1:3], np.float64, rng)
    batch = rng.standard_normal((3,) + lev.shape)
    got = ops.stencil(lev, batch, np.empty_like(batch))
    want = apply_stencil(np, lev, batch, np.empty_like(batch))
    np.testing.assert_array_equal(got, want)
    x32 = rng.standard_normal(lev.shape).astype(np.float32)
    ops.stencil(lev, x32, np.empty_like(x32))
    assert launches.names == []


# --------------------------------------------------------------------------- transfers
def transfer_pairs():
    """(fine level, coarse level): real hierarchies, and levels that leave an open axis
    uncoarsened (no hierarchy on a uniform grid does, the kernels allow it)."""
    out = []
    for shape in [(65, 33), (3, 130), (3, 40, 5), (7, 3, 4), (9, 20, 13)]:
        levels = ImplicitSolver(shape, 1.0).levels
        out += [(lev, lev.shape, lev.coarse_axes) for lev in levels if lev.coarse is not None]
    for shape, axes in [((5, 7), (1,)), ((5, 7), (0,)), ((7, 5, 6), (0, 2)),
                        ((7, 5, 6), (1,)), ((3, 9, 5), (0, 1))]:
        out.append((None, shape, axes))
    return out


def make_transfer_level(shape, axes, dtype):
    fine = _Level(shape, [np.ones(n) for n in shape], np, dtype)
    cshape = tuple((n + 1) // 2 if k in axes else n for k, n in enumerate(shape))
    fine.coarse = _Level(cshape, [np.ones(n) for n in cshape], np, dtype)
    fine.coarse_axes = axes
    fine.pairs = Multigrid._transfer_slices(shape, axes)
    return fine


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_restrict_and_prolong_match_reference_exactly(loop, dtype, monkeypatch):
    ops = loop[dtype]
    launches = Launches(monkeypatch, ops)
    rng = np.random.default_rng(7)
    for _, shape, axes in transfer_pairs():
        lev = make_transfer_level(shape, axes, dtype)
        fine = rng.standard_normal(shape).astype(dtype)
        want = restrict_children(np, lev, fine, np.empty(lev.coarse.shape, dtype))
        got = compiled_multigrid.restrict(ops, lev, fine, np.full(lev.coarse.shape, np.nan,
                                                                  dtype))
        np.testing.assert_array_equal(got, want, err_msg=f"restrict {shape} {axes}")
        coarse = rng.standard_normal(lev.coarse.shape).astype(dtype)
        want = prolong_add(np, lev, coarse, fine.copy())
        got = compiled_multigrid.prolong(ops, lev, coarse, fine.copy())
        np.testing.assert_array_equal(got, want, err_msg=f"prolong {shape} {axes}")
    assert launches.names == ["restrict_sum", "prolong_add"] * len(transfer_pairs())


# --------------------------------------------------------------------------- whole steps
class OpsWithTransfers(CompiledOps):
    """CompiledOps that also hand the V-cycle its transfers as kernels."""

    def restrict(self, level, fine, coarse):
        return compiled_multigrid.restrict(self, level, fine, coarse)

    def prolong(self, level, coarse, fine):
        return compiled_multigrid.prolong(self, level, coarse, fine)


STEP_CASES = [
    ((40, 33), Boundary((("fixed", "no_flux"), ("periodic", "periodic")), 2.0)),
    ((12, 9, 14), Boundary((("periodic", "periodic"), ("no_flux", "fixed"),
                            ("fixed", "fixed")), 1.0)),
    ((3, 50), Boundary((("no_flux", "no_flux"), ("fixed", "no_flux")), 5.0)),
]


@pytest.mark.parametrize("transfers", [False, True], ids=["compiled_ops",
                                                          "with_transfer_kernels"])
@pytest.mark.parametrize("case", range(len(STEP_CASES)))
def test_implicit_step_with_kernels_matches_reference_float64(cpu, case, transfers,
                                                               monkeypatch):
    shape, bc = STEP_CASES[case]
    dtype = np.float64
    ops = cpu.ops(dtype)
    if transfers:
        ops = OpsWithTransfers(ops.lib, np)
    launches = Launches(monkeypatch, ops)
    rng = np.random.default_rng(case)
    c = rng.uniform(0.0, 10.0, shape)
    D = 1e3 * rng.uniform(0.3, 1.0, shape)
    a = rng.uniform(0.0, 0.5, shape)
    b = rng.uniform(0.0, 1.0, shape)
    results = []
    for o in (None, ops):
        solver = ImplicitSolver(shape, 10.0, dtype=dtype, ops=o)
        c1, info1 = solver.step(c, D=D, a=a, b=b, dt=5.0, boundary=bc, rtol=1e-12)
        c2, info2 = solver.step(c1, D=2e3, a=0.1, b=0.0, dt=2.0, boundary=bc,
                                theta=0.5, rtol=1e-12)
        results.append((c1, c2, info1, info2))
    (r1, r2, ri1, ri2), (k1, k2, ki1, ki2) = results
    assert ri1.converged and ri2.converged
    assert (ki1.iterations, ki2.iterations) == (ri1.iterations, ri2.iterations)
    np.testing.assert_allclose(k1, r1, rtol=1e-12, atol=0)
    np.testing.assert_allclose(k2, r2, rtol=1e-12, atol=0)
    names = set(launches.names)
    assert {"stencil_apply", "jacobi_sweep"} <= names
    if transfers:
        assert {"restrict_sum", "prolong_add"} <= names


def test_implicit_step_with_kernels_matches_reference_float32(cpu):
    shape = (33, 40)
    bc = Boundary((("periodic", "periodic"), ("fixed", "fixed")), 1.0)
    rng = np.random.default_rng(9)
    c = rng.uniform(0.0, 10.0, shape).astype(np.float32)
    D = (1e4 * rng.uniform(0.3, 1.0, shape)).astype(np.float32)
    out = []
    for o in (None, OpsWithTransfers(cpu.ops(np.float32).lib, np)):
        solver = ImplicitSolver(shape, 10.0, dtype=np.float32, ops=o)
        out.append(solver.step(c, D=D, a=0.2, b=0.5, dt=3.0, boundary=bc, rtol=1e-6))
    (cr, ir), (ck, ik) = out
    assert ir.converged and ik.converged
    assert abs(ik.iterations - ir.iterations) <= 1
    # both are within rtol 1e-6 (relative residual) of the same solution
    np.testing.assert_allclose(ck, cr, rtol=2e-5, atol=2e-5 * float(np.abs(cr).max()))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_gpu_multigrid_kernels_match_reference(dtype):
    import cupy

    ops = get_backend("cupy").ops(dtype)
    rng = np.random.default_rng(21)
    for shape in [(65, 33), (9, 20, 13), (3, 40, 5)]:
        for kinds in kinds_covering(len(shape))[:4]:
            solver = ImplicitSolver(shape, 10.0, xp=cupy, dtype=dtype)
            bc = Boundary(kinds, 1.0)
            solver.multigrid.setup_fine(cupy.asarray(rng.uniform(0.5, 2.0, shape).astype(dtype)), bc,
                               0.01)
            solver.multigrid.setup(cupy.asarray(rng.uniform(0, 1, shape).astype(dtype)),
                                    3.0, bc.kinds)
            for lev in solver.levels:
                x = cupy.asarray(rng.standard_normal(lev.shape).astype(dtype))
                rhs = cupy.asarray(rng.standard_normal(lev.shape).astype(dtype))
                want = apply_stencil(cupy, lev, x, cupy.empty_like(x), rhs)
                got = ops.stencil(lev, x, cupy.empty_like(x), rhs=rhs)
                host = _Level(lev.shape, lev.widths, np, dtype)
                host.modes = lev.modes
                host.mass = cupy.asnumpy(lev.mass)
                for k in range(lev.ndim):
                    for name in ("tin", "tlo", "thi"):
                        t = getattr(lev, name)[k]
                        getattr(host, name)[k] = None if t is None else cupy.asnumpy(t)
                mag = term_magnitude(host, cupy.asnumpy(x), cupy.asnumpy(rhs))
                assert_close(cupy.asnumpy(got), cupy.asnumpy(want), mag, dtype, "gpu stencil")
                if lev.coarse is not None:
                    fine = rhs
                    want = restrict_children(cupy, lev, fine, cupy.empty(lev.coarse.shape, dtype))
                    got = compiled_multigrid.restrict(ops, lev, fine,
                                                      cupy.empty(lev.coarse.shape, dtype))
                    assert bool((got == want).all())
