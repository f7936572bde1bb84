"""The objective: the one number a run returns to Hydra's sweeper (e.g. Optuna's).

Configured by the ``objective`` section (:class:`spatialdtp.config.ObjectiveConfig`)::

    value = summary[metric]                          (e.g. time_to_progression_days)
    if value is NaN (never happened):  value = censored_value
        "run_days": the simulated days since treatment start (right-censored), or a number
    if dose_cap is set and cumulative plasma exposure > dose_cap:  value = penalty

Cumulative plasma exposure is ``∫ c_plasma dt`` summed over the drugs (µM·day), from the
per-step observables ``plasma_<drug>``. Row ``i`` of an observable holds the level just
before its time ``t[i]`` (the end of the step ``(t[i-1], t[i]]``), so the integral is the
right Riemann sum ``Σ_i plasma[i] (t[i] − t[i-1])``: exact for constant-level PK whose
switches fall on step ends (the default schedules with ``run.dt`` dividing a day), and
within ``k_e Δt / 2`` relative for eliminated drugs (bolus, oral, infusion) between doses.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..config import CENSORED_RUN_DAYS, ObjectiveConfig, check_objective

MINUTES_PER_DAY = 1440.0


def plasma_exposure(observables: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Cumulative plasma exposure of each drug (µM·day), from ``time`` (min) and
    ``plasma_<drug>`` (µM) observables; ``{}`` for a run without drugs."""
    t = np.asarray(observables["time"], dtype=np.float64)
    dt = np.diff(t)
    out = {}
    for name in sorted(observables):
        if name.startswith("plasma_"):
            c = np.asarray(observables[name], dtype=np.float64)[1:]
            # A partial row (a killed writer) is NaN: it adds nothing.
            out[name[len("plasma_"):]] = float(np.nansum(c * dt) / MINUTES_PER_DAY)
    return out


def censored_value(objective: ObjectiveConfig, summary: Mapping[str, float],
                   observables: Mapping[str, np.ndarray]) -> float:
    """The value that stands for "did not happen": the simulated days since treatment start
    (``run_days``), or the number ``objective.censored_value`` names."""
    if objective.censored_value == CENSORED_RUN_DAYS:
        t_end = float(np.asarray(observables["time"], dtype=np.float64)[-1])
        return t_end / MINUTES_PER_DAY - float(summary.get("treatment_start_day", 0.0))
    try:
        return float(objective.censored_value)
    except (TypeError, ValueError):
        raise ValueError(f"objective.censored_value={objective.censored_value!r}: must be "
                         f"{CENSORED_RUN_DAYS!r} or a number") from None



def objective_value(objective: ObjectiveConfig, summary: Mapping[str, float],
                    observables: Mapping[str, np.ndarray]) -> float:
    """The number a run returns to the sweeper (see the module docstring).

    ``summary`` is the end-of-run summary (:func:`spatialdtp.observables.summarize`),
    ``observables`` the per-step columns with ``time`` in minutes.
    """
    check_objective(objective)
    if objective.metric not in summary:
        raise ValueError(f"objective.metric={objective.metric!r}: not a summary key; "
                         f"keys are {sorted(summary)}")
    if objective.dose_cap is not None:
        exposure = sum(plasma_exposure(observables).values())
        if exposure > objective.dose_cap:
            return float(objective.penalty)
    value = float(summary[objective.metric])
    if math.isnan(value):
        return censored_value(objective, summary, observables)
    return value
