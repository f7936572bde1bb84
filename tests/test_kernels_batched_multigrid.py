"""The batched multigrid kernels (kernels/batched_multigrid.cu) against their NumPy twins in
spatialdtp.numerics.implicit.batched_multigrid, operator by operator, on random batches
that mix every boundary kind, D maps with uniform D, and a/b maps with numbers; then whole
batched solves with the kernels against the same solves with the references.

Each comparison runs on the host with the loop the ``cpu`` backend uses and with the GPU's
one-pass prolongation (``BMG_ONE_PASS``), so that the code the GPU runs is checked too.

Tolerance: kernel and reference add the same terms (base, up to six faces) in the same
order as the same products; where a compiler contracts a multiply-add the two differ by at
most (terms − 1)·u·Σ|terms| each, so by ≤ 16u·Σ|terms| together; we allow 32 eps·Σ|terms|
(the magnitude the norms kernel reports, M·d). A wrong index moves a term by O(|terms|).
Transfers and pointwise kernels are exact.

With fixed-value voxels (``held``): the batch's substrates 0, 2 and 3 hold scattered
voxels, a disc and a boundary plane (every pairing of a held voxel with a free one, an
interior, wrap or fixed face), their penalty in a as the run puts it there; the kernels
must leave them out of the coarse levels exactly as the reference does.
"""
import numpy as np
import pytest

from spatialdtp.backends.compiled_multigrid import BatchedKernels
from spatialdtp.backends.compiled_ops import CompiledOps
from spatialdtp.numerics.implicit import batched_multigrid as bmg
from spatialdtp.numerics.implicit.mg_solver import MultigridSolver

DTYPES = (np.float64, np.float32)
KINDS = [("no_flux", "no_flux"), ("fixed", "no_flux"), ("no_flux", "fixed"),
         ("fixed", "fixed"), ("periodic", "periodic")]
SHAPES = [(9, 14), (25, 3), (3, 50), (6, 5, 7), (11, 4, 9)]


@pytest.fixture(scope="module", params=["rows", "one_pass"])
def kernels(request, cpu, per_voxel_library, tmp_path_factory):
    """{dtype: BatchedKernels} for one of the two prolongation paths."""
    if request.param == "rows":
        return {d: BatchedKernels(cpu.ops(d)) for d in DTYPES}
    tmp = tmp_path_factory.mktemp("one_pass")
    return {d: BatchedKernels(CompiledOps(per_voxel_library(d, tmp, "batched_multigrid.cu",
                                                            "BMG_ONE_PASS"), np))
            for d in DTYPES}


def held_masks(shape, rng, B):
    """Fixed-value masks for substrates 0, 2, 3 (1 has none, and a uniform a): scattered
    voxels, a disc about the centre and the first plane along axis 0."""
    centre = np.indices(shape) - (np.array(shape) - 1).reshape((-1,) + (1,) * len(shape)) / 2
    disc = (centre ** 2).sum(axis=0) <= (min(shape) / 3) ** 2
    plane = np.zeros(shape, bool)
    plane[0] = True
    masks = [rng.uniform(size=shape) < 0.2, None, disc, plane]
    return (masks * B)[:B]


def random_batch(shape, dtype, rng, B=4, held=False):
    """A batch of B substrates: kinds cycling through every pair per axis, D a map for
    even s, a and b maps or numbers, fixed-face values, θΔt = 3 min, dx = 10 µm; with
    ``held`` the fixed-value voxels of :func:`held_masks`, held by the run's penalty
    (``Substrate._hold``: P = (max rate)/(u/2) added to a, P·value to b)."""
    nd = len(shape)
    kinds, values, D, a, b = [], [], [], [], []
    blocks = tuple(np.zeros((B,) + shape, dtype) for _ in range(3))
    for s in range(B):
        kinds.append(tuple(KINDS[(s + 2 * k) % len(KINDS)] for k in range(nd)))
        values.append(float(rng.uniform(0.5, 2.0)))
        if s % 2 == 0:
            blocks[0][s] = rng.uniform(50.0, 500.0, shape)
            D.append(blocks[0][s])
        else:
            D.append(float(rng.uniform(50.0, 500.0)))
        if s != 1:
            blocks[1][s] = rng.uniform(0.0, 2.0, shape)
            a.append(blocks[1][s])
        else:
            a.append(0.05)
        if s != 2:
            blocks[2][s] = rng.uniform(0.0, 1.0, shape)
            b.append(blocks[2][s])
        else:
            b.append(0.0)
    masks = held_masks(shape, rng, B) if held else None
    for s, h in enumerate(masks or ()):
        if h is not None:
            P = (2 * len(shape) * 500.0 / 10.0**2 + 2.0) / (np.finfo(dtype).eps / 2)
            a[s][h] += dtype(P)
            if isinstance(b[s], float):
                blocks[2][s] = b[s]
                b[s] = blocks[2][s]
            b[s][h] += dtype(P) * rng.uniform(0.5, 2.0, int(h.sum())).astype(dtype)
    return bmg.Batch(3.0, 10.0, kinds, values, D, a, b, blocks=blocks, held=masks)


def close(got, want, dtype, scale, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bound = 32 * np.finfo(dtype).eps * np.maximum(scale, np.finfo(dtype).tiny)
    err = np.abs(got - want)
    assert (err <= bound).all(), (f"{what}: {int((err > bound).sum())} values off, "
                                  f"worst {err.max():.3g}")


def setups(shape, dtype, rng, k, held=False):
    """The same batch set up twice: the reference levels and the kernels' levels."""
    batch = random_batch(shape, dtype, rng, held=held)
    ref, ker = bmg.hierarchy(shape), bmg.hierarchy(shape)
    bmg.ArrayBatchedOps(np, dtype).setup(ref, batch)
    k.setup(ker, batch)
    return batch, ref, ker


@pytest.mark.parametrize("held", [False, True], ids=["free", "held"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_coarsening_writes_the_reference_mass_and_faces_on_every_level(kernels, shape,
                                                                       dtype, held):
    rng = np.random.default_rng(len(shape) * 10 + shape[0])
    _, ref, ker = setups(shape, dtype, rng, kernels[dtype], held)
    assert len(ref) > 1
    for r, k in zip(ref[1:], ker[1:]):
        scale = np.abs(r.mass) + r.diag            # every face is below the diagonal
        close(k.mass, r.mass, dtype, scale, f"mass {r.shape}")
        for axis in range(len(shape)):
            for name in ("tin", "twrap", "tlo", "thi"):
                want, got = getattr(r, name)[axis], getattr(k, name)[axis]
                assert (want is None) == (got is None), (name, axis)
                if want is not None:
                    close(got, want, dtype, np.abs(want) * 2, f"{name}[{axis}] {r.shape}")
        close(k.inverse, r.inverse, dtype, np.abs(r.inverse).max() * 1e3, "inverse") if \
            r.coarse is None else None


@pytest.mark.parametrize("held", [False, True], ids=["free", "held"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_level_operators_match_the_reference_on_every_level(kernels, shape, dtype, held):
    k = kernels[dtype]
    ops = bmg.ArrayBatchedOps(np, dtype)
    rng = np.random.default_rng(7 + shape[0])
    batch, ref, ker = setups(shape, dtype, rng, k, held)
    omega = bmg._JACOBI_OMEGA[len(shape)]
    B = batch.size
    active = [True, False, True, True]
    for r, kl in zip(ref, ker):
        x = rng.standard_normal((B,) + r.shape).astype(dtype)
        b = rng.standard_normal((B,) + r.shape).astype(dtype)
        norms = ops.residual_norms(r, x, b)
        scale = (norms[:, bmg.M] * 2).reshape((B,) + (1,) * len(shape)) * r.diag
        for start in (x, None):
            want, got = np.full_like(x, 7.0), np.full_like(x, 7.0)
            ops.smooth(r, start, b, want, omega, active)
            k.smooth(kl, start, b, got, omega, active, record=start is not None)
            close(got, want, dtype, scale / r.diag + np.abs(x), f"smooth {r.shape}")
        got_n = k.residual_norms(kl, x, b)
        np.testing.assert_allclose(got_n[:, [bmg.R, bmg.X, bmg.NONFINITE]],
                                   norms[:, [bmg.R, bmg.X, bmg.NONFINITE]],
                                   rtol=64 * np.finfo(dtype).eps, atol=0)
        if r.coarse is None:
            continue
        cb_want = np.full((B,) + r.coarse.shape, 7.0, dtype)
        cb_got = cb_want.copy()
        ops.residual_restrict(r, x, b, cb_want, active)
        k.residual_restrict(kl, x, b, cb_got, active)
        close(cb_got, cb_want, dtype, np.abs(cb_want) + 1.0, f"restrict {r.shape}")
        e = rng.standard_normal((B,) + r.coarse.shape).astype(dtype)
        want, got = np.full_like(x, 7.0), np.full_like(x, 7.0)
        ops.prolong_smooth(r, x, e, b, want, omega, active)
        k.prolong_smooth(kl, x, e, b, got, omega, active)
        close(got, want, dtype, scale / r.diag + np.abs(x) + 4 * np.abs(e).max(),
              f"prolong_smooth {r.shape}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("theta", [1.0, 0.5])
def test_step_rhs_norms_clamp_predict_and_restart_match_the_reference(kernels, dtype,
                                                                      theta):
    k = kernels[dtype]
    ops = bmg.ArrayBatchedOps(np, dtype)
    rng = np.random.default_rng(3)
    shape = (7, 6, 9)
    batch, ref, ker = setups(shape, dtype, rng, k)
    c = rng.uniform(0.0, 5.0, (batch.size,) + shape).astype(dtype)
    rhs_w, rhs_g = np.empty_like(c), np.empty_like(c)
    n_w = ops.step_rhs(ref, batch, c, rhs_w, theta)
    n_g = k.step_rhs(ker, batch, c, rhs_g, theta)
    close(rhs_g, rhs_w, dtype, np.abs(rhs_w) + np.abs(c) * ref[0].diag, "rhs")
    np.testing.assert_allclose(n_g, n_w, rtol=64 * np.finfo(dtype).eps, atol=0)
    x = rng.uniform(-1.0, 5.0, c.shape).astype(dtype)    # negatives to clear
    xw, xg = x.copy(), x.copy()
    m_w = ops.residual_norms(ref[0], xw, rhs_w, clamp=True)
    m_g = k.residual_norms(ker[0], xg, rhs_w, clamp=True)
    np.testing.assert_array_equal(xg, xw)
    assert (xw >= 0).all() and m_w[:, bmg.CLAMPED].min() > 0
    np.testing.assert_allclose(m_g, m_w, rtol=1e-12 if dtype == np.float64 else 1e-5, atol=0)
    # a later check reads only the substrates still solving: a converged one (here 1) is
    # neither clamped nor measured, the others exactly as in a check of all
    active = [True, False, True, True]
    xw, xg = x.copy(), x.copy()
    m_w = ops.residual_norms(ref[0], xw, rhs_w, clamp=True, active=active)
    m_g = k.residual_norms(ker[0], xg, rhs_w, clamp=True, active=active)
    np.testing.assert_array_equal(xg, xw)
    np.testing.assert_array_equal(xg[1], x[1])
    assert (x[1] < 0).any() and (xw[[0, 2, 3]] >= 0).all()
    np.testing.assert_allclose(m_g[[0, 2, 3]], m_w[[0, 2, 3]],
                               rtol=1e-12 if dtype == np.float64 else 1e-5, atol=0)
    prev = rng.standard_normal(c.shape).astype(dtype)
    for beta in (0.0, 0.75):
        xw, pw, xg, pg = x.copy(), prev.copy(), x.copy(), prev.copy()
        ops.predict(xw, pw, beta, [True, False, True, True])
        k.predict(xg, pg, beta, [True, False, True, True])
        np.testing.assert_array_equal(xg, xw)
        np.testing.assert_array_equal(pg, pw)
    ops.restart(xw, pw, [1, 3])
    k.restart(xg, pg, [1, 3])
    np.testing.assert_array_equal(xg, xw)


@pytest.mark.parametrize("held", [False, True], ids=["free", "held"])
@pytest.mark.parametrize("shape", [(40, 33), (12, 9, 14), (3, 50), (5, 6)], ids=str)
def test_whole_batched_solves_with_kernels_match_the_reference_float64(cpu, shape, held):
    dtype = np.float64
    rng = np.random.default_rng(11)
    results = []
    for ops in (None, cpu.ops(dtype).batched_ops(dtype)):
        batch = random_batch(shape, dtype, np.random.default_rng(5), held=held)
        solver = MultigridSolver(shape, 10.0, batch.size, np, dtype, ops=ops)
        solver.prepare(batch)
        x = np.random.default_rng(9).uniform(0.0, 5.0, (batch.size,) + shape)
        c = x.copy()
        infos = solver.solve(x, c, 1.0, [1e-10] * batch.size)
        results.append((x, infos))
    (xr, ir), (xk, ik) = results
    assert all(i.converged for i in ir)
    assert [i.iterations for i in ik] == [i.iterations for i in ir]
    np.testing.assert_allclose(xk, xr, rtol=1e-12, atol=1e-12 * np.abs(xr).max())
    del rng


def on_device(xp, batch):
    """``batch`` with its blocks, maps and fixed-value masks as ``xp`` arrays."""
    blocks = tuple(xp.asarray(block) for block in batch.blocks)
    rows = [[blocks[k][s] if not isinstance(v, float) else v for s, v in enumerate(vals)]
            for k, vals in enumerate((batch.D, batch.a, batch.b))]
    held = [None if h is None else xp.asarray(h) for h in batch.held]
    return bmg.Batch(batch.theta_dt, batch.dx, batch.kinds, batch.values, *rows,
                     blocks=blocks, held=held)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(40, 33), (12, 9, 14)], ids=str)
def test_the_cupy_kernels_coarsen_and_solve_a_batch_with_held_voxels_as_the_reference(shape):
    import cupy

    from spatialdtp.backends import get_backend

    dtype = np.float64
    kops = get_backend("cupy").ops(dtype).batched_ops(dtype)
    batch = random_batch(shape, dtype, np.random.default_rng(5), held=True)
    x0 = np.random.default_rng(9).uniform(0.0, 5.0, (batch.size,) + shape)
    ref = MultigridSolver(shape, 10.0, batch.size, np, dtype)
    ker = MultigridSolver(shape, 10.0, batch.size, cupy, dtype, ops=kops)
    ref.prepare(batch)
    ker.prepare(on_device(cupy, batch))
    for r, k in zip(ref.levels[1:], ker.levels[1:]):
        close(cupy.asnumpy(k.mass), r.mass, dtype, np.abs(r.mass) + r.diag, f"mass {r.shape}")
        for axis in range(len(shape)):
            if r.tin[axis] is not None:
                close(cupy.asnumpy(k.tin[axis]), r.tin[axis], dtype, 2 * np.abs(r.tin[axis]),
                      f"tin[{axis}] {r.shape}")
    xr, xk = x0.copy(), cupy.asarray(x0)
    ir = ref.solve(xr, xr.copy(), 1.0, [1e-10] * batch.size)
    ik = ker.solve(xk, xk.copy(), 1.0, [1e-10] * batch.size)
    assert all(i.converged for i in ir)
    assert [i.iterations for i in ik] == [i.iterations for i in ir]
    np.testing.assert_allclose(cupy.asnumpy(xk), xr, rtol=1e-12, atol=1e-12 * np.abs(xr).max())
