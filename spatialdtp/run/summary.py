"""The end-of-run summary: the end points of a treatment from the per-step time courses
(time to progression, nadir, minimal residual disease), and its printed form.

Units: days (times since treatment start), cells (burden, P, R); every key's unit is in
:data:`spatialdtp.units.SUMMARY_UNITS`.
"""
from __future__ import annotations

import math

import numpy as np

from ..config import RunConfig
from ..units import MINUTES_PER_DAY, SUB_CELL, SUMMARY_UNITS, is_sub_cell


def summarize(times_min, obs: dict[str, np.ndarray], run_cfg: RunConfig,
              treatment_start_min: float = 0.0) -> dict[str, float]:
    """End points of a treatment from the per-step time courses (host side).

    ``times_min`` are the observation times (minutes, non-decreasing); ``obs`` maps names
    to arrays of the same length (``burden``, or S, P and R, are required). Let ``i0`` be
    the first sample with ``t >= treatment_start_min``; all times below are in days since
    treatment start.

    - ``baseline_burden`` B0 = burden[i0]; ``progression_threshold`` = progression_factor·B0.
    - ``time_to_progression_days``: the first sample after i0 where burden rises above the
      threshold from a sample at or below it (a crossing from <= to >). Usually the burden
      starts below the threshold, so this is the first time it exceeds it; if it starts
      above (a factor <= 1), progression is the first return above after it has dropped to
      or below. Step resolution: the sample time itself, no interpolation. NaN if never.
    - ``nadir`` = min burden from i0 on, ``nadir_day`` its time, ``nadir_fraction`` =
      nadir/B0, ``mrd_reached`` = 1.0 if nadir_fraction < mrd_threshold else 0.0.
    - ``final_burden``, ``final_fraction`` (final/B0), ``final_resistant_fraction``,
      ``final_persister_fraction``, ``final_P``, ``final_R``: the last sample.
    - ``final_niche_contrast``: the niche contrast (:mod:`.niche`) at the last sample (NaN
      when it is undefined there).
    - ``cumulative_on_days_<drug>`` for each ``on_<drug>`` in ``obs``: Σ on[i]·(t[i+1]-t[i])
      over the whole run (each flag holds until the next sample), in days.

    A run that ends before treatment start (a short run inside the lead-in) has no
    baseline: every key that depends on one is NaN, the ``final_*`` counts are reported.
    """
    t = np.asarray(times_min, dtype=np.float64).ravel()
    if t.size == 0:
        raise ValueError("times_min=[]: needs at least one observation time")
    if np.any(np.diff(t) < 0):
        raise ValueError("times_min: observation times must be non-decreasing (minutes)")
    if "burden" in obs:
        burden = np.asarray(obs["burden"], dtype=np.float64)
    elif all(k in obs for k in ("S", "P", "R")):
        burden = sum(np.asarray(obs[k], dtype=np.float64) for k in ("S", "P", "R"))
    else:
        raise ValueError(f"obs has {sorted(obs)}: needs 'burden' or 'S', 'P' and 'R'")
    for k, v in obs.items():
        if np.shape(v) != t.shape:
            raise ValueError(f"obs[{k!r}] has shape {np.shape(v)}, times_min has {t.shape}")
    if not math.isfinite(treatment_start_min) or treatment_start_min < 0:
        raise ValueError(f"treatment_start_min={treatment_start_min}: must be a finite "
                         "number of minutes >= 0")
    after = np.nonzero(t >= treatment_start_min)[0]
    untreated = after.size == 0          # the run ended inside the lead-in
    i0 = int(after[0]) if not untreated else t.size - 1

    def days(i):
        return (t[i] - treatment_start_min) / MINUTES_PER_DAY

    def frac(a, b):
        return a / b if b > 0 else math.nan

    b0 = float(burden[i0])
    threshold = run_cfg.progression_factor * b0
    course = burden[i0:]
    above = course > threshold
    crossing = np.nonzero(above[1:] & ~above[:-1])[0]
    ttp = days(i0 + 1 + int(crossing[0])) if crossing.size else math.nan
    k_nadir = i0 + int(np.argmin(course))
    nadir = float(burden[k_nadir])
    nadir_fraction = frac(nadir, b0)
    final = float(burden[-1])

    def last(name):
        return float(np.asarray(obs[name])[-1]) if name in obs else math.nan

    out = {
        "treatment_start_day": treatment_start_min / MINUTES_PER_DAY,
        "baseline_burden": b0,
        "progression_threshold": threshold,
        "time_to_progression_days": ttp,
        "nadir": nadir,
        "nadir_day": days(k_nadir),
        "nadir_fraction": nadir_fraction,
        "mrd_reached": 1.0 if nadir_fraction < run_cfg.mrd_threshold else 0.0,
        "final_burden": final,
        "final_fraction": frac(final, b0),
        "final_resistant_fraction": frac(last("R"), final),
        "final_persister_fraction": frac(last("P"), final),
        "final_P": last("P"),
        "final_R": last("R"),
        "final_niche_contrast": last("niche_contrast"),
    }
    if untreated:
        for key in ("baseline_burden", "progression_threshold", "time_to_progression_days",
                    "nadir", "nadir_day", "nadir_fraction", "mrd_reached", "final_fraction"):
            out[key] = math.nan
    for key in sorted(k for k in obs if k.startswith("on_")):
        on = np.asarray(obs[key], dtype=np.float64)
        out[f"cumulative_on_days_{key[3:]}"] = float(np.sum(on[:-1] * np.diff(t)) / MINUTES_PER_DAY)
    return out


def summary_unit(key: str) -> str:
    """The unit of one summary key (``cumulative_on_days_<drug>`` included)."""
    return "days" if key.startswith("cumulative_on_days_") else SUMMARY_UNITS.get(key, "")


def format_summary(summary: dict[str, float]) -> str:
    """A short aligned table: name, value (4 significant digits), unit; a count below one
    cell is marked "(< 1 cell)"."""
    width = max((len(k) for k in summary), default=0)
    lines = []
    for k, v in summary.items():
        unit = summary_unit(k)
        if is_sub_cell(v, unit):
            unit = f"{unit} ({SUB_CELL})"
        value = "never" if k == "time_to_progression_days" and math.isnan(v) else f"{v:.4g}"
        lines.append(f"{k:<{width}}  {value:>10}  {unit}".rstrip())
    return "\n".join(lines)
