"""The implicit reaction–diffusion step against closed forms and an independent sparse solve.

Every expected value here is derived by hand (heat kernel, cosh profile, layered flux),
by an FFT of the semi-discrete problem, or by scipy.sparse on a matrix assembled cell by
cell in this file; none comes from the module under test.
"""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from spatialdtp.model.boundary import Boundary
from spatialdtp.numerics.implicit import ImplicitSolver, SolveInfo
from spatialdtp.numerics.implicit.convergence import FLOOR_ULPS

F64 = np.float64


# --------------------------------------------------------------------------- helpers
def centres(n, dx):
    return (np.arange(n) + 0.5) * dx


def periodic_gaussian(shape, dx, var0, var):
    """Heat kernel on a periodic box: a Gaussian of variance var0 spread to variance var,
    summed over periodic images, amplitude 1 at the centre at t = 0."""
    out = np.ones(shape)
    for k, n in enumerate(shape):
        L = n * dx
        x = centres(n, dx) - L / 2
        g = sum(np.exp(-(x + m * L) ** 2 / (2 * var)) for m in range(-3, 4))
        g *= math.sqrt(var0 / var)
        out = out * g.reshape([-1 if j == k else 1 for j in range(len(shape))])
    return out


def assemble(shape, dx, D, a, b, kinds, g):
    """Sparse K and f with L(u) = −K u + f, assembled face by face with explicit loops."""
    shape = tuple(shape)
    N = int(np.prod(shape))
    D, a, b = (np.broadcast_to(np.asarray(v, float), shape) for v in (D, a, b))
    index = np.arange(N).reshape(shape)
    rows, cols, vals = [], [], []
    f = b.ravel().astype(float).copy()
    for cell in np.ndindex(*shape):
        i = index[cell]
        rows.append(i), cols.append(i), vals.append(a[cell])
        for k in range(len(shape)):
            for step, side in ((-1, 0), (+1, 1)):
                nb = list(cell)
                nb[k] += step
                kind = kinds[k][side]
                if 0 <= nb[k] < shape[k] or kind == "periodic":
                    nb[k] %= shape[k]
                    nb = tuple(nb)
                    T = 2 * D[cell] * D[nb] / (D[cell] + D[nb]) / dx**2   # harmonic mean
                    rows += [i, i]
                    cols += [i, index[nb]]
                    vals += [T, -T]
                elif kind == "fixed":      # value g on the face, half a voxel away
                    T = 2 * D[cell] / dx**2
                    rows.append(i), cols.append(i), vals.append(T)
                    f[i] += T * g
    return sp.csr_matrix((vals, (rows, cols)), shape=(N, N)), f


def theta_step_direct(c, K, f, dt, theta):
    A = sp.identity(c.size, format="csc") + theta * dt * K.tocsc()
    rhs = c.ravel() + dt * ((1 - theta) * (f - K @ c.ravel()) + theta * f)
    return spla.spsolve(A, rhs).reshape(c.shape)


def observed_order(errors, ratio=2.0):
    return [math.log(e1 / e2, ratio) for e1, e2 in zip(errors, errors[1:])]


# --------------------------------------------------------------------------- heat kernel
D_HEAT, DECAY, VAR0 = 1000.0, 0.05, 80.0**2        # µm²/min, 1/min, µm²


def gaussian_error(shape, box, T, dt, theta):
    dx = box / shape[0]
    solver = ImplicitSolver(shape, dx, dtype=F64)
    c = periodic_gaussian(shape, dx, VAR0, VAR0)
    bc = Boundary.uniform(len(shape), "periodic")
    for _ in range(round(T / dt)):
        c, info = solver.step(c, D=D_HEAT, a=DECAY, b=0.0, dt=dt, boundary=bc,
                              theta=theta, rtol=1e-13)
        assert info.converged
    exact = periodic_gaussian(shape, dx, VAR0, VAR0 + 2 * D_HEAT * T) * math.exp(-DECAY * T)
    return np.sqrt(np.mean((c - exact) ** 2)) / exact.max()


def test_gaussian_spreads_with_variance_2Dt_and_decays_second_order_in_space_2d():
    # Crank–Nicolson with small steps: time error (~1e-5) well below the spatial error
    errors = [gaussian_error((n, n), 800.0, T=4.0, dt=0.1, theta=0.5) for n in (32, 64, 128)]
    assert errors[-1] < 1e-3
    for p in observed_order(errors):
        assert p == pytest.approx(2.0, abs=0.3)


def test_gaussian_spreads_with_variance_2Dt_and_decays_second_order_in_space_3d():
    VAR_3D = 100.0**2
    errors = []
    for n in (12, 24, 48):
        dx = 600.0 / n
        solver = ImplicitSolver((n, n, n), dx, dtype=F64)
        c = periodic_gaussian((n, n, n), dx, VAR_3D, VAR_3D)
        bc = Boundary.uniform(3, "periodic")
        T, dt = 2.0, 0.125           # time error ~1e-6, below the spatial error
        for _ in range(round(T / dt)):
            c, info = solver.step(c, D=D_HEAT, a=DECAY, b=0.0, dt=dt, boundary=bc,
                                  theta=0.5, rtol=1e-10)
        exact = periodic_gaussian(c.shape, dx, VAR_3D, VAR_3D + 2 * D_HEAT * T)
        exact *= math.exp(-DECAY * T)
        errors.append(np.sqrt(np.mean((c - exact) ** 2)) / exact.max())
    for p in observed_order(errors):
        assert p == pytest.approx(2.0, abs=0.3)


def semidiscrete_exact(c0, dx, D, decay, T):
    """Exact time integration of the periodic semi-discrete problem, by FFT."""
    mu = -decay * np.ones(c0.shape)
    for k, n in enumerate(c0.shape):
        lam = -4 * D / dx**2 * np.sin(np.pi * np.fft.fftfreq(n)) ** 2
        mu = mu + lam.reshape([-1 if j == k else 1 for j in range(c0.ndim)])
    return np.real(np.fft.ifftn(np.fft.fftn(c0) * np.exp(mu * T)))


@pytest.mark.parametrize("theta, order", [(1.0, 1.0), (0.5, 2.0)])
def test_time_error_is_first_order_for_backward_euler_second_for_crank_nicolson(theta, order):
    n, box, T = 64, 800.0, 4.0
    dx = box / n
    c0 = periodic_gaussian((n, n), dx, VAR0, VAR0)
    exact = semidiscrete_exact(c0, dx, D_HEAT, DECAY, T)
    solver = ImplicitSolver((n, n), dx, dtype=F64)
    bc = Boundary.uniform(2, "periodic")
    errors = []
    for steps in (4, 8, 16):
        c = c0
        for _ in range(steps):
            c, _ = solver.step(c, D=D_HEAT, a=DECAY, b=0.0, dt=T / steps, boundary=bc,
                               theta=theta, rtol=1e-14)
        errors.append(np.abs(c - exact).max())
    for p in observed_order(errors):
        assert p == pytest.approx(order, abs=0.15)


# --------------------------------------------------------------------------- steady states
def one_d_boundary(low="fixed", high="no_flux", value=0.0):
    """A 1D problem along x: a 3-row grid, no-flux in y."""
    return Boundary((("no_flux", "no_flux"), (low, high)), value)


def test_backward_euler_with_huge_dt_reaches_the_cosh_uptake_profile():
    # oxygen-like: D = 1e5 µm²/min, uptake a = 10/min, penetration length ℓ = 100 µm
    L, D, a, c0 = 500.0, 1.0e5, 10.0, 38.0
    ell = math.sqrt(D / a)
    errors = []
    for n in (50, 100):
        dx = L / n
        solver = ImplicitSolver((3, n), dx, dtype=F64)
        c = np.zeros((3, n))
        for _ in range(2):
            c, info = solver.step(c, D=D, a=a, b=0.0, dt=1e9, boundary=one_d_boundary(value=c0),
                                  rtol=1e-13)
            assert info.converged
        x = centres(n, dx)
        exact = c0 * np.cosh((L - x) / ell) / np.cosh(L / ell)
        assert np.abs(c - c[1]).max() < 1e-12 * c0          # every row the same: 1D
        errors.append(np.abs(c[1] - exact).max() / c0)
    assert errors[0] < 2e-3
    assert observed_order(errors)[0] == pytest.approx(2.0, abs=0.3)


def test_layered_diffusivity_carries_the_exact_steady_flux():
    # A source in the last voxel drains through a fixed (0) face at x = 0 across layers of
    # D = 2000, 50, 800 µm²/min. The steady flux J is uniform and c(x) = J ∫₀ˣ dx'/D(x'):
    # piecewise linear, which the harmonic face mean reproduces exactly at voxel centres.
    n, dx = 30, 10.0
    Dx = np.r_[np.full(10, 2000.0), np.full(8, 50.0), np.full(12, 800.0)]
    D = np.tile(Dx, (3, 1))
    q = 5.0                                        # units/min in the last voxel
    b = np.zeros((3, n))
    b[:, -1] = q
    solver = ImplicitSolver((3, n), dx, dtype=F64)
    c = np.zeros((3, n))
    for _ in range(2):
        c, _ = solver.step(c, D=D, a=0.0, b=b, dt=1e12, boundary=one_d_boundary(), rtol=1e-14)
    J = q * dx                                     # flux per unit area through every face
    resistance = np.cumsum(np.r_[dx / 2 / Dx[0], dx / 2 / Dx[:-1] + dx / 2 / Dx[1:]])
    np.testing.assert_allclose(c[1], J * resistance, rtol=1e-9)


# --------------------------------------------------------------------------- conservation
def smooth_random(shape, rng, lo, hi):
    """A positive field varying smoothly between lo and hi."""
    y, x = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    ph = rng.uniform(0, 2 * np.pi, 2)
    return lo + (hi - lo) * 0.5 * (1 + np.sin(5 * x + ph[0]) * np.cos(3 * y + ph[1]))


def test_no_flux_box_conserves_mass_with_variable_D():
    rng = np.random.default_rng(1)
    shape, dx, dt = (40, 50), 10.0, 10.0
    D = smooth_random(shape, rng, 500.0, 20000.0)          # D·dt/dx² from 50 to 2000
    c = rng.uniform(0.0, 10.0, shape)
    solver = ImplicitSolver(shape, dx, dtype=F64)
    total0 = c.sum() * dx**3
    for theta in (1.0, 0.5):
        for _ in range(25):
            c, info = solver.step(c, D=D, a=0.0, b=0.0, dt=dt, boundary=Boundary.uniform(2),
                                  theta=theta, rtol=1e-14)
    assert c.std() < 0.05 * c.mean()                       # it did diffuse
    assert abs(c.sum() * dx**3 - total0) <= 1e-12 * total0


@pytest.mark.parametrize("theta", [1.0, 0.5])
def test_mass_changes_by_dt_times_sources_minus_sinks(theta):
    rng = np.random.default_rng(2)
    shape, dx, dt = (33, 47), 20.0, 10.0
    D = smooth_random(shape, rng, 1e3, 1e5)
    a = rng.uniform(0.0, 10.0, shape) * (rng.random(shape) < 0.5)
    b = rng.uniform(0.0, 50.0, shape) * (rng.random(shape) < 0.1)
    c = rng.uniform(0.0, 40.0, shape)
    solver = ImplicitSolver(shape, dx, dtype=F64)
    for _ in range(5):
        new, _ = solver.step(c, D=D, a=a, b=b, dt=dt, boundary=Boundary.uniform(2),
                             theta=theta, rtol=1e-14)
        c_theta = theta * new + (1 - theta) * c
        expected = dt * np.sum(b - a * c_theta)
        assert np.sum(new - c) == pytest.approx(expected, abs=1e-10 * np.abs(c).sum())
        c = new


# --------------------------------------------------------------------------- direct solve
MIXED_CASES = [
    ((9, 14), (("periodic", "periodic"), ("fixed", "no_flux"))),
    ((13, 27), (("no_flux", "fixed"), ("periodic", "periodic"))),
    ((5, 6, 7), (("fixed", "no_flux"), ("periodic", "periodic"), ("no_flux", "fixed"))),
]


@pytest.mark.parametrize("shape, kinds", MIXED_CASES)
@pytest.mark.parametrize("theta", [1.0, 0.5])
def test_step_equals_a_direct_sparse_solve(shape, kinds, theta):
    rng = np.random.default_rng(3)
    dx, dt, g = 15.0, 10.0, 3.0
    D = rng.uniform(100.0, 1.0e5, shape)      # jumps of up to 1000× between voxels
    a = rng.uniform(0.0, 10.0, shape)
    b = rng.uniform(0.0, 5.0, shape)
    c = rng.uniform(0.0, 40.0, shape)
    K, f = assemble(shape, dx, D, a, b, kinds, g)
    solver = ImplicitSolver(shape, dx, dtype=F64)
    bc = Boundary(kinds, g)
    L = solver.apply_operator(c, D=D, a=a, b=b, boundary=bc)
    np.testing.assert_allclose(L, (f - K @ c.ravel()).reshape(shape),
                               rtol=1e-12, atol=1e-12 * np.abs(f).max())
    expected = theta_step_direct(c, K, f, dt, theta)
    before = c.copy()
    new, info = solver.step(c, D=D, a=a, b=b, dt=dt, boundary=bc, theta=theta, rtol=1e-13)
    assert info.converged and info.residual <= 1e-13
    np.testing.assert_array_equal(c, before)                # c untouched
    assert np.abs(new - expected).max() <= 1e-10 * np.abs(expected).max()


# --------------------------------------------------------------------------- positivity
def test_backward_euler_keeps_a_delta_nonnegative_where_crank_nicolson_does_not():
    rng = np.random.default_rng(4)
    shape, dx, dt = (48, 48), 10.0, 1.0e4
    c = np.zeros(shape)
    c[20, 30] = 1.0e3
    D = 1.0e3
    a = np.where(rng.random(shape) < 0.5, 10.0, 0.0)       # a·dt = 1e5 in half the voxels
    solver = ImplicitSolver(shape, dx, dtype=F64)
    K, f = assemble(shape, dx, D, a, 0.0, Boundary.uniform(2).kinds, 0.0)
    be, info = solver.step(c, D=D, a=a, b=0.0, dt=dt, boundary=Boundary.uniform(2),
                           rtol=1e-12)
    assert info.converged and be.min() >= 0.0
    # nothing but rounding was clamped: the M-matrix solution itself is non-negative, and
    # the solve is within its precision floor of it. The floor bounds the diagonally scaled
    # residual by FLOOR_ULPS·u·max|rhs| (rhs = c here); the error is at most κ(D⁻¹A) ≤
    # 1 + 4DΔt/dx² times that (D⁻¹A has unit diagonal and off-diagonal row sums below 1).
    direct = theta_step_direct(c, K, f, dt, 1.0)
    assert direct.min() >= -1e-12 * c.max()
    kappa = 1.0 + 4.0 * D * dt / dx**2
    bound = kappa * FLOOR_ULPS * np.finfo(F64).eps / 2 * c.max()
    assert np.abs(be - direct).max() <= bound
    assert info.clamped <= bound * c.size
    cn, _ = solver.step(c, D=D, a=a, b=0.0, dt=dt, boundary=Boundary.uniform(2),
                        theta=0.5, rtol=1e-12)
    assert cn.min() < -1.0        # the check above could see negatives


# --------------------------------------------------------------------------- stiff regime
def oxygen_like(shape, a_dt, seed=5):
    """Patchy uptake (cells in half the voxels) and 2% vessel voxels supplying 38 mmHg."""
    rng = np.random.default_rng(seed)
    dt = 10.0
    vessel = rng.random(shape) < 0.02
    a = np.where(rng.random(shape) < 0.5, a_dt / dt, 0.0) + 10.0 * vessel
    b = 10.0 * 38.0 * vessel
    c = rng.uniform(0.0, 40.0, shape)                      # far from the steady state
    return c, a, b, dt


@pytest.mark.parametrize("a_dt", [0.0, 1.0, 100.0])
@pytest.mark.parametrize("dtype, rtol, bound", [(np.float32, 1e-6, 12), (np.float64, 1e-10, 20)])
def test_stiff_oxygen_regime_converges_in_few_iterations(a_dt, dtype, rtol, bound):
    shape, dx = (128, 128), 20.0
    c, a, b, dt = oxygen_like(shape, a_dt)
    D = 1.0e4 * dx**2 / dt                                  # D·dt/dx² = 1e4
    solver = ImplicitSolver(shape, dx, dtype=dtype)
    c, a, b = (v.astype(dtype) for v in (c, a, b))
    for _ in range(3):                                     # cold start, then warm starts
        c, info = solver.step(c, D=D, a=a, b=b, dt=dt, boundary=Boundary.uniform(2), rtol=rtol)
        # float32 cannot verify 1e-6: the true residual stops at its precision floor
        assert info.converged and (info.residual <= rtol or info.floor)
        assert info.iterations <= bound     # measured: ≤ 8 (float32), ≤ 12 (float64)
        assert c.dtype == dtype


def test_stiff_regime_in_3d_converges():
    c, a, b, dt = oxygen_like((32, 32, 32), 100.0)
    dx = 20.0
    solver = ImplicitSolver(c.shape, dx, dtype=np.float32)
    c, a, b = (v.astype(np.float32) for v in (c, a, b))
    _, info = solver.step(c, D=1.0e4 * dx**2 / dt, a=a, b=b, dt=dt,
                          boundary=Boundary.uniform(3), rtol=1e-6)
    assert info.converged and info.iterations <= 16        # measured: 11


def test_max_iter_reached_is_reported_not_converged():
    c, a, b, dt = oxygen_like((64, 64), 1.0)
    solver = ImplicitSolver(c.shape, 20.0, dtype=F64)
    new, info = solver.step(c, D=1e5, a=a, b=b, dt=dt, boundary=Boundary.uniform(2),
                            rtol=1e-14, max_iter=2)
    assert isinstance(info, SolveInfo)
    assert info.iterations == 2 and not info.converged and info.residual > 1e-14
    assert new.shape == c.shape and np.isfinite(new).all()


@pytest.mark.parametrize("scale", [1e-23, 1e-35])
def test_a_washed_out_float32_field_steps_like_the_same_field_at_unit_size(scale):
    """A drug washing out over a drug holiday (no source) reaches 1e-23 µM and below,
    whose squares underflow float32; the step is linear and must scale with the field
    instead of freezing it or dividing by zero."""
    c, a, _, dt = oxygen_like((32, 32), 100.0)
    c, a = c.astype(np.float32) / 40.0, a.astype(np.float32)
    solver = ImplicitSolver(c.shape, 20.0, dtype=np.float32)
    unit, _ = solver.step(c, D=6000.0, a=a, b=0.0, dt=dt, boundary=Boundary.uniform(2))
    tiny, info = solver.step(c * np.float32(scale), D=6000.0, a=a, b=0.0, dt=dt,
                             boundary=Boundary.uniform(2))
    assert info.converged and np.isfinite(tiny).all()
    assert np.abs(tiny / scale - unit).max() <= 1e-4 * unit.max()


# --------------------------------------------------------------------------- bad input
def test_boundary_rejects_unknown_kind_and_one_sided_periodic():
    with pytest.raises(ValueError, match="'dirichlet'.*allowed kinds"):
        Boundary((("no_flux", "dirichlet"), ("no_flux", "no_flux")))
    with pytest.raises(ValueError, match="periodic must be set on both faces"):
        Boundary((("periodic", "no_flux"), ("no_flux", "no_flux")))
    assert Boundary.uniform(3, "fixed", 2.0).kinds == (("fixed", "fixed"),) * 3


def test_step_rejects_bad_input_by_name():
    solver = ImplicitSolver((8, 10), 10.0, dtype=F64)
    c = np.ones((8, 10))
    ok = dict(D=1.0, a=0.0, b=0.0, dt=1.0, boundary=Boundary.uniform(2))
    with pytest.raises(ValueError, match=r"dt=-1\.0"):
        solver.step(c, **{**ok, "dt": -1.0})
    with pytest.raises(ValueError, match=r"c has shape \(10, 8\)"):
        solver.step(np.ones((10, 8)), **ok)
    with pytest.raises(ValueError, match=r"D has shape \(8, 9\)"):
        solver.step(c, **{**ok, "D": np.ones((8, 9))})
    with pytest.raises(ValueError, match="D has minimum 0.0"):
        solver.step(c, **{**ok, "D": np.zeros((8, 10))})
    with pytest.raises(ValueError, match="a=-1.0"):
        solver.step(c, **{**ok, "a": -1.0})
    with pytest.raises(ValueError, match="boundary has 3 axes"):
        solver.step(c, **{**ok, "boundary": Boundary.uniform(3)})
    with pytest.raises(ValueError, match="dtype float32"):
        solver.step(c.astype(np.float32), **ok)
    with pytest.raises(ValueError, match="theta=1.5"):
        solver.step(c, **{**ok, "theta": 1.5})
    with pytest.raises(ValueError, match=r"shape=\[2, 10\]"):
        ImplicitSolver((2, 10), 10.0)
