"""The treatment over a run: every drug's schedule and pharmacokinetics, stepped with the
simulation (:class:`Treatment`).

Each step asks :meth:`Treatment.advance` for the plasma levels over ``[t, t + dt)``: the
level just before ``t + dt`` and the exact time average over the step, which the vessels
then supply. Adaptive schedules take their decisions from the tumour burden observed at
``t``. Events that fall exactly on a step's end belong to the next step. Time is in
minutes (``*_day`` and ``*_hours`` config values are converted in
:mod:`~spatialdtp.model.treatment.schedules`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy

from ...config import COMBINATION_RULES, DrugConfig, TreatmentConfig, validate_drug
from ...config.checks import choice, nonneg
from ...units import MINUTES_PER_DAY
from .pharmacokinetics import Pharmacokinetics
from .schedules import Schedule


class DoseEvent(NamedTuple):
    """One entry of :attr:`Treatment.dose_history`.

    ``kind`` is "switch" (the drug went on or off; ``amount`` is the level or rate of the
    windows then on) or "dose" (an instantaneous bolus/oral dose of ``amount`` µM).
    """

    t: float
    drug: str
    on: bool
    kind: str
    amount: float


@dataclass
class StepPlasma:
    level: dict = field(default_factory=dict)    # µM, plasma just before the step end
    average: dict = field(default_factory=dict)  # µM, exact time average over the step
    on: dict = field(default_factory=dict)       # schedule state at the step start


def _check_config(cfg: TreatmentConfig) -> None:
    """The checks :func:`spatialdtp.config.validate` runs, so a hand-built Treatment is
    refused the same way (ndim=3 lets any boundary face through; that is the grid's job)."""
    if not isinstance(cfg, TreatmentConfig):
        raise TypeError(f"Treatment needs a TreatmentConfig, got {type(cfg).__name__}")
    choice("treatment.combination", cfg.combination, COMBINATION_RULES)
    nonneg("treatment.lead_in_days", cfg.lead_in_days)
    for name, d in cfg.drugs.items():
        if not isinstance(d, DrugConfig):
            raise TypeError(f"treatment.drugs.{name} is a {type(d).__name__}, not a DrugConfig")
        validate_drug(f"treatment.drugs.{name}", d, 3)


class Treatment:
    """Every drug's schedule and pharmacokinetics, stepped with the simulation.

    ``advance(t, dt, burden)`` must be called with consecutive steps (each ``t`` the
    previous ``t + dt``); ``get_state``/``set_state`` carry everything across a restart.
    """

    def __init__(self, cfg: TreatmentConfig, t0: float = 0.0):
        _check_config(cfg)
        self.cfg = cfg
        self.drugs: tuple[str, ...] = tuple(cfg.drugs)
        lead_in = cfg.lead_in_days * MINUTES_PER_DAY
        self._schedules = {n: Schedule(d.schedule, d.pk.model, lead_in)
                           for n, d in cfg.drugs.items()}
        self._pk = {n: Pharmacokinetics(d.pk.model, d.pk.elimination, d.pk.absorption)
                    for n, d in cfg.drugs.items()}
        self._was_on = {n: False for n in self.drugs}
        self.t = float(t0)
        self.dose_history: list[DoseEvent] = []

    # ----------------------------------------------------------------- stepping
    def advance(self, t: float, dt: float, burden: Optional[float] = None) -> StepPlasma:
        """Advance every drug's schedule and PK from ``t`` to ``t + dt`` (minutes).

        ``burden`` is the tumour burden at ``t``; adaptive schedules take their baseline
        from it at ``start_day`` and their decisions at check times <= ``t`` not yet taken.
        """
        if not (isinstance(dt, (int, float, numpy.floating, numpy.integer))
                and math.isfinite(dt) and dt >= 0):
            raise ValueError(f"dt={dt!r}: the step must be a finite number of minutes >= 0")
        if not (isinstance(t, (int, float, numpy.floating, numpy.integer)) and math.isfinite(t)):
            raise ValueError(f"t={t!r}: the step start must be a finite time in minutes")
        if abs(t - self.t) > 1e-9 * max(1.0, abs(self.t)):
            raise ValueError(f"t={t!r}: steps must be consecutive, the treatment is at "
                             f"t={self.t!r} minutes (use set_state to resume elsewhere)")
        a, b = self.t, max(self.t, float(t) + float(dt))
        for name, sched in self._schedules.items():
            if sched.kind == "adaptive":
                if burden is None or not math.isfinite(burden) or burden < 0:
                    raise ValueError(f"burden={burden!r}: the adaptive schedule of drug "
                                     f"{name!r} needs the tumour burden, a finite number >= 0")
                sched.decide(a, b, float(burden))
        out = StepPlasma()
        for name in self.drugs:
            out.on[name] = self._schedules[name].is_on(a)
            integral = self._step_drug(name, a, b)
            pk = self._pk[name]
            out.level[name] = pk.plasma
            out.average[name] = integral / (b - a) if b > a else pk.plasma
        self.t = b
        return out

    def _step_drug(self, name: str, a: float, b: float) -> float:
        """Advance one drug over ``[a, b)`` cut at its events; return ``∫ c dt``."""
        if b <= a:
            return 0.0
        sched, pk = self._schedules[name], self._pk[name]
        wins = sched.windows(a, b)
        kicks = sched.doses(a, b)
        cuts = {a}
        for w0, w1, _ in wins:
            cuts.update(x for x in (w0, w1) if a < x < b)
        cuts.update(tau for tau, _ in kicks)
        cuts = sorted(cuts) + [b]
        total, i = 0.0, 0
        for s0, s1 in zip(cuts[:-1], cuts[1:]):
            levels = [lvl for w0, w1, lvl in wins if w0 <= s0 < w1]
            on = bool(levels)
            u = math.fsum(levels)
            if on != self._was_on[name]:
                self.dose_history.append(DoseEvent(s0, name, on, "switch", u))
                self._was_on[name] = on
            while i < len(kicks) and kicks[i][0] == s0:
                pk.give(kicks[i][1])
                self.dose_history.append(DoseEvent(s0, name, True, "dose", kicks[i][1]))
                i += 1
            total += pk.run(s1 - s0, u)
        return total

    def decide(self, burden: float) -> None:
        """Take the adaptive decisions due now (at ``self.t``) with the burden observed now.

        The simulator calls this as soon as a step's burden is known, so that ``is_on(t)``
        reports the state of the coming step (the one the observation's flag stands for);
        the next :meth:`advance` then finds these decisions already taken.
        """
        for name, sched in self._schedules.items():
            if sched.kind == "adaptive":
                if not math.isfinite(burden) or burden < 0:
                    raise ValueError(f"burden={burden!r}: the adaptive schedule of drug "
                                     f"{name!r} needs the tumour burden, a finite number >= 0")
                sched.decide(self.t, self.t, float(burden))

    # ----------------------------------------------------------------- queries
    def plasma(self) -> dict[str, float]:
        """Current plasma level of each drug (µM)."""
        return {n: self._pk[n].plasma for n in self.drugs}

    def is_on(self, t: float) -> dict[str, bool]:
        """Whether each drug's schedule is on at ``t`` (adaptive: decisions taken so far)."""
        return {n: self._schedules[n].is_on(float(t)) for n in self.drugs}

    def event_times(self, t_end: float) -> list[float]:
        """Known on/off switches and dose times in ``[now, t_end]`` (minutes), sorted.

        Adaptive schedules contribute only what is fixed: their start, their stop and the
        switches already decided.
        """
        a, b = self.t, math.nextafter(float(t_end), math.inf)
        times = set()
        for sched in self._schedules.values():
            if sched.kind == "adaptive":
                times.update(x for x, _ in sched.switches)
                times.update((sched.start, sched.stop))
            else:
                for w0, w1, _ in sched.windows(a, b):
                    times.update((w0, w1))
                times.update(tau for tau, _ in sched.doses(a, b))
        return sorted(x for x in times if a <= x < b and math.isfinite(x))

    # ----------------------------------------------------------------- restart
    def get_state(self) -> dict:
        """Everything needed to resume exactly, as plain JSON-able values."""
        return {
            "t": self.t,
            "drugs": {n: {"gut": self._pk[n].gut, "plasma": self._pk[n].plasma,
                          "was_on": self._was_on[n],
                          "adaptive": self._schedules[n].get_state()}
                      for n in self.drugs},
            "dose_history": [list(e) for e in self.dose_history],
        }

    def set_state(self, state: dict) -> None:
        """Resume from :meth:`get_state`'s dictionary (same drugs required)."""
        saved = set(state.get("drugs", {}))
        if saved != set(self.drugs):
            raise ValueError(f"state drugs={sorted(saved)}: this treatment has drugs "
                             f"{sorted(self.drugs)}; a state resumes only the same treatment")
        for n in self.drugs:
            d = state["drugs"][n]
            self._pk[n].gut = float(d["gut"])
            self._pk[n].plasma = float(d["plasma"])
            self._was_on[n] = bool(d["was_on"])
            self._schedules[n].set_state(d["adaptive"])
        self.t = float(state["t"])
        self.dose_history = [DoseEvent(float(t), str(drug), bool(on), str(kind), float(amount))
                             for t, drug, on, kind, amount in state["dose_history"]]

