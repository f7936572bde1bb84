"""Schedules: when one drug is on (minutes), from its ``schedule`` section.

A schedule is a set of on-windows ``[w0, w1)``, each with a level (the constant plasma
level or the infusion rate while it lasts), plus, for bolus and oral pharmacokinetics,
instantaneous doses:

- ``continuous``: one window ``[start_day, stop_day)``;
- ``intermittent``: ``on_days`` on, ``off_days`` off, repeating from ``start_day``;
- ``adaptive`` (Zhang et al. 2017): on at ``start_day``, whose tumour burden is the
  baseline; at every check (every ``check_interval_days`` after ``start_day``) the drug
  goes off if it is on and burden < ``stop_fraction``·baseline, and back on if it is off
  and burden >= ``resume_fraction``·baseline;
- ``doses``: an explicit list of ``[day, amount]``. With bolus/oral PK each entry is one
  dose of ``amount`` at ``day`` (the drug counts as *on* for the ``interval_hours`` that
  one dose covers); with constant/infusion PK each entry is a window of
  ``dose_duration_hours`` with level (or rate) ``amount``; overlapping windows add.
  ``start_day`` plays no part: the days are absolute.

Every day above counts from the end of ``treatment.lead_in_days`` (the untreated lead-in,
``offset`` minutes here). ``stop_day`` ends any schedule. With bolus/oral PK a window gives a dose of
``schedule.dose`` every ``interval_hours`` from its start (the on-switch) while it lasts.
"""
from __future__ import annotations

import math
from typing import Optional

from ...units import MINUTES_PER_DAY, MINUTES_PER_HOUR
from .pharmacokinetics import IMPULSE_PK


def _first_index(a: float, origin: float, period: float) -> int:
    """A safe lower bound for the first k with origin + k·period >= a (callers filter).

    Event times are always computed as ``origin + k·period`` with the same operands, so
    each one lands in exactly one step however the steps are cut.
    """
    return max(0, math.floor((a - origin) / period) - 1)


class Schedule:
    """When one drug is on: on-windows ``(w0, w1, level)`` and impulse doses, in minutes."""

    def __init__(self, s, pk_model: str, offset: float = 0.0):
        self.kind = s.kind
        self.start = offset + s.start_day * MINUTES_PER_DAY
        self.stop = math.inf if s.stop_day is None else offset + s.stop_day * MINUTES_PER_DAY
        self.level = float(s.dose)
        self.interval = s.interval_hours * MINUTES_PER_HOUR
        self.impulses = pk_model in IMPULSE_PK
        if self.kind == "intermittent":
            self.period = (s.on_days + s.off_days) * MINUTES_PER_DAY
            self.on_len = s.on_days * MINUTES_PER_DAY
            if s.off_days == 0:       # no off phase: the dose train must not restart
                self.kind = "continuous"
        if self.kind == "doses":
            span = self.interval if self.impulses else s.dose_duration_hours * MINUTES_PER_HOUR
            self.span = span
            self.dose_list = sorted((offset + float(day) * MINUTES_PER_DAY, float(amount))
                                    for day, amount in s.doses
                                    if offset + float(day) * MINUTES_PER_DAY < self.stop)
        if self.kind == "adaptive":
            self.check = s.check_interval_days * MINUTES_PER_DAY
            self.stop_fraction = s.stop_fraction
            self.resume_fraction = s.resume_fraction
            self.started = False
            self.baseline: Optional[float] = None
            self.next_check = 1               # index k of the next check start + k·check
            self.switches: list[tuple[float, bool]] = []  # decisions taken: (time, on)

    # ----------------------------------------------------------------- windows and doses
    def windows(self, a: float, b: float) -> list[tuple[float, float, float]]:
        """On-windows ``(w0, w1, level)`` that overlap ``[a, b)``."""
        if self.kind == "continuous":
            wins = [(self.start, self.stop, self.level)]
        elif self.kind == "intermittent":
            wins = []
            j = _first_index(a, self.start, self.period)
            while True:
                w0 = self.start + j * self.period
                if w0 >= min(b, self.stop):
                    break
                wins.append((w0, min(w0 + self.on_len, self.stop), self.level))
                j += 1
        elif self.kind == "doses":
            wins = [(d, min(d + self.span, self.stop), amount) for d, amount in self.dose_list]
        else:  # adaptive: between each on-switch and the next off-switch taken so far
            wins = []
            for i, (x, on) in enumerate(self.switches):
                if on:
                    end = self.switches[i + 1][0] if i + 1 < len(self.switches) else math.inf
                    wins.append((x, min(end, self.stop), self.level))
        return [w for w in wins if w[0] < w[1] and w[0] < b and w[1] > a]

    def doses(self, a: float, b: float) -> list[tuple[float, float]]:
        """Instantaneous doses ``(time, amount)`` in ``[a, b)`` (bolus and oral PK only)."""
        if not self.impulses:
            return []
        if self.kind == "doses":
            return [(d, amount) for d, amount in self.dose_list if a <= d < b]
        out = []
        for w0, w1, _ in self.windows(a, b):
            k = _first_index(a, w0, self.interval)
            while True:
                tau = w0 + k * self.interval
                if tau >= min(w1, b):
                    break
                if tau >= a:
                    out.append((tau, self.level))
                k += 1
        return sorted(out)

    def is_on(self, t: float) -> bool:
        return bool(self.windows(t, math.nextafter(t, math.inf)))

    # ----------------------------------------------------------------- adaptive rule
    def decide(self, a: float, b: float, burden: float) -> None:
        """Take the adaptive decisions due at the start ``a`` of the step ``[a, b)``.

        The baseline is the burden passed with the step that reaches ``start_day`` (the
        last burden known before treatment starts; the drug goes on exactly at
        ``start_day``). A check at ``start + k·check_interval`` is decided by the first
        step starting at or after it, with that step's burden; several overdue checks
        collapse into one decision (the rule gives the same answer for each).
        """
        if a >= self.stop:
            return
        if not self.started:
            if self.start >= b and self.start > a:   # the step does not reach start_day
                return
            self.started = True
            self.baseline = burden
            self.switches.append((max(self.start, a), True))
            self.next_check = self._last_check(a) + 1   # checks before the start are void
            return
        k = self._last_check(a)
        if k < self.next_check:
            return
        self.next_check = k + 1
        on = self.switches[-1][1]
        if on and burden < self.stop_fraction * self.baseline:
            self.switches.append((a, False))
        elif not on and burden >= self.resume_fraction * self.baseline:
            self.switches.append((a, True))

    def _last_check(self, a: float) -> int:
        """Largest k with start + k·check <= a (0 if none)."""
        if a < self.start:
            return 0
        k = math.floor((a - self.start) / self.check)
        while self.start + (k + 1) * self.check <= a:
            k += 1
        while k > 0 and self.start + k * self.check > a:
            k -= 1
        return k

    def get_state(self) -> Optional[dict]:
        if self.kind != "adaptive":
            return None
        return {"started": self.started, "baseline": self.baseline,
                "next_check": self.next_check,
                "switches": [[x, on] for x, on in self.switches]}

    def set_state(self, state: Optional[dict]) -> None:
        if self.kind != "adaptive":
            return
        self.started = bool(state["started"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        self.next_check = int(state["next_check"])
        self.switches = [(float(x), bool(on)) for x, on in state["switches"]]

