"""One implicit step of every substrate, cells frozen: the middle of the Strang step.

For each substrate the coefficients (D, a, b) come from the cells (``ops.coefficients``),
then the configured scheme advances it (see the README's Numerics):

* ``backward_euler``: one θ = 1 solve, started from the predictor (the linear
  extrapolation of the last two steps; its error is twice the step's truncation error,
  which is what ``numerics.rtol`` is relative to);
* ``crank_nicolson``: one θ = ½ solve;
* ``tr_bdf2``: a trapezoidal stage to t + γΔt and a BDF2 stage, the same matrix. The BDF2
  stage's input ``(stage − (1 − γ)² c)/(γ(2 − γ))`` can be negative on stiff, rough data
  (the trapezoidal stage rings); a clamp there would add mass. A substrate whose input
  goes negative has its step redone by backward Euler instead (L-stable and positivity
  preserving), and that is counted (``tr_bdf2_fallbacks``).

``numerics.solver`` picks how the linear systems are solved: ``multigrid`` (default; all
substrates of the step in one batched solve, :mod:`spatialdtp.numerics.implicit.mg_solver`)
or ``pcg`` (the multigrid-preconditioned CG of
:mod:`spatialdtp.numerics.implicit.solver`, one substrate at a time). A multigrid solve
that diverges or stalls falls back to PCG for that substrate; a fallback that fails too
raises :class:`SolverDivergence` naming the substrate, the step and the residual. Every
solve is recorded in a :class:`~.solver_report.SolverReport`.

A well-mixed tissue (the single voxel :data:`~spatialdtp.model.grid.POINT`) is stepped by
the exact pointwise solve (:mod:`spatialdtp.numerics.pointwise`) in place of PCG, with no
multigrid. A drug ``held`` at a tissue level set by the simulation (``exposure`` plasma or
uniform) is not solved: its plane keeps the value it had at the step's start, and its
exposure map grows by Δt times that value.
"""
from __future__ import annotations

import math

import numpy as np

from ..model.grid import POINT
from ..model.state import auc_name
from ..numerics.implicit import ImplicitSolver
from ..numerics.implicit.batched_multigrid import Batch
from ..numerics.implicit.mg_solver import MultigridSolver
from ..numerics.pointwise import PointwiseSolver
from .errors import SolverDivergence
from .solver_report import SolverReport

TR_BDF2_GAMMA = 2.0 - math.sqrt(2.0)
#: ``numerics.rtol: null``: the tolerance the time-discretisation argument gives for a
#: backward-Euler step started from the predictor (≈ 10 % of the step's own error)
RTOL_PREDICTED = 0.05


def tolerances(rtol, scheme):
    """(warm, cold) relative tolerances: ``warm`` for a backward-Euler step started from
    the predictor, ``cold`` for a step without one (the first, or a second-order scheme,
    whose O(Δt³) error the predictor argument does not bound)."""
    if rtol is not None:
        return float(rtol), float(rtol)
    warm = RTOL_PREDICTED
    return warm, warm * warm


class SubstrateStep:
    """Advances the substrate planes of a state by one implicit step.

    ``substrates``: the :class:`~spatialdtp.model.substrate_coefficients.Substrate` of
    every substrate, in state order (the first planes of the state). ``numerics``: the
    config's ``NumericsConfig``.
    """

    def __init__(self, substrates, grid, ops, xp, dtype, numerics, held=()):
        self.subs = list(substrates)
        self.held = [s for s, sub in enumerate(self.subs) if sub.name in set(held)]
        self.names = tuple(s.name for s in self.subs)
        self.grid, self.ops, self.xp = grid, ops, xp
        self.dtype = np.dtype(dtype)
        self.num = numerics
        n = len(self.subs)
        shape = (n,) + tuple(grid.shape)
        pointwise = tuple(grid.shape) == POINT
        self.pcg = (PointwiseSolver(xp) if pointwise else
                    ImplicitSolver(grid.shape, grid.dx, xp, self.dtype, ops=ops))
        self.mg = None
        self.bops = ops.batched_ops(self.dtype)
        if numerics.solver == "multigrid" and not pointwise:
            self.mg = MultigridSolver(grid.shape, grid.dx, n, xp, self.dtype, ops=self.bops)
            self.prev = self.mg.prev
        else:
            self.prev = xp.zeros(shape, self.dtype)
        self.blocks = tuple(xp.zeros(shape, self.dtype) for _ in range(3))  # D, a, b maps
        #: per substrate the mask of its fixed-value voxels, or None (none, or a substrate
        #: not solved): multigrid's coarse levels leave those voxels out
        self.fixed_masks = [
            sub.fixed_voxels[0] if sub.fixed_voxels is not None and s not in self.held
            and bool(sub.fixed_voxels[0].any()) else None for s, sub in enumerate(self.subs)]
        self.aux = xp.zeros(shape, self.dtype)
        self.history = False          # prev holds the last step's start (the predictor's)
        self.last_dt = None
        self.report = SolverReport(self.names)
        self.warm_rtol, self.cold_rtol = tolerances(numerics.rtol, numerics.scheme)
        #: what the last step's solves did, for the traffic model and the budgets:
        #: ``checks`` and ``rounds`` (multigrid), ``checked`` (per substrate, the checks it
        #: was in: a check reads only the substrates still solving), ``restarts`` per
        #: substrate and whether the step started from the predictor
        self.work = {"checks": 0, "rounds": 0, "checked": {}, "restarts": {},
                     "predictor": False}

    # ------------------------------------------------------------------ coefficients
    def _coefficients(self, state, c_lin, blood):
        """Per substrate (D, a, b, boundary), every substrate's maps in one pass
        (``ops.coefficients_batch``): a coefficient that the config makes uniform is a
        float (no array is read for it; :meth:`Substrate.uniform`), a map is a row of
        :attr:`blocks`."""
        levels = [blood[sub.name] if sub.is_drug else sub.cfg.blood for sub in self.subs]
        active = [s not in self.held for s in range(len(self.subs))]
        computed = self.ops.coefficients_batch(self.subs, state, c_lin, levels, self.blocks,
                                               active)
        out = []
        for s, sub in enumerate(self.subs):
            if not active[s]:           # the identity system: c_new = c (restored exactly)
                out.append((0.0, 0.0, 0.0, sub.boundary(levels[s])))
                continue
            D, a, b = (v if varies else u for v, varies, u
                       in zip(computed[s], sub.varying(), sub.uniform()))
            if sub.maps:                # coefficient maps from files, into the blocks
                rows = tuple(blk[s] for blk in self.blocks)
                D, a, b = (v if isinstance(v, float) else _into(r, v)
                           for r, v in zip(rows, sub.with_maps(D, a, b, state)))
            out.append((D, a, b, sub.boundary(levels[s])))
        return out

    def _batch(self, coeffs, theta_dt):
        return Batch(theta_dt, self.grid.dx, [bc.kinds for *_, bc in coeffs],
                     [bc.value for *_, bc in coeffs], [c[0] for c in coeffs],
                     [c[1] for c in coeffs], [c[2] for c in coeffs], blocks=self.blocks,
                     held=self.fixed_masks)

    # ------------------------------------------------------------------ the step
    def step(self, state, dt, blood, t, planes=None, new_step=True):
        """Advance every substrate plane of ``state`` by ``dt`` minutes (in place) and the
        drugs' exposure maps; ``blood``: each drug's plasma level over the step.
        ``planes``: the (n, *grid) planes this step's substrates live in (default the
        state's substrate planes; the substrate-only benchmark steps the first few).
        ``new_step``: False for the later pieces of a step cut at drug switches (the report
        adds them to the step's counts)."""
        xp = self.xp
        if new_step:
            self.report.begin_step()
        x = state.substrates if planes is None else planes   # (n, *grid), in place
        scheme = self.num.scheme
        beta = dt / self.last_dt if (self.history and scheme == "backward_euler") else None
        rtol = self.warm_rtol if beta is not None else self.cold_rtol
        rtols = [rtol] * len(self.subs)
        start = self._start = None
        saved = xp.copy(x) if self.num.picard_iterations else None
        before = ((self.mg.checks, self.mg.rounds, list(self.mg.checked))
                  if self.mg is not None else (0, 0, []))
        try:
            for p in range(self.num.picard_iterations + 1):
                c_lin = x if p == 0 else 0.5 * (start + x)
                coeffs = self._coefficients(state, c_lin, blood)
                if self.mg is not None:
                    infos = self._multigrid(x, coeffs, dt, scheme, rtols, beta, first=p == 0)
                else:
                    infos = self._pcg(x, coeffs, dt, scheme, rtols, beta, first=p == 0)
                start = self.prev
        except ValueError:
            # bad input (a non-finite coefficient): put back the step's start, so that the
            # run's finiteness check names the field the trouble came from
            if saved is not None:
                x[...] = saved
            elif self._start is not None:
                x[...] = self._start
            raise
        if self.mg is not None:
            self.work = {"checks": self.mg.checks - before[0],
                         "rounds": self.mg.rounds - before[1],
                         "checked": {name: n - m for name, n, m
                                     in zip(self.names, self.mg.checked, before[2])}}
        else:
            self.work = {"checks": 0, "rounds": 0, "checked": {}}
        self.work["restarts"] = {name: info.restarts for name, info in zip(self.names, infos)}
        self.work["predictor"] = beta is not None
        for s, (name, info) in enumerate(zip(self.names, infos)):
            self.report.record(name, info, t)
            if info.diverged:            # no usable result: keep the step's start, and fail
                x[...] = self._start
                raise SolverDivergence(self._failure(name, info, t))
        for s in self.held:
            x[s] = self.prev[s]          # the step's start, exactly
        for s, sub in enumerate(self.subs):
            if sub.fixed_voxels is not None:   # fixed-value voxels: their values, exactly
                xp.copyto(x[s], sub.fixed_voxels[1], where=sub.fixed_voxels[0])
        for s, sub in enumerate(self.subs):
            if sub.is_drug:
                auc = state[auc_name(sub.name)]
                auc += (0.5 * dt) * (self.prev[s] + x[s])
        self.history = scheme == "backward_euler"
        self.last_dt = dt

    def _failure(self, name, info, t):
        return (f"the implicit solve of {name!r} diverged at t = {t:.1f} min "
                f"({t / 1440.0:.3f} days) and its fallback ({info.method}) failed too: "
                f"scaled residual {info.R:.3g} against a target of {info.target:.3g} "
                f"(start {info.R0:.3g}); lower run.dt or check the parameters of {name!r}")

    # ------------------------------------------------------------------ multigrid
    def _multigrid(self, x, coeffs, dt, scheme, rtols, beta, first):
        mg, num = self.mg, self.num
        fallback = self._fallback(coeffs)
        opts = dict(max_cycles=num.max_iterations)
        if scheme == "backward_euler":
            mg.prepare(self._batch(coeffs, dt))
            self._start = self.prev       # the solve keeps the step's start there
            c = x if first else self.prev
            fallback.setup(x, c, dt, 1.0, rtols)
            return mg.solve(x, c, 1.0, rtols, predictor=beta if first else None,
                            save_start=first, fallback=fallback, **opts)
        if not first:                                  # a Picard pass: from c_n again
            self.bops.restart(x, self.prev, range(len(coeffs)))
        if scheme == "crank_nicolson":
            mg.prepare(self._batch(coeffs, 0.5 * dt))
            self._start = self.prev
            fallback.setup(x, self.prev if not first else x, dt, 0.5, rtols)
            return mg.solve(x, self.prev if not first else x, 0.5, rtols,
                            save_start=first, fallback=fallback, **opts)
        g = TR_BDF2_GAMMA
        mg.prepare(self._batch(coeffs, 0.5 * g * dt))
        self._start = self.prev
        c = x if first else self.prev
        fallback.setup(x, c, g * dt, 0.5, rtols)
        stage = mg.solve(x, c, 0.5, rtols, save_start=first, fallback=fallback, **opts)
        xp, aux = self.xp, self.aux
        xp.multiply(self.prev, -(1.0 - g) ** 2, out=aux)
        aux += x
        aux *= 1.0 / (g * (2.0 - g))
        w = (1.0 - g) / (2.0 - g)
        fallback.setup(x, aux, w * dt, 1.0, rtols)
        infos = mg.solve(x, aux, 1.0, rtols, save_start=False, fallback=fallback, **opts)
        negative = [s for s in range(len(coeffs))
                    if float(self.ops.read(aux[s].min(), "tr_bdf2: stage positivity")) < 0]
        for s in range(len(coeffs)):
            infos[s] = _merge(stage[s], infos[s])
        if negative:                 # BDF2 input < 0 somewhere: that step by BE instead
            self.bops.restart(x, self.prev, negative)
            mg.prepare(self._batch(coeffs, dt))
            fallback.setup(x, self.prev, dt, 1.0, rtols)
            redo = mg.solve(x, self.prev, 1.0, rtols, save_start=False, rows=negative,
                            fallback=fallback, **opts)
            for s in negative:
                infos[s] = _merge(infos[s], redo[s])
                self.report.record_tr_bdf2_fallback(self.names[s])
        return infos

    def _fallback(self, coeffs):
        return _PcgFallback(self, coeffs)

    # ------------------------------------------------------------------ pcg
    def _pcg(self, x, coeffs, dt, scheme, rtols, beta, first):
        """One substrate at a time with the PCG solver (today's method)."""
        xp, infos = self.xp, []
        if first:
            self._start = self.prev if beta is None else self.aux
            xp.copyto(self._start, x)
        for s, (D, a, b, bc) in enumerate(coeffs):
            c = x[s] if first else self.prev[s]
            x0 = None
            if beta is not None and first:
                c = self.aux[s]                         # c_n (x is overwritten below)
                x0 = c + beta * (c - self.prev[s])
            new, info = self._pcg_scheme(c, D, a, b, bc, dt, scheme, rtols[s], x0,
                                         self.names[s])
            x[s] = new
            infos.append(info)
        if beta is not None and first:
            xp.copyto(self.prev, self.aux)
            self._start = self.prev
        return infos

    def _pcg_scheme(self, c, D, a, b, bc, dt, scheme, rtol, x0, name):
        solve = self.pcg.step
        opts = dict(D=D, a=a, b=b, boundary=bc, rtol=rtol, max_iter=self.num.max_iterations)
        if scheme == "backward_euler":
            return solve(c, dt=dt, theta=1.0, x0=x0, **opts)
        if scheme == "crank_nicolson":
            return solve(c, dt=dt, theta=0.5, **opts)
        g = TR_BDF2_GAMMA
        stage, info1 = solve(c, dt=g * dt, theta=0.5, **opts)
        w = (1.0 - g) / (2.0 - g)
        rhs = (stage - (1.0 - g) ** 2 * c) / (g * (2.0 - g))
        if float(self.ops.read(rhs.min(), "tr_bdf2: stage positivity")) < 0:
            self.report.record_tr_bdf2_fallback(name)
            new, info2 = solve(c, dt=dt, theta=1.0, **opts)
        else:
            new, info2 = solve(rhs, dt=w * dt, theta=1.0, x0=stage, **opts)
        return new, _merge(info1, info2)

    # ------------------------------------------------------------------ checkpoints
    def get_state(self):
        """What a resumed run needs to continue identically (JSON-able) and the history."""
        plan = list(self.mg.plan) if self.mg is not None else []
        return {"history": self.history, "last_dt": self.last_dt, "plan": plan,
                "report": self.report.get_state()}

    def set_state(self, info, history=None):
        self.history = bool(info.get("history", False)) and history is not None
        self.last_dt = info.get("last_dt")
        if self.mg is not None and info.get("plan"):
            self.mg.plan[:] = [int(p) for p in info["plan"]]
        self.report.set_state(info.get("report", {}))
        if history is not None:
            self.prev[...] = self.xp.asarray(history, dtype=self.dtype)


class _PcgFallback:
    """``fallback(s, reason)`` of the multigrid solve: substrate s's system by PCG from
    the solve's ``c``, written into the solve's ``x``."""

    def __init__(self, step, coeffs):
        self.step, self.coeffs = step, coeffs

    def setup(self, x, c, dt, theta, rtols):
        self.x, self.c, self.dt, self.theta, self.rtols = x, c, dt, theta, rtols

    def __call__(self, s, reason):
        step = self.step
        D, a, b, bc = self.coeffs[s]
        new, info = step.pcg.step(self.c[s], D=D, a=a, b=b, dt=self.dt, boundary=bc,
                                  theta=self.theta, rtol=self.rtols[s],
                                  max_iter=step.num.max_iterations)
        self.x[s] = new
        info.note = f"multigrid {reason}"
        return info


def _into(row, value):
    row[...] = value
    return row


def _merge(first, second):
    """One record of a two-solve step (TR-BDF2): the second's result and residual, both
    iteration counts, converged only if both were."""
    if first is None:
        return second
    second.iterations += first.iterations
    second.restarts += first.restarts
    second.clamped += first.clamped
    second.converged = first.converged and second.converged
    second.diverged = first.diverged or second.diverged
    if "→" in first.method and "→" not in second.method:
        second.method = first.method
    return second

