"""The read-outs of each experiment: what the README reports, computed from arm runs.

:func:`value_at` reads an observable at a day; :func:`niche_contrast` is the niche measure
of :mod:`spatialdtp.run.niche` (the run's own observable, computed from the last frame);
:func:`near_far`, :func:`zone_means` and the paired ratios compare persisters (and oxygen)
near and far from the CAF/TAM niches in the tumour bed;
:func:`holiday_readouts` measures a drug holiday; :func:`readouts` and
:func:`readout_table` gather each experiment's end points.

Units: cells (P, R, burden), cells/voxel (densities), days (times since treatment start),
µm (distances).
"""
from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import numpy as np

from ...run import niche
from ...units import SUB_CELL, is_sub_cell
from .arms import EXPERIMENTS, ArmRun


def value_at(run: ArmRun, name: str, day: float) -> float:
    """Observable ``name`` at the last step at or before ``day`` (days since treatment
    start); ``"SP"`` is S + P, the non-resistant tumour."""
    i = int(np.searchsorted(run.days, day + 1e-9, side="right")) - 1
    if i < 0:
        raise ValueError(f"day={day}: before the first observation ({run.days[0]:.3f} d)")
    if name == "SP":
        return float(run.observables["S"][i] + run.observables["P"][i])
    return float(run.observables[name][i])


def niche_distance_map(run: ArmRun) -> np.ndarray:
    """Distance (µm) from every voxel to the nearest niche voxel of the last frame
    (:mod:`spatialdtp.run.niche`); inf everywhere when there is no niche."""
    return niche.niche_distance(run.fields["F"], run.fields["M"], run.geometry)


def _zones(run: ArmRun, control: ArmRun | None = None):
    """(near, far) masks of the tumour bed, from ``control``'s niches if given."""
    ref = control or run
    d = niche_distance_map(ref)
    g = ref.geometry
    return ref.bed & g.is_near(d), ref.bed & g.is_far(d)


def niche_contrast(run: ArmRun) -> niche.NicheContrast:
    """The niche measure of the last frame (:func:`spatialdtp.run.niche.niche_contrast`):
    persisters per initial tumour cell near niches over far from them, Mantel–Haenszel
    across strata of distance to the tumour edge; with the voxel counts and, when NaN,
    the reason."""
    f = run.fields
    return niche.niche_contrast(f["P"], f["F"], f["M"], run.reference, run.geometry)


def near_far(run: ArmRun) -> tuple[float, float]:
    """Persisters per initial tumour cell (ΣP/ΣT0) of the tumour bed near niche voxels
    and far from them, pooled without edge strata (the crude rates); NaN for an empty set."""
    near, far = _zones(run)
    P, T0 = run.fields["P"], run.tumour_start

    def rate(m):
        return float(P[m].sum() / T0[m].sum()) if m.any() and T0[m].sum() > 0 else math.nan
    return rate(near), rate(far)


def zone_means(run: ArmRun, name: str, control: ArmRun | None = None) -> tuple[float, float]:
    """Mean of the last frame's field ``name`` (e.g. ``"oxygen"``, mmHg) over the near and
    far tumour-bed voxels (of ``control``'s niches, if given); NaN for an empty set."""
    near, far = _zones(run, control)
    a = run.fields[name]
    return tuple(float(a[m].mean()) if m.any() else math.nan for m in (near, far))


def paired_near_far_ratio(treated: ArmRun, control: ArmRun) -> tuple[float, float]:
    """Σ P(treated) / Σ P(control) over the control's tumour bed near and far from its
    niches (same tissue: same seed). Below 1 where the treated arm has fewer persisters."""
    near, far = _zones(control)
    ratio = (lambda m: float(treated.fields["P"][m].sum() / control.fields["P"][m].sum())
             if m.any() and control.fields["P"][m].sum() > 0 else math.nan)
    return ratio(near), ratio(far)


def paired_profile_ratio(treated: ArmRun, control: ArmRun, edges: Sequence[float]) -> np.ndarray:
    """Σ P(treated) / Σ P(control) over the control's tumour bed in bins of distance (µm)
    to the control's nearest niche voxel (same tissue: same seed); NaN where empty."""
    dist = niche_distance_map(control)[control.bed]
    num, _ = np.histogram(dist, bins=edges, weights=treated.fields["P"][control.bed])
    den, _ = np.histogram(dist, bins=edges, weights=control.fields["P"][control.bed])
    out = np.full(len(edges) - 1, np.nan)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def niche_profile_of(run: ArmRun, edges: Sequence[float]) -> np.ndarray:
    """Persisters per initial tumour cell of the tumour bed in bins of distance (µm) to
    the nearest niche voxel (:func:`spatialdtp.run.niche.niche_profile`); NaN for empty
    bins (all NaN without a niche)."""
    f = run.fields
    return niche.niche_profile(f["P"], f["F"], f["M"], run.reference, run.geometry,
                               np.asarray(edges, dtype=float)).rate


def schedule_windows(run: ArmRun, drug: str = "drug") -> list[tuple[float, float]]:
    """(start, end) days of each period the drug was on."""
    from ...run.summary_plot import on_periods

    return on_periods(run.days, run.observables[f"on_{drug}"])


def holiday_readouts(run: ArmRun, drug: str = "drug") -> dict[str, float]:
    """The drug holiday of a run with the drug on, then off, then on again.

    ``P_holiday_start``/``P_holiday_end`` (cells) at the first off and the next on;
    ``P_kept`` = their ratio; ``persister_share_end`` = P/(S+P) at the end of the holiday
    (persisters among the non-resistant cells, the pool a rechallenge meets);
    ``P_decay_per_day`` = −ln(P_kept)/holiday length; ``rechallenge_P_gain`` = the most P
    in the first two days of the rechallenge over P when it starts (> 1: the drug makes
    new persisters); ``rechallenge_survival`` = (S+P) one week into the rechallenge over
    (S+P) when it starts (NaN if the run ends sooner).
    """
    windows = schedule_windows(run, drug)
    if len(windows) < 2:
        raise ValueError(f"{run.arm!r}: the drug {drug!r} is on {len(windows)} time(s); a "
                         "holiday needs on, off, on")
    off, back = windows[0][1], windows[1][0]
    p0, p1 = value_at(run, "P", off), value_at(run, "P", back)
    sp1 = value_at(run, "SP", back)
    week = back + 7.0
    survival = (value_at(run, "SP", week) / sp1) if week <= run.days[-1] + 1e-9 else math.nan
    first = (run.days >= back - 1e-9) & (run.days <= back + 2.0 + 1e-9)
    return {"holiday_days": back - off, "P_holiday_start": p0, "P_holiday_end": p1,
            "P_kept": p1 / p0, "P_decay_per_day": -math.log(p1 / p0) / (back - off),
            "persister_share_end": p1 / sp1,
            "rechallenge_P_gain": float(run.observables["P"][first].max()) / p1,
            "rechallenge_survival": survival}


def readouts(experiment: str, run: ArmRun) -> dict[str, float]:
    """The end points each experiment reports for one run (its figure and README)."""
    end = float(run.days[-1])
    s = run.summary
    base = {"P_end": value_at(run, "P", end), "R_end": value_at(run, "R", end),
            "burden_end_fraction": value_at(run, "burden", end) / run.baseline}
    if experiment == "schedules":
        out = dict(base)
        for d in (28.0, 56.0):
            if d <= end:
                out[f"P_day{d:g}"] = value_at(run, "P", d)
                out[f"R_day{d:g}"] = value_at(run, "R", d)
        out["time_to_progression_days"] = float(s.get("time_to_progression_days", math.nan))
        out["cumulative_on_days"] = float(s.get("cumulative_on_days_drug", math.nan))
        return out
    if experiment in ("combinations", "niche"):
        near, far = near_far(run)
        contrast = niche_contrast(run)
        o2_near, o2_far = zone_means(run, "oxygen")
        return {**base, "P_end_per_baseline": base["P_end"] / run.baseline,
                "niche_contrast": contrast.value, "near_voxels": contrast.near_voxels,
                "far_voxels": contrast.far_voxels, "rate_near": near, "rate_far": far,
                "crude_near_far": near / far if far > 0 else math.nan,
                "oxygen_near": o2_near, "oxygen_far": o2_far}
    if experiment == "persister_origin":
        return {**base, **holiday_readouts(run)}
    raise ValueError(f"experiment={experiment!r}: known experiments are {list(EXPERIMENTS)}")


def by_arm(runs: Iterable[ArmRun]) -> dict[str, list[ArmRun]]:
    out: dict[str, list[ArmRun]] = {}
    for r in runs:
        out.setdefault(r.arm, []).append(r)
    return out


def is_cell_count(key: str) -> bool:
    """Whether read-out ``key`` is a count of cells (P_end, R_day28, P_holiday_start, ...)."""
    return bool(re.fullmatch(r"[SPR]_(end|day[0-9.]+|holiday_start|holiday_end)", key))


def readout_table(experiment: str, runs: Sequence[ArmRun]) -> str:
    """Per arm and read-out: the mean over seeds and [min, max]; one line per arm. A count
    of cells whose mean is below one cell is marked "< 1 cell"."""
    lines = []
    for arm, group in by_arm(runs).items():
        rows = [readouts(experiment, r) for r in group]
        parts = []
        for key in rows[0]:
            vals = np.array([row[key] for row in rows], dtype=float)
            fin = vals[np.isfinite(vals)]
            if fin.size == 0:
                parts.append(f"{key}=nan")
            else:
                sub = f" ({SUB_CELL})" if is_cell_count(key) and is_sub_cell(fin.mean()) else ""
                parts.append(f"{key}={fin.mean():.3g} [{fin.min():.3g}, {fin.max():.3g}]{sub}"
                             + (f" ({vals.size - fin.size} nan)" if fin.size < vals.size else ""))
        lines.append(f"{arm} (seeds {sorted(r.seed for r in group)}): " + "; ".join(parts))
    return "\n".join(lines)
