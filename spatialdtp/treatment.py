"""Treatment: when each drug is given, the plasma level it reaches, and what it does to cells.

Three parts, in the order a step uses them:

1. **Schedules** decide when a drug is *on*. A schedule is a set of on-windows
   ``[w0, w1)`` (minutes), each with a level (the constant plasma level or the infusion
   rate while it lasts), plus, for bolus and oral pharmacokinetics, instantaneous doses.

   - ``continuous``: one window ``[start_day, stop_day)``.
   - ``intermittent``: ``on_days`` on, ``off_days`` off, repeating from ``start_day``.
   - ``adaptive`` (Zhang et al. 2017): on at ``start_day``; the baseline is the tumour
     burden at ``start_day``; at every check (every ``check_interval_days`` after
     ``start_day``) the drug goes off if it is on and burden < ``stop_fraction``·baseline,
     and back on if it is off and burden >= ``resume_fraction``·baseline.
   - ``doses``: an explicit list of ``[day, amount]``. With bolus/oral PK each entry is one
     dose of ``amount`` at ``day`` (the drug counts as *on* for the ``interval_hours``
     that one dose covers); with constant/infusion PK each entry is a window of
     ``dose_duration_hours`` with level (or rate) ``amount``; overlapping windows add.
     ``start_day`` plays no part: the days are absolute.

   ``stop_day`` ends any schedule. With bolus/oral PK a window gives a dose of
   ``schedule.dose`` every ``interval_hours`` from its start (the on-switch) while it lasts.

2. **Pharmacokinetics** turn the schedule into the plasma level ``c_blood(t)`` (µM):

   - ``constant``: ``c = level`` while on, 0 off (in-vitro-like constant exposure);
   - ``bolus``: each dose raises ``c`` by ``amount`` at once; ``dc/dt = −ke c``;
   - ``oral``: one compartment with first-order absorption from the gut ``g``:
     ``dg/dt = −ka g``, ``dc/dt = ka g − ke c``; each dose adds ``amount`` to ``g``;
   - ``infusion``: ``dc/dt = R − ke c`` with ``R = rate`` (µM/min) while on.

   The state is advanced exactly (closed-form exponentials), cutting the step at every
   dose and on/off switch inside it, and the step returns both the level at its end and
   the exact time average over it. The simulator feeds the average to the vessels, so a
   short bolus inside a long step still delivers the right amount of drug.

3. **Drug effects** turn the *local* concentration into effects with the Hill curve
   ``E = emax cʰ/(cʰ + EC50ʰ)``; see :func:`drug_effects`.

Time is in minutes throughout (``*_day`` and ``*_hours`` config values are converted here).
Events that fall exactly on a step's end belong to the next step, so ``level`` is the
plasma level just before ``t + dt``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import numpy

from .config import COMBINATION_RULES, DrugConfig, TreatmentConfig, _choice, _validate_drug

MIN_PER_DAY = 1440.0
MIN_PER_HOUR = 60.0

# Classes whose effect is a persister kill hazard (1/min) rather than a fraction.
HAZARD_CLASSES = ("oxphos", "gpx4", "fao")
IMPULSE_PK = ("bolus", "oral")  # PK models whose doses are instantaneous


# =========================================================================== drug effects
def hill(c, ec50, hill, emax, xp=numpy):
    """Hill (sigmoid Emax) effect ``E = emax·cʰ/(cʰ + EC50ʰ)`` of concentration ``c`` (µM).

    Negative concentrations (round-off from the solvers) count as 0. Written as
    ``r/(1 + r)`` with ``r = (c/EC50)ʰ`` capped at 1e30 so that float32 neither overflows
    nor gives inf/inf.
    """
    cap = 1.0e30 ** (1.0 / max(hill, 1.0))
    x = xp.minimum(xp.maximum(c, 0.0) / ec50, cap)
    r = x ** hill
    return emax * r / (1.0 + r)


@dataclass
class DrugEffects:
    """Combined effects at every voxel (arrays, or 0.0 where no drug of that class is given)."""

    kill: Any          # targeted effect E in [0, 1] (multiplies each type's kill rate)
    epigenetic: Any    # KDM5/HDAC inhibition in [0, 1] (lowers entry into P)
    met_blockade: Any  # MET blockade in [0, 1] (removes the HGF–MET protection)
    p_kill: Any        # 1/min, extra persister kill hazard from oxphos/gpx4/fao drugs


def _bliss(effects, xp):
    """Bliss independence: the fraction left unaffected is the product of each drug's."""
    if not effects:
        return 0.0
    if len(effects) == 1:
        return effects[0]
    survive = functools.reduce(lambda s, e: s * (1.0 - e), effects[1:], 1.0 - effects[0])
    return 1.0 - survive


def _hsa(effects, xp):
    """Highest single agent: the combination is as good as its best drug."""
    if not effects:
        return 0.0
    return functools.reduce(xp.maximum, effects)


_COMBINE = {"bliss": _bliss, "hsa": _hsa}


def drug_effects(cfg: TreatmentConfig, conc: dict, xp=numpy) -> DrugEffects:
    """Effects of the local drug concentrations ``conc`` (drug name -> µM array).

    Drugs of one class combine by ``cfg.combination`` (Bliss: ``1 − Π(1 − E_i)``; HSA:
    ``max E_i``). Each drug of the oxphos/gpx4/fao classes is a persister hazard
    ``kill_rate·E`` (1/min). Within one of those classes hazards add under Bliss (adding
    hazards is Bliss independence for survival over time) and the largest counts under HSA;
    the classes' hazards add up into ``p_kill``.
    """
    _choice("treatment.combination", cfg.combination, COMBINATION_RULES)
    by_class: dict[str, list] = {"targeted": [], "epigenetic": [], "met": []}
    hazards: dict[str, list] = {c: [] for c in HAZARD_CLASSES}
    for name, d in cfg.drugs.items():
        if name not in conc:
            raise KeyError(f"conc has no concentration for drug {name!r}; "
                           f"drug_effects needs one for each of {list(cfg.drugs)}")
        e = hill(conc[name], d.ec50, d.hill, d.emax, xp)
        if d.drug_class in HAZARD_CLASSES:
            hazards[d.drug_class].append(d.kill_rate * e)
        elif d.drug_class in by_class:
            by_class[d.drug_class].append(e)
        else:
            raise ValueError(f"treatment.drugs.{name}.drug_class={d.drug_class!r}: allowed "
                             f"values are {list(by_class) + list(HAZARD_CLASSES)}")
    combine = _COMBINE[cfg.combination]
    within = (lambda hs: functools.reduce(lambda x, y: x + y, hs)) if cfg.combination == "bliss" \
        else (lambda hs: _hsa(hs, xp))
    p_kill = 0.0
    for hs in hazards.values():
        if hs:
            p_kill = p_kill + within(hs)
    return DrugEffects(kill=combine(by_class["targeted"], xp),
                       epigenetic=combine(by_class["epigenetic"], xp),
                       met_blockade=combine(by_class["met"], xp),
                       p_kill=p_kill)


# =========================================================================== exact exponentials
def _f1(x: float) -> float:
    """``(1 − e^{−x})/x`` (=1 at x = 0), accurate for every x: the mean of e^{−xu} on [0, 1]."""
    if x == 0.0:
        return 1.0
    return -math.expm1(-x) / x


def _moments(m: float, n: int) -> list[float]:
    """``M_k(m) = ∫₀¹ uᵏ e^{−mu} du`` for k = 0..n, m >= 0.

    Small m: the power series (little cancellation for m <= 1). Larger m: the forward
    recursion ``M_k = (k M_{k−1} − e^{−m})/m``, whose error growth k!/mᵏ is harmless for
    the terms :func:`_psi` uses them in.
    """
    if m <= 1.0:
        out = []
        for k in range(n + 1):
            total, term = 0.0, 1.0          # term = (−m)^j / j!
            for j in range(30):
                total += term / (k + j + 1)
                term *= -m / (j + 1)
            out.append(total)
        return out
    e = math.exp(-m)
    out = [_f1(m)]
    for k in range(1, n + 1):
        out.append((k * out[-1] - e) / m)
    return out


def _psi(a: float, b: float) -> float:
    """``Ψ(a, b) = ∫₀¹ ∫₀^σ e^{−a v − b (σ − v)} dv dσ`` for a, b >= 0 (symmetric).

    It is the divided difference ``(f1(b) − f1(a))/(a − b)``, with the limit ``−f1'(a)`` at
    a = b. It gives the time integral of a first-order response to a first-order input
    (oral absorption: a = ka·h, b = ke·h) and, with b = 0, the integral of an infusion
    build-up. Far from a = b the divided difference is exact to round-off; near it a
    Taylor series in δ = |a − b| about m = min(a, b) avoids the cancellation:
    ``Ψ = Σ_k (−δ)ᵏ/(k+1)! · M_{k+1}(m)``.
    """
    m, d = min(a, b), abs(a - b)
    if d > max(1.0, 0.25 * m):
        return (_f1(m) - _f1(m + d)) / d
    n_terms = 30
    mom = _moments(m, n_terms)
    total, coef = 0.0, 1.0                 # coef = (−δ)^k / (k+1)!
    for k in range(n_terms):
        total += coef * mom[k + 1]
        coef *= -d / (k + 2)
    return total


# =========================================================================== pharmacokinetics
class _PK:
    """One drug's plasma (and gut) compartment, advanced exactly between events."""

    def __init__(self, model: str, elimination: float, absorption: float):
        self.model = model
        self.ke = float(elimination)
        self.ka = float(absorption)
        self.gut = 0.0      # µM-equivalent waiting in the gut (oral)
        self.plasma = 0.0   # µM

    def give(self, amount: float) -> None:
        """An instantaneous dose (bolus: into plasma; oral: into the gut)."""
        if self.model == "bolus":
            self.plasma += amount
        elif self.model == "oral":
            self.gut += amount

    def run(self, h: float, u: float) -> float:
        """Advance ``h`` minutes with no event inside, input ``u`` (the level of the
        on-windows: plasma level for constant, rate for infusion); return ``∫ c dt``.

        With b = ke·h, a = ka·h:
        infusion/bolus (R = u or 0): ``c(h) = c0 e^{−b} + R h f1(b)``,
        ``∫c = h (c0 f1(b) + R h Ψ(b, 0))``;
        oral: ``g(h) = g0 e^{−a}``, ``c(h) = c0 e^{−b} + g0 a (e^{−b} − e^{−a})/(a − b)``,
        ``∫c = h (c0 f1(b) + g0 a Ψ(a, b))`` (the ka = ke limit included).
        """
        if self.model == "constant":
            self.plasma = u
            return u * h
        c0, b = self.plasma, self.ke * h
        if self.model == "oral":
            g0, a = self.gut, self.ka * h
            integral = h * (c0 * _f1(b) + g0 * a * _psi(a, b))
            # (e^{−b} − e^{−a})/(a − b) = e^{−min(a,b)} f1(|a − b|): no overflow, no 0/0.
            self.plasma = c0 * math.exp(-b) + g0 * a * math.exp(-min(a, b)) * _f1(abs(a - b))
            self.gut = g0 * math.exp(-a)
            return integral
        rate = u if self.model == "infusion" else 0.0
        integral = h * (c0 * _f1(b) + rate * h * _psi(b, 0.0))
        self.plasma = c0 * math.exp(-b) + rate * h * _f1(b)
        return integral


# =========================================================================== schedules
def _first_index(a: float, origin: float, period: float) -> int:
    """A safe lower bound for the first k with origin + k·period >= a (callers filter).

    Event times are always computed as ``origin + k·period`` with the same operands, so
    each one lands in exactly one step however the steps are cut.
    """
    return max(0, math.floor((a - origin) / period) - 1)


class _Schedule:
    """When one drug is on: on-windows ``(w0, w1, level)`` and impulse doses, in minutes."""

    def __init__(self, s, pk_model: str):
        self.kind = s.kind
        self.start = s.start_day * MIN_PER_DAY
        self.stop = math.inf if s.stop_day is None else s.stop_day * MIN_PER_DAY
        self.level = float(s.dose)
        self.interval = s.interval_hours * MIN_PER_HOUR
        self.impulses = pk_model in IMPULSE_PK
        if self.kind == "intermittent":
            self.period = (s.on_days + s.off_days) * MIN_PER_DAY
            self.on_len = s.on_days * MIN_PER_DAY
            if s.off_days == 0:       # no off phase: the dose train must not restart
                self.kind = "continuous"
        if self.kind == "doses":
            span = self.interval if self.impulses else s.dose_duration_hours * MIN_PER_HOUR
            self.span = span
            self.dose_list = sorted((float(day) * MIN_PER_DAY, float(amount))
                                    for day, amount in s.doses
                                    if float(day) * MIN_PER_DAY < self.stop)
        if self.kind == "adaptive":
            self.check = s.check_interval_days * MIN_PER_DAY
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


# =========================================================================== the treatment
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
    _choice("treatment.combination", cfg.combination, COMBINATION_RULES)
    for name, d in cfg.drugs.items():
        if not isinstance(d, DrugConfig):
            raise TypeError(f"treatment.drugs.{name} is a {type(d).__name__}, not a DrugConfig")
        _validate_drug(f"treatment.drugs.{name}", d, 3)


class Treatment:
    """Every drug's schedule and pharmacokinetics, stepped with the simulation.

    ``advance(t, dt, burden)`` must be called with consecutive steps (each ``t`` the
    previous ``t + dt``); ``get_state``/``set_state`` carry everything across a restart.
    """

    def __init__(self, cfg: TreatmentConfig, t0: float = 0.0):
        _check_config(cfg)
        self.cfg = cfg
        self.drugs: tuple[str, ...] = tuple(cfg.drugs)
        self._schedules = {n: _Schedule(d.schedule, d.pk.model) for n, d in cfg.drugs.items()}
        self._pk = {n: _PK(d.pk.model, d.pk.elimination, d.pk.absorption)
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
