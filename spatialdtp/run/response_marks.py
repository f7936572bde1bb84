"""What a plot of a run's tumour burden is marked with: the progression threshold, the time
to progression, the nadir, the adaptive-therapy thresholds, and the plasma levels below.

One drawing for the run summary PNG (:mod:`.summary_plot`) and the viewer's population
widget, so that both show the same end points computed the same way
(:func:`spatialdtp.run.summary.summarize`). Functions take matplotlib axes and import
nothing from matplotlib; each artist carries a ``gid`` naming what it marks, so that tests
and exports can find it.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..units import MINUTES_PER_DAY


class AdaptiveThresholds(NamedTuple):
    drug: str
    baseline: float       # cells: the burden when the drug started
    stop: float           # cells: off below stop_fraction · baseline
    resume: float         # cells: back on at resume_fraction · baseline


def adaptive_thresholds(cfg, times_min, burden) -> list[AdaptiveThresholds]:
    """The stop and resume burdens of every drug on an adaptive schedule. The baseline is
    the burden at the drug's start (lead-in + ``start_day``), as the schedule takes it:
    the first sample at or after it. A drug whose start the run did not reach has none."""
    t = np.asarray(times_min, dtype=np.float64)
    b = np.asarray(burden, dtype=np.float64)
    out = []
    for name, drug in cfg.treatment.drugs.items():
        s = drug.schedule
        if s.kind != "adaptive":
            continue
        start = (cfg.treatment.lead_in_days + s.start_day) * MINUTES_PER_DAY
        after = np.nonzero(t >= start - 1e-9)[0]
        if after.size == 0:
            continue
        base = float(b[after[0]])
        out.append(AdaptiveThresholds(name, base, s.stop_fraction * base,
                                      s.resume_fraction * base))
    return out


def mark_response(ax, summary: dict[str, float], adaptive=(), colours=None) -> None:
    """Mark a burden axis (x in days of the run, y in cells) with the progression threshold
    (dashed), the time to progression (dotted vertical), the nadir (triangle) and, for each
    :class:`AdaptiveThresholds`, its stop and resume burdens (dash-dot, in the drug's
    colour from ``colours``: drug -> colour). Every mark is labelled for the legend."""
    colours = colours or {}
    start = summary.get("treatment_start_day", 0.0)
    threshold = summary.get("progression_threshold", math.nan)
    if math.isfinite(threshold) and threshold > 0:
        ax.axhline(threshold, color="gray", ls="--", lw=1.0, label="progression threshold",
                   gid="progression-threshold")
    ttp = summary.get("time_to_progression_days", math.nan)
    if math.isfinite(ttp):
        ax.axvline(start + ttp, color="firebrick", ls=":", lw=1.5,
                   label=f"progression, {ttp:.3g} d after start", gid="progression")
    nadir, nadir_day = summary.get("nadir", math.nan), summary.get("nadir_day", math.nan)
    if math.isfinite(nadir) and nadir > 0 and math.isfinite(nadir_day):
        ax.plot([start + nadir_day], [nadir], "v", color="black", ms=8, gid="nadir",
                label=f"nadir, {summary.get('nadir_fraction', math.nan):.2g}× baseline")
    for a in adaptive:
        colour = colours.get(a.drug, "gray")
        for level, what in ((a.stop, "stop"), (a.resume, "resume")):
            if level > 0:
                ax.axhline(level, color=colour, ls="-.", lw=1.0, gid=f"adaptive-{what}-{a.drug}",
                           label=f"{a.drug} adaptive {what}, {level / a.baseline:.2g}× its baseline")


def plot_plasma(ax, days, obs, drugs, colours, marker=None) -> bool:
    """Each drug's plasma level (µM) against days (gid ``plasma-<drug>``); whether any
    was drawn (otherwise the axis says "no drugs")."""
    drawn = False
    for drug in drugs:
        if f"plasma_{drug}" in obs:
            ax.plot(days, np.asarray(obs[f"plasma_{drug}"], dtype=np.float64),
                    color=colours[drug], label=drug, marker=marker, gid=f"plasma-{drug}")
            drawn = True
    if drawn:
        ax.legend(fontsize="small", loc="best")
    else:
        ax.text(0.5, 0.5, "no drugs", transform=ax.transAxes, ha="center", va="center",
                color="gray")
    ax.set_ylabel("plasma (µM)")
    return drawn


def run_settings(cfg, shape, dx: float) -> str:
    """The settings that tell runs apart: tissue, treatment, seed and grid."""
    return (f"tissue={cfg.tissue.name}  treatment={cfg.treatment.name}  seed={cfg.seed}  "
            f"grid={'×'.join(map(str, shape))} at {dx:g} µm")
