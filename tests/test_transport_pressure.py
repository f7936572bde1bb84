"""The tumour's expansion by proliferation pressure: a porous medium that carries S, P and R
together and leaves the stroma where it is (:func:`spatialdtp.numerics.transport.push_tumour`).

Where there is no stroma the tumour total T obeys the porous-medium equation

    ∂T/∂t = ∂x ( D_p (T/K) ∂x T ) + r T (1 − T/K),

whose sharp travelling wave is known in closed form (Newman 1980; Aronson 1980; Sánchez-
Garduño & Maini 1994): with u = T/K, z = x − ct,

    u(z) = 1 − exp((z − z0) √(r/(2 D_p)))  for z < z0,   0 beyond,     c = √(D_p r / 2).

With stroma the flux into a voxel is limited to the room the stroma leaves there; that
case is checked against a scipy method-of-lines solve of the continuum equation.
"""
import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from spatialdtp.numerics.transport import pressure_substeps, push_tumour

K = 1.0          # capacity, cells/voxel


def push(S, P=None, R=None, stroma=None, D=1.0, t=60.0, dx=10.0):
    zero = np.zeros_like(S)
    P = zero if P is None else P
    R = zero if R is None else R
    F = zero if stroma is None else stroma
    return push_tumour([S, P, R, F, zero], D, t, dx, K, np)


# --------------------------------------------------------------- the sharp travelling wave
D_P, RATE = 2.0, 1.0e-3            # µm²/min, 1/min
SPEED = math.sqrt(D_P * RATE / 2)  # µm/min
DECAY = math.sqrt(RATE / (2 * D_P))  # 1/µm: 1 − u behind the front


def wave(x, z0):
    return np.where(x < z0, 1 - np.exp(np.minimum(x - z0, 0.0) * DECAY), 0.0)


def logistic(u, t):
    """The exact logistic flow u' = r u (1 − u) over t."""
    e = math.exp(RATE * t)
    return u * e / (1 + u * (e - 1))


def front_speed(dx, t_end=4000.0, dt=20.0):
    """Strang splitting of the pressure flux (the module under test) with the exact
    logistic flow; the front speed from the growth of the total, d/dt ∫u dx = c once the
    profile travels (u → 1 behind it, 0 ahead)."""
    x = (np.arange(int(3000 / dx)) + 0.5) * dx
    u0 = wave(x, 1000.0)[None, :]
    u, zero = u0, np.zeros_like(u0)
    for _ in range(int(round(t_end / dt))):
        u = logistic(u, dt / 2)
        u = push_tumour([u, zero, zero, zero, zero], D_P, dt, dx, K, np)[0]
        u = logistic(u, dt / 2)
    return (u.sum() - u0.sum()) * dx / t_end, np.abs(u[0] - wave(x, 1000.0 + SPEED * t_end)).max()


def test_the_front_moves_at_the_porous_medium_fisher_speed():
    """c = √(D_p r/2) = 0.0316 µm/min. The centred flux is second order where T is smooth;
    the front's kink (u linear in z0 − z) costs it at most half an order, so the speed error
    must fall at least as dx^1.5, and at dx = 2.5 µm (28 voxels per decay length 1/DECAY =
    63 µm) lie within 0.1 %. The profile error falls at least linearly (the kink)."""
    results = [front_speed(dx) for dx in (10.0, 5.0, 2.5)]
    speed_errors = np.array([abs(c / SPEED - 1) for c, _ in results])
    profile_errors = np.array([e for _, e in results])
    assert np.all(np.log2(speed_errors[:-1] / speed_errors[1:]) > 1.5), speed_errors
    assert speed_errors[-1] < 1e-3, speed_errors
    assert np.all(np.log2(profile_errors[:-1] / profile_errors[1:]) > 0.5), profile_errors
    assert profile_errors[-1] < 0.01 * K


def test_sparse_cells_are_barely_pushed():
    """The flux is D_p (T_a² − T_b²)/(2K dx): quadratic in the density scale. Halving every
    density quarters what moves in a step (linear diffusion would halve it), so the few
    persisters left under drug are not pushed around (T/K ≈ 10⁻³: 1000× slower than a dense
    tumour)."""
    x = (np.arange(50) + 0.5) * 10.0
    ramp = np.clip(1 - x / 300.0, 0, None)[None, :]

    assert pressure_substeps(5.0, 4.0, 10.0, 2) == 1    # one explicit step: no feedback

    def moved(scale):
        T0 = scale * 0.6 * K * ramp
        return np.abs(push(T0, D=5.0, t=4.0)[0] - T0).sum()
    assert moved(0.5) / moved(1.0) == pytest.approx(0.25, rel=1e-9)
    assert moved(1e-3) / moved(1.0) == pytest.approx(1e-6, rel=1e-6)


# --------------------------------------------------------------- what the flux must not do
def test_a_uniform_tumour_does_not_move_and_does_not_drain_a_caf_patch():
    """Pressure is the tumour's own: T uniform over a CAF patch (whose voxels are fuller)
    gives no flux at all, so persisters in a niche stay in it (the defect of random motility
    that issue 11 removed would drain them)."""
    rng = np.random.default_rng(1)
    shape = (16, 16)
    # any mix of S, P, R in 64ths of T = 3/8 K: dyadic, so S + P + R is exactly uniform
    a = rng.integers(0, 33, shape)
    b = rng.integers(0, 64 - a + 1)
    S, P, R = (0.375 * K * k / 64 for k in (a, b, 64 - a - b))
    cafs = np.zeros(shape)
    cafs[5:10, 4:9] = 0.5 * K
    out = push(S, P, R, stroma=cafs, D=50.0, t=600.0)
    for before, after in zip((S, P, R, cafs), out):
        np.testing.assert_array_equal(after, before)


def test_the_flux_carries_each_voxels_mix_and_does_not_mix_types():
    """S, P and R move with one velocity: a tumour whose persister share is the same
    everywhere keeps it everywhere, to rounding, however the total spreads."""
    x = (np.arange(60) + 0.5) * 10.0
    T = (0.6 * K * np.exp(-((x - 300.0) / 120.0) ** 2))[None, :]
    S, P, R = 0.9 * T, 0.07 * T, 0.03 * T
    out = push(S, P, R, D=20.0, t=2000.0)
    total = out[0] + out[1] + out[2]
    moved = total > 1e-12
    assert np.abs(total - T).max() > 0.05 * K          # the tumour did spread
    np.testing.assert_allclose(out[1][moved] / total[moved], 0.07, rtol=1e-12)
    np.testing.assert_allclose(out[2][moved] / total[moved], 0.03, rtol=1e-12)


def test_no_cell_is_pushed_into_a_full_voxel_and_capacity_holds():
    """A wall of full stroma voxels gains no tumour cells; random mixtures under capacity
    stay under it, each type conserved and non-negative (the module docstring's bounds)."""
    x = np.arange(40)
    T = np.where(x < 20, 0.9 * K, 0.0)[None, :].astype(float)
    wall = np.where(x >= 25, K, 0.0)[None, :].astype(float)
    out = push(T, stroma=wall, D=30.0, t=5000.0)
    assert np.all(out[0][0, 25:] == 0.0)
    assert out[0][0, 20:25].sum() > 0                  # it did spread up to the wall
    assert out[0].sum() == pytest.approx(T.sum(), rel=1e-12)

    rng = np.random.default_rng(3)
    shape = (14, 13)
    total = rng.uniform(0, K, shape)
    parts = rng.dirichlet(np.ones(5), shape)
    cells = [total * parts[..., j] for j in range(5)]
    out = push_tumour(cells, 40.0, 900.0, 10.0, K, np)
    assert (sum(out) <= K * (1 + 1e-12)).all()
    for before, after in zip(cells, out):
        assert after.sum() == pytest.approx(before.sum(), rel=1e-12)
        assert after.min() >= 0


def test_substeps_respect_the_explicit_stability_limit():
    assert pressure_substeps(0.0, 30.0, 20.0, 2) == 1
    for D, tau, dim in ((2.0, 30.0, 2), (80.0, 5.0, 3), (0.3, 300.0, 2)):
        m = pressure_substeps(D, tau, 20.0, dim)
        assert 2 * dim * D * (tau / m) / 20.0**2 <= 0.9
        assert 2 * dim * D * (tau / (m - 1)) / 20.0**2 > 0.9 if m > 1 else True


# --------------------------------------------------------------- with stroma: scipy
L, D_S, T_END = 400.0, 3.0, 2000.0


def stroma_at(x):
    """Static CAFs holding 0.5 of the room beyond x = 220 µm (30-µm smooth edge)."""
    return 0.5 * K * 0.5 * (1 + np.tanh((x - 220.0) / 30.0))


def tumour_at(x):
    return 0.7 * K * np.exp(-((x - 150.0) / 60.0) ** 2)


def scipy_reference(nx=1600):
    """∂T/∂t = ∂x(D_p (T/K) s ∂x T) with s = (K − T − o)/(K − T), the room the stroma
    leaves, by centred face averages on a fine grid, LSODA to 1e-10."""
    h = L / nx
    x = (np.arange(nx) + 0.5) * h
    o = stroma_at(x)

    def rhs(t, T):
        s = np.clip((K - T - o) / (K - T), 0.0, 1.0)
        Tf, sf = 0.5 * (T[1:] + T[:-1]), 0.5 * (s[1:] + s[:-1])
        J = -D_S * Tf / K * sf * np.diff(T) / h
        return -np.diff(np.concatenate([[0.0], J, [0.0]])) / h
    sol = solve_ivp(rhs, (0, T_END), tumour_at(x), method="LSODA", rtol=1e-10, atol=1e-13)
    return sol.y[:, -1]


def test_the_room_stroma_leaves_limits_the_flux_as_the_continuum_equation():
    """The limiter s is taken in the voxel cells enter (upwind), so the scheme is first
    order there: the error against the continuum solution averaged onto each voxel must fall
    at least as dx^0.8 and be under 1 % of K at 160 voxels; ignoring the stroma is far off."""
    ref = scipy_reference()
    errors = []
    for nx in (40, 80, 160):
        dx = L / nx
        x = (np.arange(nx) + 0.5) * dx
        got = push(tumour_at(x)[None, :], stroma=stroma_at(x)[None, :], D=D_S, t=T_END,
                   dx=dx)[0][0]
        errors.append(np.abs(got - ref.reshape(nx, -1).mean(axis=1)).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 0.8), (errors, orders)
    assert errors[-1] < 1e-2 * K, errors
    dx = L / 160
    x = (np.arange(160) + 0.5) * dx
    free = push(tumour_at(x)[None, :], D=D_S, t=T_END, dx=dx)[0][0]
    assert np.abs(free - ref.reshape(160, -1).mean(axis=1)).max() > 5 * errors[-1]


# --------------------------------------------------------------- the calibration, end to end
@pytest.mark.slow
def test_the_models_spheroid_grows_as_fast_as_measured_spheroids():
    """The default D_p is calibrated so that the model's own 3D spheroid in 21 % O2 medium
    grows as melanoma spheroids do at radii 150–300 µm: 7.2–16.1 µm/day, the slopes of the
    daily median radii of 8 seedings of WM793b and WM983b (Browning et al. 2021, eLife
    10:e73020, data file IncucyteData.csv; docs/parameters.md). The model must fall inside
    the measured range (it gives 12.3, the data's mean 12.2). Without the pressure flux only
    random motility spreads it, at most at the Fisher–KPP speed 2√(D r_n) =
    2√(0.005 × 6.67e-4) µm/min = 5.3 µm/day, below every measured spheroid."""
    from spatialdtp.api import load_config
    from spatialdtp.run.simulation import Simulation

    def speed(mobility=None):
        extra = [] if mobility is None else [f"cells.pressure_mobility={mobility}"]
        cfg = load_config([
            "treatment=none", "grid.shape=[44,44,44]", "run.dt=30", "run.progress=false",
            "tissue.vessels.kind=none", "tissue.stroma.kind=none",
            "tissue.macrophages.density=0", "tissue.tumour.radius=200",
            "tissue.tumour.center=[0.5,0.5,0.5]", "tissue.tumour.density=0.9",
            "substrates.oxygen.boundary.default=fixed", "substrates.oxygen.boundary_value=160",
            "substrates.oxygen.initial=160", "substrates.oxygen.decay=0",
            "substrates.glucose.boundary.default=fixed", "substrates.glucose.boundary_value=25",
            "substrates.glucose.initial=25", *extra])
        sim = Simulation(cfg)

        def radius():                  # of the ball holding the voxels above 0.1 K
            T = sum(sim.field(c) for c in "SPR") / sim.capacity
            return (3 * (T > 0.1).sum() * cfg.grid.dx**3 / (4 * math.pi)) ** (1 / 3)
        radii = []
        for day in range(3, 9):
            sim.run_until(days=day)
            radii.append(radius())
        return radii, np.polyfit(np.arange(3, 9), radii, 1)[0]
    radii, calibrated = speed()
    assert 150 < radii[0] and radii[-1] < 330            # within the data's radii
    assert 7.2 < calibrated < 16.1
    assert speed(0.0)[1] < 2 * math.sqrt(0.005 * (7.2e-4 - 5.32e-5)) * 1440 < 7.2
