"""The record of every implicit solve of a run: counted, stored, reported.

Every substrate solve ends in a :class:`~spatialdtp.numerics.implicit.SolveInfo`. The
:class:`SolverReport` keeps, per substrate, how many solves there were, how many did
not reach their tolerance (``unconverged``), how many needed the fallback after the
multigrid solve diverged or stalled (``fallbacks``), how many ended on the precision
floor, how many TR-BDF2 steps were redone by backward Euler to stay non-negative, and
the total clamped away. It gives three views of that:

* per step, observables (``solver_iterations_<s>``: cycles or CG iterations of the step;
  ``solver_residual_<s>``: the final residual over its target, ≤ 1 when converged;
  ``solver_unconverged_<s>``: the running count), written to the run file as rows;
* at the end, summary keys (``unconverged_solves`` and ``unconverged_solves_<s>``,
  ``solver_fallbacks``, ``tr_bdf2_fallbacks``) and a warning naming every substrate with
  failed solves, its count, and the worst residual and when it happened;
* a state for the checkpoint, so a resumed run goes on counting.

Warnings are logged for the first unconverged solve of a substrate, and again whenever
its count doubles or its worst residual grows tenfold, so later, worse failures are not
silent either.
"""
from __future__ import annotations

import logging
import math

log = logging.getLogger("spatialdtp")

FIELDS = ("solves", "iterations", "unconverged", "fallbacks", "floor", "tr_bdf2_fallbacks",
          "restarts")


class SolverReport:
    def __init__(self, substrates):
        self.substrates = tuple(substrates)
        self.counts = {s: dict.fromkeys(FIELDS, 0) for s in self.substrates}
        self.clamped = dict.fromkeys(self.substrates, 0.0)
        self.worst = {s: (0.0, math.nan) for s in self.substrates}   # (R/target, t)
        self._warned = {s: (0, 0.0) for s in self.substrates}
        self.step_iterations = dict.fromkeys(self.substrates, 0)
        self.step_residual = dict.fromkeys(self.substrates, 0.0)

    # ------------------------------------------------------------------ recording
    def begin_step(self):
        for s in self.substrates:
            self.step_iterations[s] = 0
            self.step_residual[s] = 0.0

    def record(self, name, info, t):
        """One solve of substrate ``name`` at time ``t`` (minutes, the step's start)."""
        c = self.counts[name]
        c["solves"] += 1
        c["iterations"] += info.iterations
        c["restarts"] += info.restarts
        c["floor"] += bool(info.floor and info.converged)
        c["fallbacks"] += "→" in info.method
        self.clamped[name] += float(info.clamped)
        self.step_iterations[name] += info.iterations
        excess = info.R / info.target if info.target > 0 and math.isfinite(info.R) else (
            0.0 if info.converged else math.inf)
        self.step_residual[name] = max(self.step_residual[name], excess)
        if info.converged:
            return
        c["unconverged"] += 1
        if excess > self.worst[name][0] or math.isnan(self.worst[name][1]):
            self.worst[name] = (excess, t)
        count, ratio = self._warned[name]
        if c["unconverged"] >= 2 * count or excess >= 10 * ratio:
            self._warned[name] = (c["unconverged"], max(ratio, excess))
            log.warning("%s: implicit solve did not converge at t = %.1f min (%s, %d "
                        "iterations): residual %.3g × its target (%.3g); %d unconverged "
                        "solves of %s so far. Lower run.dt, or raise numerics.max_iterations",
                        name, t, info.method, info.iterations, excess, info.target,
                        c["unconverged"], name)

    def record_tr_bdf2_fallback(self, name):
        self.counts[name]["tr_bdf2_fallbacks"] += 1

    # ------------------------------------------------------------------ views
    def names(self):
        """The per-step observables, in order."""
        return tuple(f"solver_{k}_{s}" for s in self.substrates
                     for k in ("iterations", "residual", "unconverged"))

    def units(self):
        return dict.fromkeys(self.names(), "1")

    def step_values(self):
        out = {}
        for s in self.substrates:
            out[f"solver_iterations_{s}"] = float(self.step_iterations[s])
            out[f"solver_residual_{s}"] = float(self.step_residual[s])
            out[f"solver_unconverged_{s}"] = float(self.counts[s]["unconverged"])
        return out

    def summary(self):
        total = sum(c["unconverged"] for c in self.counts.values())
        out = {"unconverged_solves": float(total)}
        for s in self.substrates:
            out[f"unconverged_solves_{s}"] = float(self.counts[s]["unconverged"])
        out["solver_fallbacks"] = float(sum(c["fallbacks"] for c in self.counts.values()))
        out["tr_bdf2_fallbacks"] = float(sum(c["tr_bdf2_fallbacks"]
                                             for c in self.counts.values()))
        return out

    def warning(self) -> str | None:
        """One line per substrate with failed solves, or None when every solve converged."""
        lines = []
        for s in self.substrates:
            n = self.counts[s]["unconverged"]
            if n:
                excess, t = self.worst[s]
                lines.append(f"{s}: {n} of {self.counts[s]['solves']} solves did not converge"
                             f" (worst residual {excess:.3g} × its target at t = {t:.1f} min)")
        return "; ".join(lines) if lines else None

    # ------------------------------------------------------------------ checkpoint
    def get_state(self):
        return {"counts": self.counts, "clamped": self.clamped,
                "worst": {s: list(v) for s, v in self.worst.items()}}

    def set_state(self, state):
        for s in self.substrates:
            if s in state.get("counts", {}):
                self.counts[s].update(state["counts"][s])
                self.clamped[s] = float(state["clamped"].get(s, 0.0))
                excess, t = state["worst"][s]
                self.worst[s] = (float(excess), float(t) if t is not None else math.nan)
