"""Every substrate of a step in one multigrid solve (``numerics.solver=multigrid``).

The substrates of a step are one batch: one launch per level and operator serves all of
them (:mod:`.batched_multigrid`, the NumPy twin of ``kernels/batched_multigrid.cu``). Each
step of each substrate solves ``A x = rhs`` (see :mod:`.solver` for the θ-step) by
multigrid V(1,1)-cycles used as the solver, not as a preconditioner:

    pre-smooth (one damped-Jacobi sweep) → restrict the residual (sum of children) →
    the same cycle on the coarser level from zero → prolong the correction (linear
    between cell centres) → post-smooth;   the coarsest level (≤ 64 cells) dense

The hierarchy (coarse masses and faces, the coarsest inverse) is built once per step for
the whole batch (:meth:`MultigridSolver.prepare`); both TR-BDF2 stages reuse it (the
same matrix). The iteration's scalars stay on the device: a substrate runs the number of
cycles that sufficed last step, then one residual check reads every substrate's norms in
one transfer; only a substrate that has not converged runs more, and the next check reads
only the substrates still solving.

**Tolerance from the step's own time-discretisation error.** Backward Euler's error over
one step (its local truncation error, LTE) is ½Δt²c̈ + O(Δt³). The solve starts from the
*predictor* ``x₀ = c_n + β (c_n − c_{n−1})``, β = Δt_n/Δt_{n−1}, the linear extrapolation
of the last two steps. The exact step solution is ``c_{n+1} = c_n + δ_n`` and the
predictor's error is ``δ_n − β δ_{n−1} = Δt² c̈ + O(Δt³)``: **twice the LTE**. Multigrid
shrinks every error component by about the same factor, so stopping at ``R ≤ rtol·R_0``
(:mod:`.convergence`; ``R_0`` the predictor's scaled residual) leaves an algebraic error
of ≈ rtol × 2·LTE. With ``numerics.rtol = 0.05`` the solve adds at most ≈ 10 % of the
step's own discretisation error, whatever the field's size or time scale, which is why a
slowly changing field needs one or two cycles: its predictor is already within 2·LTE.
Where the predictor is worse than the plain warm start ``x₀ = c_n`` (a schedule switch, a
transient the last step ended), the solve restarts from ``c_n`` and ``R_0`` is that
start's; the first step (no history) asks for ``rtol²``. The precision floor
(:mod:`.convergence`) bounds the target from below: a float32 field is not solved below
its rounding. Second-order schemes (TR-BDF2, Crank–Nicolson) have an O(Δt³) error, below
what this argument bounds: they run without a predictor at ``rtol²`` relative to the
plain warm start.

**Never silently wrong.** A residual that grows or turns non-finite, a convergence factor
above :data:`STALL` per cycle (measured over at least :data:`STALL_CYCLES` from the start,
unless the cycles since the previous check contracted as a working V-cycle does, by
:data:`WORKING` or better), or ``max_cycles`` reached sends that substrate to the
caller's fallback (the robust PCG of :mod:`.solver`, from ``c_n``); its :class:`SolveInfo`
says what happened and the caller counts and reports it.
"""
from __future__ import annotations

import math

import numpy

from . import batched_multigrid as bmg
from .convergence import SolveInfo, diverging, target

#: a measured contraction above this per cycle is a stall: fall back rather than cycle on
STALL = 0.9
#: cycles a contraction is measured over before it may count as a stall: the max-norm of
#: the residual is not monotone under a V-cycle (one cycle from a predictor can raise it a
#: little, e.g. ×1.2 on the default job's oxygen, while the next ones contract by ≈ 0.5
#: each), so one cycle's ratio says nothing. Over three cycles a factor of 0.9 per cycle
#: is a stall if the first cycle raised the residual a little (see :data:`WORKING` for a
#: start a cycle raises many times over)
STALL_CYCLES = 3
#: most extra cycles planned at once after a check (then checked again)
MAX_EXTRA = 8
#: a contraction per cycle since the previous check at or below this is a working V-cycle
#: even where the contraction from the start reads as a stall (at a substrate's first check
#: there is no "since" yet, so it cycles on to the next check): a start that the first
#: cycle raised many times over (×17 next to the staircased wall of held voxels, Krogh's
#: vessel, then 0.45 per cycle) looks like a stall from the start for several cycles. The
#: free problems' V(1,1)-cycle contracts by 0.35–0.5 (tests/test_multigrid_fixed_voxels.py),
#: bench_tissue3d's first oxygen solve 0.90 from the start over 3 cycles, then 0.56 over the
#: next 8. A solve contracting by more than 0.6 per cycle over a whole check interval,
#: after its start, is slow enough that the PCG fallback costs less: it falls back
WORKING = 0.6
#: cycles planned for a substrate that has no history yet
FIRST_PLAN = 3


class MultigridSolver:
    """Batched multigrid for ``n`` substrates on one grid (``shape``, ``dx`` µm).

    ``ops``: the backend's batched operators (``backend.ops(dtype).batched``; default the
    array expressions of :mod:`.batched_multigrid`). Work arrays for the batch are made
    once here; the iterate is the caller's (the state's substrate planes), updated in
    place.
    """

    def __init__(self, shape, dx, n, xp=numpy, dtype=numpy.float32, ops=None, counters=None):
        self.shape, self.dx, self.n, self.xp = tuple(shape), float(dx), int(n), xp
        self.dtype = numpy.dtype(dtype)
        self.ops = ops if ops is not None else bmg.ArrayBatchedOps(xp, self.dtype)
        self.counters = counters if counters is not None else getattr(self.ops, "counters",
                                                                      None)
        self.levels = bmg.hierarchy(self.shape)
        self.omega = bmg._JACOBI_OMEGA[len(self.shape)]
        B = self.n

        def block(level):
            return xp.zeros((B,) + level.shape, self.dtype)

        fine = self.levels[0]
        self.work, self.rhs, self.prev = block(fine), block(fine), block(fine)
        for lev in self.levels[1:]:
            lev.x, lev.b, lev.y = block(lev), block(lev), block(lev)
        self.plan = [FIRST_PLAN] * B
        self.batch = None
        #: cumulative work of every solve so far, for the launch and sync budgets: batch
        #: cycles ("rounds": one launch per level and operator for all active substrates)
        #: and residual checks (one norms launch and one device→host read each)
        self.rounds = 0
        self.checks = 0
        #: per substrate, the residual checks it was in (a check reads only the substrates
        #: still solving: the traffic model counts each one's share)
        self.checked = [0] * B

    # ------------------------------------------------------------------ set-up
    def prepare(self, batch: bmg.Batch) -> None:
        """Build every level's operator of ``batch`` (once per step and linearisation)."""
        if batch.size != self.n:
            raise ValueError(f"batch of {batch.size} substrates; this solver has {self.n}")
        self.batch = batch
        self.ops.setup(self.levels, batch)

    # ------------------------------------------------------------------ the cycle
    def _cycle(self, x, active, record):
        """One V(1,1)-cycle of the batch on ``x`` (level 0) in place; with ``record`` the
        norms of the cycle's start (measured by its pre-smoothing)."""
        ops, omega, levels = self.ops, self.omega, self.levels
        fine = levels[0]
        if fine.coarse is None:                       # a tiny grid: the dense solve
            start = ops.residual_norms(fine, x, self.rhs) if record else None
            ops.coarsest_solve(fine, self.rhs, x, active)
            return start
        start = ops.smooth(fine, x, self.rhs, self.work, omega, active, record)
        ops.residual_restrict(fine, self.work, self.rhs, fine.coarse.b, active)
        self._coarse(1, active)
        ops.prolong_smooth(fine, self.work, fine.coarse.x, self.rhs, x, omega, active)
        return start

    def _coarse(self, i, active):
        """Solve level i's correction equation from zero into ``level.x`` (one V-cycle)."""
        ops, lev = self.ops, self.levels[i]
        if lev.coarse is None:
            ops.coarsest_solve(lev, lev.b, lev.x, active)
            return
        ops.smooth(lev, None, lev.b, lev.y, self.omega, active)
        ops.residual_restrict(lev, lev.y, lev.b, lev.coarse.b, active)
        self._coarse(i + 1, active)
        ops.prolong_smooth(lev, lev.y, lev.coarse.x, lev.b, lev.x, self.omega, active)

    # ------------------------------------------------------------------ the solve
    def solve(self, x, c, theta, rtol, *, predictor=None, save_start=True, rows=None,
              max_cycles=200, fallback=None):
        """Solve the θ-step of :meth:`prepare`'s batch from ``c`` (B, *grid) into ``x``.

        ``x`` holds the start (usually ``c`` itself, the state's planes) and receives the
        result. ``rtol``: one per substrate (see the module docstring). ``save_start``:
        keep the start value of ``x`` in ``self.prev`` (the history of the next step's
        predictor, and where a restart goes); ``predictor``: β = Δt_n/Δt_{n−1}, to
        extrapolate the start from that history first (None: start from ``x`` as it is).
        ``rows``: the substrates to solve (default all; the others are not touched).
        ``fallback(s, reason)``: called for a substrate that diverges, stalls or reaches
        ``max_cycles``, after ``x[s]`` was reset to ``self.prev[s]``; it writes ``x[s]``
        and returns that substrate's :class:`SolveInfo`. Returns one :class:`SolveInfo`
        per substrate (None for those not in ``rows``).
        """
        B, ops = self.n, self.ops
        rows = list(range(B)) if rows is None else list(rows)
        chosen = [s in rows for s in range(B)]
        plain = ops.step_rhs(self.levels, self.batch, c, self.rhs, theta)
        predicted = predictor is not None and save_start
        if save_start:
            ops.predict(x, self.prev, float(predictor) if predicted else 0.0, chosen)
        infos = [None] * B
        cycles, restarts = [0] * B, [0] * B
        R0 = [math.nan] * B
        active = chosen
        plan = [max(1, min(p, max_cycles)) for p in self.plan]
        first = [True] * B                    # the next check is the substrate's first
        since = [0] * B                       # cycles since the start (or restart)
        last = [None] * B                     # (R, since) at the last check, if any
        while any(active):
            runs = max(plan[s] for s in range(B) if active[s])
            start = None
            for j in range(runs):
                on = [active[s] and j < plan[s] for s in range(B)]
                record = j == 0 and any(first[s] and on[s] for s in range(B))
                norms = self._cycle(x, on, record)
                self.rounds += 1
                if record:
                    start = norms
                for s in range(B):
                    cycles[s] += on[s]
                    since[s] += on[s]
            final = ops.residual_norms(self.levels[0], x, self.rhs, clamp=theta == 1.0,
                                       active=active)
            self.checks += 1
            for s in range(B):
                self.checked[s] += active[s]
            p_host, s_host, f_host = self._read(plain, start, final)
            for s in range(B):
                if not active[s]:
                    continue
                if first[s]:
                    first[s] = False
                    R_start = s_host[s, bmg.R] if s_host is not None else p_host[s, bmg.R]
                    bad = s_host is not None and s_host[s, bmg.NONFINITE]
                    if predicted and (bad or R_start > p_host[s, bmg.R]):
                        # the predictor is worse than the plain warm start: restart there
                        ops.restart(x, self.prev, [s])
                        restarts[s] += 1
                        R0[s] = p_host[s, bmg.R]
                        since[s] = 0
                        last[s] = None
                        continue
                    R0[s] = R_start
                R, Mag = f_host[s, bmg.R], f_host[s, bmg.M]
                goal, floor = target(rtol[s], R0[s], Mag, self.dtype, f_host[s, bmg.X])
                ratio = R / R0[s] if R0[s] > 0 else 0.0
                if not f_host[s, bmg.NONFINITE] and R <= goal:
                    infos[s] = SolveInfo(cycles[s], ratio, True, goal, floor, "multigrid",
                                         restarts=restarts[s], R=R, R0=R0[s],
                                         clamped=float(f_host[s, bmg.CLAMPED]))
                    self.plan[s] = self._learn(since[s], R, goal, R0[s])
                    active[s] = False
                    continue
                rho = ratio ** (1.0 / since[s]) if since[s] and R0[s] > 0 else 1.0
                recent = _contraction(R, since[s], last[s])
                last[s] = (R, since[s])
                reason = None
                if diverging(R, R0[s], not f_host[s, bmg.NONFINITE]):
                    reason = "diverged"
                elif cycles[s] >= max_cycles:
                    reason = f"reached max_iterations={max_cycles} cycles"
                elif rho > STALL and since[s] >= STALL_CYCLES and recent > WORKING:
                    reason = f"stalled (contraction {rho:.2f} per cycle)"
                if reason is None:
                    if 0 < rho < 1:
                        need = math.log(goal / R) / math.log(rho)
                    else:                  # no contraction yet: enough cycles to measure one
                        need = max(1, STALL_CYCLES - since[s])
                    plan[s] = int(min(MAX_EXTRA, max_cycles - cycles[s],
                                      max(1, math.ceil(need))))
                    continue
                active[s] = False
                self.plan[s] = FIRST_PLAN
                infos[s] = self._fall_back(x, s, reason, fallback, cycles[s], ratio, goal,
                                           floor, restarts[s], R, R0[s])
        return infos

    def _fall_back(self, x, s, reason, fallback, cycles, ratio, goal, floor, restarts, R, R0):
        if fallback is None:
            return SolveInfo(cycles, ratio, False, goal, floor, "multigrid",
                             diverged=reason == "diverged", restarts=restarts, R=R, R0=R0)
        self.ops.restart(x, self.prev, [s])
        info = fallback(s, reason)
        info.iterations += cycles
        info.method = f"multigrid→{info.method}"
        info.restarts += restarts
        return info

    @staticmethod
    def _learn(used, R, goal, R0):
        """Cycles to plan next step: as many as this step's measured contraction ρ (per
        cycle, from its start) says it needed, ⌈log(goal/R₀)/log ρ⌉, at least one and at
        most what it used. (One fewer per step, as before, kept a transient's count for
        as many steps as it had cycles: on bench_tissue3d oxygen's 9 after an event gave
        8, 7, ..., 3 where 1–3 sufficed.) A step that needs more than planned runs them
        after its check; the stopping test is the same either way."""
        if used <= 1 or R0 <= 0:
            return max(1, used)
        rho = (R / R0) ** (1.0 / used) if R > 0 else 0.0
        if not 0 < rho < 1:
            return used
        need = math.ceil(math.log(goal / R0) / math.log(rho) - 1e-9) if goal < R0 else 1
        return max(1, min(used, need))

    def _read(self, plain, start, final):
        """The norm tables on the host: the check's one device→host transfer."""
        xp = self.xp
        parts = [plain, start if start is not None else plain, final]
        host = self.ops.read(xp.stack([xp.asarray(p) for p in parts]), "multigrid check")
        return host[0], (host[1] if start is not None else None), host[2]


def _contraction(R, since, last):
    """The contraction per cycle since the last check ``last = (R, since)``; 0 (no evidence
    of a stall yet) at a substrate's first check."""
    if last is None or since <= last[1] or last[0] <= 0:
        return 0.0
    return (R / last[0]) ** (1.0 / (since - last[1]))
