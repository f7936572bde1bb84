"""Multigrid with fixed-value voxels (``substrates.<name>.maps.fixed``) as a solver on its
own: the coarse levels leave the held voxels out (spatialdtp.numerics.implicit.
batched_multigrid, "Held voxels"), so the V-cycle contracts on a problem with a held disc
(Krogh's vessel) or a held shell (the spheroid's medium) about as it does on the same
problem without them, and the work–precision benchmark's Krogh cylinder is solved without
handing a step to PCG.

The bound. The step holds a voxel by a penalty P ≈ S/u in its row, so after the first sweep
its error is zero to within u: the error the cycles must remove lives on the free voxels,
with zero Dirichlet values on the held ones. That system is a principal submatrix of the
free problem's (the same tissue without the penalty), whose eigenvalues interlace the full
matrix's: it is no harder. A multigrid that treats the held boundary as well as its interior
would contract as on the free problem, ρ_held ≈ ρ_free; the coarse cells straddling the
staircased boundary see it only approximately, and we allow them half the cycles again:
ρ_held ≤ ρ_free^(2/3), i.e. at most 1.5 times the free problem's cycles per digit (the
contraction factor itself is no measure of work: cycles per digit, 1/log₁₀(1/ρ), are).
Averaging the penalty into the coarse masses, as the coarse levels did before, needs 2.1
(spheroid) to 2.8 (Krogh) times the free problem's cycles.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import work_precision as wp  # noqa: E402
from spatialdtp.model.boundary import Boundary  # noqa: E402
from spatialdtp.numerics.implicit import batched_multigrid as bmg  # noqa: E402
from spatialdtp.numerics.implicit.convergence import SolveInfo  # noqa: E402
from spatialdtp.numerics.implicit.mg_solver import MultigridSolver  # noqa: E402

#: cycles run, and the last ones the asymptotic contraction is measured over (the first
#: ones remove the start's rough error faster than the slowest mode decays)
CYCLES, TAIL = 16, 6


def step_solver(q, a, b, held, dt=3.0):
    """Multigrid prepared for one backward-Euler step of ``q`` (coefficients a, b;
    ``held``: the fixed-value mask, or None), as the benchmark prepares it."""
    bc = Boundary.uniform(q.ndim, "no_flux")
    mg = MultigridSolver(q.shape, q.dx, 1, np, np.float64)
    mg.prepare(bmg.Batch(dt, q.dx, [bc.kinds], [0.0], [q.D], [a], [b],
                         held=None if held is None else [held]))
    return mg


def krogh_step():
    """Krogh's cylinder and multigrid prepared for its 3-min step from c = c_v."""
    q = wp.Radial("krogh", wp.KROGH)
    return q, step_solver(q, *q.coefficients(q.c0), q.fixed)


def contraction(q, a, b, held, dt=3.0):
    """Multigrid's asymptotic contraction per V-cycle on one backward-Euler step of ``q``
    (see :func:`step_solver`), from a random start: the scaled residual's geometric-mean
    ratio over the last TAIL of CYCLES cycles."""
    mg = step_solver(q, a, b, held, dt)
    c = q.c0[None].copy()                    # the step's start: the rhs stays the same
    x = np.random.default_rng(1).uniform(0.0, 1.0, c.shape)
    R = []
    for _ in range(CYCLES):                  # one cycle per solve, no stopping test met
        R.append(mg.solve(x, c, 1.0, [0.0], save_start=False, max_cycles=1)[0].R)
    return (R[-1] / R[-1 - TAIL]) ** (1.0 / TAIL)


@pytest.mark.parametrize("problem", ["krogh", "spheroid"])
def test_held_voxels_cost_at_most_half_again_the_cycles_of_the_free_problem(problem):
    q = wp.Radial(problem, wp.KROGH if problem == "krogh" else wp.SPHEROID)
    a, b = q.coefficients(q.c0)                       # the penalty in a and b
    rho_free = contraction(q, q.uptake_rate(q.c0), np.zeros(q.shape), None)
    rho_held = contraction(q, a, b, q.fixed)
    assert rho_free < 0.5                             # multigrid on the free problem
    assert rho_held <= rho_free ** (2 / 3), (rho_held, rho_free)


@pytest.mark.parametrize("rtol", [None, 1e-8], ids=["derived", "1e-8"])
def test_the_krogh_cylinder_is_solved_by_multigrid_without_falling_back_to_pcg(rtol):
    """Every Δt of the work–precision benchmark's Krogh rows: each step's multigrid solve
    converges by itself (the benchmark counts the solves the run would hand to PCG), to
    the same field as PCG."""
    q = wp.Radial("krogh", wp.KROGH)
    for dt in wp.RADIAL_DTS["krogh"]:
        c, steps, _cycles, fallbacks = wp.run_spatialdtp_radial(q, dt, "multigrid", rtol)
        assert fallbacks == 0, (dt, fallbacks, steps)
        pcg = wp.run_spatialdtp_radial(q, dt, "pcg", rtol)[0]
        assert q.error(c) == pytest.approx(q.error(pcg), rel=1e-3), dt


def test_a_first_cycle_that_raises_the_residual_many_times_over_is_not_a_stall():
    """Krogh's cylinder from c = c_v everywhere: the first V-cycle raises the max-norm of
    the scaled residual ×17 next to the vessel's staircased wall, then the cycles contract
    it by ≈ 0.45 each. Measured from the start that still reads as more than 0.9 per cycle
    after three cycles; the solve must see the contraction since its last check and go on."""
    q, mg = krogh_step()
    x = q.c0[None].copy()
    info, = mg.solve(x, x.copy(), 1.0, [1e-8], save_start=False)
    assert info.converged and info.method == "multigrid", info
    first = mg.solve(q.c0[None].copy(), q.c0[None].copy(), 1.0, [0.0], save_start=False,
                     max_cycles=1)[0]
    assert first.R > 10 * first.R0                    # the rise this test is about


def fallback_reasons(q, mg):
    """Solve the Krogh step from c = c_v to 1e-8 with a marker for the PCG fallback; the
    reasons the solver handed over."""
    reasons = []

    def fallback(s, reason):
        reasons.append(reason)
        return SolveInfo(0, 0.0, True, 0.0, False, "pcg")

    x = q.c0[None].copy()
    mg.solve(x, x.copy(), 1.0, [1e-8], save_start=False, fallback=fallback)
    return reasons


def test_a_cycle_that_does_not_contract_is_still_a_stall(monkeypatch):
    """Without its coarse levels and with a sweep damped to almost nothing, the cycle barely
    changes the iterate: that is handed to the fallback as a stall, after two checks."""
    q, mg = krogh_step()
    monkeypatch.setattr(mg, "_coarse", lambda i, active: None)   # no coarse correction
    mg.omega = 1e-3
    reasons = fallback_reasons(q, mg)
    assert len(reasons) == 1 and "stalled" in reasons[0], reasons
    assert mg.checks == 2


def test_a_cycle_leaves_the_held_voxels_at_their_values():
    """The coarse levels do not correct a held voxel (its error is zero): only level 0's
    sweeps touch it, and there its penalty row moves it by |r_i|/d_i ≤ u (max|x_j − v| +
    |b_i − a_i v|/S) per sweep (P = S/u, S bounding every other rate; Krogh has neither
    uptake nor source in the vessel, b_i = a_i = 0), plus the update's rounding u|v|. A
    correction prolonged into the vessel would move it by the coarse correction's size."""
    q, mg = krogh_step()
    c = q.c0[None].copy()
    x = c.copy()                                      # held voxels at their value v
    u = np.finfo(np.float64).eps / 2
    cycles = 3
    mg.solve(x, c, 1.0, [0.0], save_start=False, max_cycles=cycles)
    v = q.value[q.fixed]
    moved = np.abs(x[0][q.fixed] - v).max()
    bound = 2 * cycles * u * (np.abs(x[0] - q.p["cv"]).max() + np.abs(v).max())
    assert moved <= bound, (moved, bound)


def test_a_cycle_that_contracts_too_slowly_after_its_start_falls_back(monkeypatch):
    """Krogh from c = c_v: the first three cycles as they are (the rise and its settling,
    which the first check must not call a stall), then each cycle's change of the iterate
    scaled by θ = 0.2. The residual is linear in x, so such a cycle maps it to
    (1 − θ) r + θ r_cycle, and with the cycles' own contraction there (≈ 0.44 per cycle,
    measured by the previous test's solve) its max-norm shrinks by a factor within
    0.8 ± 0.2·0.44 = [0.71, 0.89] per cycle: a solve that converges, but slower than a
    working V-cycle (mg_solver.WORKING = 0.6), so the PCG fallback costs less. It must be
    handed to the fallback as a stall at the second check, not cycled on (as a rule that
    asked the contraction since the last check to exceed STALL = 0.9 would)."""
    q, mg = krogh_step()
    cycle = mg._cycle
    done = []

    def slow_cycle(x, active, record):
        before = x.copy()
        start = cycle(x, active, record)
        done.append(1)
        if len(done) > 3:
            x[...] = before + 0.2 * (x - before)
        return start

    monkeypatch.setattr(mg, "_cycle", slow_cycle)
    reasons = fallback_reasons(q, mg)
    assert len(reasons) == 1 and "stalled" in reasons[0], reasons
    assert mg.checks == 2
