"""The radial problems of the work–precision benchmark (benchmarks/work_precision.py):
Krogh's cylinder and the spheroid with an anoxic core. Each closed form against its own
ODE and boundary conditions, then spatialdtp's solver converging to it as the grid is
refined, at the first order a staircased circle allows (bound derived below)."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import work_precision as wp  # noqa: E402

K = wp.KROGH
S = wp.SPHEROID


def _krogh(r):
    return wp.krogh_exact(np.asarray(r, float), K["Rc"], K["Rt"], K["D"],
                          wp.krogh_uptake(**K), K["cv"])


def _sphere(r, cR=S["cR"]):
    return wp.spheroid_exact(np.asarray(r, float), S["R"], S["D"], S["M"], cR)


def test_krogh_closed_form_solves_its_ode_and_boundary_conditions():
    M, D, Rc, Rt, cv = wp.krogh_uptake(**K), K["D"], K["Rc"], K["Rt"], K["cv"]
    h = 1e-2
    r = np.linspace(Rc + 1.0, Rt - 1.0, 50)
    # (1/r)(r c')' = c'' + c'/r = M/D, central differences (error O(h²) ≈ 1e-10 here)
    lap = (_krogh(r + h) - 2 * _krogh(r) + _krogh(r - h)) / h**2 \
        + (_krogh(r + h) - _krogh(r - h)) / (2 * h) / r
    np.testing.assert_allclose(lap, M / D, rtol=1e-5)
    assert _krogh(Rc) == pytest.approx(cv, abs=1e-14)                       # c(R_c) = c_v
    assert (_krogh(Rt) - _krogh(Rt - h)) / h == pytest.approx(0.0, abs=1e-6)  # c'(R_t) = 0
    assert _krogh(Rt) == pytest.approx(cv - K["drop"], rel=1e-12)            # M's definition
    # uptake makes c fall monotonically from the vessel; constant c(R_t) beyond R_t and c_v
    # inside the vessel
    assert np.all(np.diff(_krogh(r)) < 0)
    np.testing.assert_allclose(_krogh([Rt, 1.3 * Rt, 2 * Rt]), _krogh(Rt), rtol=0, atol=0)
    np.testing.assert_allclose(_krogh([0.0, Rc / 2]), cv, rtol=0, atol=0)


def test_spheroid_closed_form_and_its_anoxic_radius():
    R, D, M, cR = S["R"], S["D"], S["M"], S["cR"]
    rn = wp.anoxic_radius(R, D, M, cR)
    # M = 12 D c_R/R² was chosen so that (M/(6D))(R − r_n)²(R + 2 r_n)/R = c_R at r_n = R/2
    assert rn == pytest.approx(R / 2, rel=1e-9)
    h = 1e-2
    r = np.linspace(rn + 1.0, R - 1.0, 50)
    # (1/r²)(r² c')' = c'' + 2c'/r = M/D on the oxygenated shell
    lap = (_sphere(r + h) - 2 * _sphere(r) + _sphere(r - h)) / h**2 \
        + 2 * (_sphere(r + h) - _sphere(r - h)) / (2 * h) / r
    np.testing.assert_allclose(lap, M / D, rtol=1e-5)
    assert _sphere(R - 1e-9) == pytest.approx(cR, rel=1e-9)                # c(R) = c_R
    assert _sphere(rn) == pytest.approx(0.0, abs=1e-14)                    # c(r_n) = 0
    assert (_sphere(rn + h) - _sphere(rn)) / h == pytest.approx(0.0, abs=1e-5)  # c'(r_n)=0
    np.testing.assert_allclose(_sphere(np.linspace(0, rn, 7)), 0.0, atol=1e-14)  # anoxic
    assert np.all(np.diff(_sphere(r)) > 0)
    # no core when c_R ≥ M R²/(6D): the plain parabola, c(0) = c_R − M R²/(6D) ≥ 0
    big = 1.2 * M * R**2 / (6 * D)
    assert wp.anoxic_radius(R, D, M, big) == 0.0
    rr = np.linspace(0.0, R - 1.0, 9)
    np.testing.assert_allclose(_sphere(rr, big), big - (M / (6 * D)) * (R**2 - rr**2))
    # and the core radius against an independent solve of the free-boundary BVP: shoot
    # from r_n with c = c' = 0 (scipy's solve_ivp) and land on c(R) = c_R
    from scipy.integrate import solve_ivp

    sol = solve_ivp(lambda t, y: [y[1], M / D - 2 * y[1] / t], (rn, R), [0.0, 0.0],
                    rtol=1e-10, atol=1e-12)
    assert sol.y[0, -1] == pytest.approx(cR, rel=1e-7)


# The simulator's error on the grids. Leading-order bound: a voxel is fixed when its
# centre is inside the vessel (outside the sphere), so the discrete wall, the fixed centres
# next to a free voxel, lies within one voxel of the true circle (a free neighbour's centre
# is ≥ R_c from the axis and dx from the fixed one): the wall moves by δ ∈ [0, dx), which
# shifts the solution by |c'(wall)| δ < |c'(wall)| dx. In Krogh's cylinder the uptake
# annulus ends at the staircased R_t as well: moving it by δ changes the uptake per unit
# length by 2π R_t M δ, i.e. the flux at radius r by R_t M δ/r, whose integral from R_c
# out is (M R_t δ/D) ln(R_t/R_c). The 5-point (7-point) stencil's own error is O(dx²).
# So max|c − c_exact| ≤ C dx + O(dx²): first order, with
#   Krogh:    C = |c'(R_c)| + (M R_t/D) ln(R_t/R_c),  c'(R_c) = (M/(2D))(R_c − R_t²/R_c)
#   spheroid: C = c'(R) = (M/(3D))(R − r_n³/R²)
# (the spheroid's uptake is Michaelis–Menten with Km = 1e-4 c_R, an O(Km) ≈ 1e-4 change).
# Time: Δt and t_end put the start's transient below 1e-4 (the slowest mode decays by
# 1/(1 + λΔt) per step, λ ≳ 20/min), so the error is the grid's.
def _krogh_bound():
    M, D, Rc, Rt = wp.krogh_uptake(**K), K["D"], K["Rc"], K["Rt"]
    return abs(M / (2 * D) * (Rc - Rt**2 / Rc)) + M * Rt / D * math.log(Rt / Rc)


def _sphere_bound():
    R, D, M = S["R"], S["D"], S["M"]
    rn = wp.anoxic_radius(R, D, M, S["cR"])
    return M / (3 * D) * (R - rn**3 / R**2)


def _errors(problem, ns, dt):
    out = {}
    for n in ns:
        q = wp.Radial(problem, K if problem == "krogh" else S, n)
        c, _steps, _its = wp.run_spatialdtp_radial(q, dt, "pcg", 1e-8)
        out[q.dx] = q.error(c)
    return out


def test_krogh_error_is_first_order_in_dx():
    errors = _errors("krogh", (15, 30, 60), dt=1.0)          # dx = 8, 4, 2 µm
    C = _krogh_bound()
    for dx, e in errors.items():
        assert e <= C * dx, (errors, C)
    assert errors[2.0] < errors[8.0], errors


def test_spheroid_error_is_first_order_in_dx():
    errors = _errors("spheroid", (11, 22), dt=0.3)            # dx = 20, 10 µm
    C = _sphere_bound()
    for dx, e in errors.items():
        assert e <= C * dx, (errors, C)
    assert errors[10.0] < errors[20.0], errors


@pytest.mark.slow
def test_spheroid_error_is_first_order_in_dx_on_a_finer_grid():
    errors = _errors("spheroid", (44,), dt=0.3)               # dx = 5 µm
    assert errors[5.0] <= _sphere_bound() * 5.0, errors


def test_the_radial_problems_run_every_method_in_one_run():
    res = wp.run(quick=True, log=lambda *_: None, problems=("krogh",), n=15)
    methods = {r["method"] for r in res["rows"] if r["problem"] == "krogh"}
    assert {"spatialdtp multigrid", "spatialdtp pcg", "LOD/Thomas"} <= methods
    assert any(s["method"] == "py-pde" for s in res["skipped"])
    # the multigrid and PCG solvers solve the same systems
    by = {(r["method"], r["dt_min"]): r["error"] for r in res["rows"]}
    for dt in wp.QUICK_RADIAL_DTS:
        assert by[("spatialdtp multigrid", dt)] == pytest.approx(
            by[("spatialdtp pcg", dt)], rel=1e-2)


def test_the_benchmark_runs_multigrid_as_the_simulation_does_with_its_fallback():
    """Krogh's cylinder in one 3-min step at 2 µm: a multigrid solve that stalls is handed
    to PCG by the run (spatialdtp.run.substrate_step), so the benchmark does the same (and
    counts it; tests/test_multigrid_fixed_voxels.py checks none is needed any more); both
    solve the same system to rtol 1e-8 and agree far below the error. Without the fallback
    the benchmark once reported multigrid's stalled iterate (0.07 against 0.029)."""
    q = wp.Radial("krogh", K)
    mg = q.error(wp.run_spatialdtp_radial(q, 3.0, "multigrid", 1e-8)[0])
    pcg = q.error(wp.run_spatialdtp_radial(q, 3.0, "pcg", 1e-8)[0])
    assert mg == pytest.approx(pcg, rel=1e-4)
