"""One figure per experiment (``experiment.png``), from its arm runs."""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ...run.summary_plot import shade_sub_cell
from .arms import EXPERIMENTS, ArmRun
from .readouts import (
    by_arm,
    near_far,
    niche_profile_of,
    paired_near_far_ratio,
    paired_profile_ratio,
    schedule_windows,
    value_at,
)

COLOURS = ("black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
           "tab:brown", "tab:pink")


def short(arm: str, experiment: str = "") -> str:
    """Axis label of an arm: a combination preset "targeted_kdm5i" reads "+ kdm5i"; where
    the targeted drug alone is compared with partners (combinations, niche) its preset
    "continuous" reads "targeted"."""
    if experiment in ("combinations", "niche"):
        arm = arm.replace("continuous", "targeted")
    return "\n".join(p.replace("targeted_", "+ ") for p in arm.split(" + "))


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _positive(a):
    a = np.asarray(a, dtype=float)
    return np.where(a > 0, a, np.nan)


def _curves(ax, groups: dict[str, list[ArmRun]], quantity, ylabel: str, log: bool = True,
            label=short, cells: bool = False):
    """Each arm's seeds as thin lines and their geometric (log) or arithmetic mean bold;
    a count of ``cells`` is shaded grey below one cell ("< 1 cell")."""
    for k, (arm, runs) in enumerate(groups.items()):
        colour = COLOURS[k % len(COLOURS)]
        n = min(len(r.days) for r in runs)
        ys = np.array([quantity(r)[:n] for r in runs], dtype=float)
        for y, r in zip(ys, runs):
            ax.plot(r.days[:n], _positive(y) if log else y, color=colour, lw=0.6, alpha=0.35)
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN columns (a 0 on a log axis)
            centre = np.exp(np.nanmean(np.log(_positive(ys)), axis=0)) if log else ys.mean(axis=0)
        ax.plot(runs[0].days[:n], centre, color=colour, lw=1.8,
                label=f"{label(arm)} (n={len(runs)})".replace("\n", " "))
    if log:
        ax.set_yscale("log")
    if cells and shade_sub_cell(ax):
        ax.text(0.99, 0.01, "< 1 cell", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7, color="dimgray")
    ax.set_xlabel("days since treatment start")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


def _shade_windows(ax, run: ArmRun, colour="tab:green"):
    for a, b in schedule_windows(run):
        ax.axvspan(a, b, color=colour, alpha=0.08, lw=0)


def _points(ax, groups: dict[str, list[ArmRun]], value, ylabel: str, log: bool = True,
            label=short):
    """One column per arm: each seed a dot, the mean a bar outline."""
    names = list(groups)
    for k, arm in enumerate(names):
        vals = np.array([value(r) for r in groups[arm]], dtype=float)
        colour = COLOURS[k % len(COLOURS)]
        ax.scatter(np.full(vals.size, k) + np.linspace(-0.12, 0.12, vals.size), vals,
                   color=colour, s=18, zorder=3)
        fin = vals[np.isfinite(vals) & ((vals > 0) if log else True)]
        if fin.size:
            centre = np.exp(np.log(fin).mean()) if log else fin.mean()
            ax.hlines(centre, k - 0.3, k + 0.3, color=colour, lw=2)
    ax.set_xticks(range(len(names)), [label(n) for n in names], fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", which="major", alpha=0.3)


def _removed_bars(ax, names, groups, ctrl, label, day):
    """Persisters removed by each partner against the targeted drug alone (paired by seed),
    near and far from niches, in % on a linear axis: a share runs from 0 to 100 % (below 0
    where a partner leaves more). Each bar carries its value, so a small cut (0.6 %) reads
    as clearly as a full one; the legend sits below the axes, clear of the bars."""
    width = 0.38
    zones = ("within niche_distance of a niche", "beyond niche_far_distance")
    low = 0.0
    for j, zone in enumerate(zones):
        cut = [[100.0 * (1.0 - paired_near_far_ratio(r, ctrl[r.seed])[j])
                for r in groups[a] if r.seed in ctrl] for a in names]
        heights = [np.nanmean(c) if np.isfinite(c).any() else np.nan for c in cut]
        xs = np.arange(len(names)) + (j - 0.5) * width
        ax.bar(xs, heights, width, label=zone, color=("tab:red", "tab:grey")[j])
        for x, h in zip(xs, heights):
            ax.text(x, (h if np.isfinite(h) else 0.0) + 1.5, f"{h:.2g}" if np.isfinite(h)
                    else "n/a", ha="center", va="bottom", fontsize=6)
            low = min(low, h) if np.isfinite(h) else low
    ax.set_xticks(range(len(names)), [label(n) for n in names])
    ax.set_ylim(low - 5.0 if low < 0 else 0.0, 112.0)
    ax.set_ylabel(f"persisters removed vs targeted alone,\nday {day:g} (%)")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.legend(fontsize=7, title="tumour voxels", title_fontsize=7, loc="upper center",
              bbox_to_anchor=(0.5, -0.16), ncols=1)
    ax.grid(True, axis="y", alpha=0.3)


def plot_experiment(experiment: str, runs: Sequence[ArmRun], png) -> Path:
    """Write the experiment's figure (PNG) from its runs (any number of seeds per arm)."""
    png = Path(png)
    experiment_figure(experiment, runs).savefig(png, dpi=110)
    return png


def experiment_figure(experiment: str, runs: Sequence[ArmRun]):
    """The experiment's figure (a Matplotlib Figure, not yet written)."""
    groups = by_arm(runs)
    if not groups:
        raise ValueError("runs=[]: nothing to plot")
    title = {"schedules": "Dosing schedules", "combinations": "Combinations with the targeted drug",
             "niche": "The CAF/TAM niche", "persister_origin":
             "Pre-existing vs drug-induced persisters through a drug holiday"}[experiment]
    first = next(iter(groups.values()))[0]

    def lab(arm):
        return short(arm, experiment)

    if experiment == "schedules":
        fig = _figure((13, 3.8))
        axes = fig.subplots(1, 4)
        _curves(axes[0], groups, lambda r: r.observables["burden"] / r.baseline,
                "burden / baseline", label=lab)
        axes[0].axhline(1.2, color="grey", ls="--", lw=0.8)
        for ax in axes[:3]:
            ax.axvline(0.0, color="grey", ls=":", lw=0.8)      # treatment start
        _curves(axes[1], groups, lambda r: r.observables["P"], "persisters P (cells)",
                label=lab, cells=True)
        _curves(axes[2], groups, lambda r: r.observables["R"], "resistant R (cells)",
                label=lab, cells=True)
        _points(axes[3], groups, lambda r: r.summary.get("time_to_progression_days", math.nan),
                "time to progression (days)", log=False, label=lab)
        end = float(first.days[-1])
        axes[3].axhline(end, color="grey", ls=":", lw=0.8)
        axes[3].text(0.02, end, "end of run (never progressed: not drawn)", fontsize=7,
                     va="bottom", transform=axes[3].get_yaxis_transform())
        axes[0].legend(fontsize=7)
    elif experiment == "combinations":
        fig = _figure((13, 3.8))
        axes = fig.subplots(1, 3)
        _curves(axes[0], groups, lambda r: r.observables["P"], "persisters P (cells)",
                label=lab, cells=True)
        _points(axes[1], groups, lambda r: value_at(r, "P", r.days[-1]) / r.baseline,
                f"P / baseline burden at day {first.days[-1]:g}", label=lab)
        control = groups.get("continuous")
        if control:
            ctrl = {r.seed: r for r in control}
            names = [a for a in groups if a != "continuous"]
            _removed_bars(axes[2], names, groups, ctrl, lab, first.days[-1])
        axes[0].legend(fontsize=7)
    elif experiment == "niche":
        fig = _figure((20, 3.8))
        axes = fig.subplots(1, 5)
        _curves(axes[0], groups, lambda r: r.observables["P"] / r.baseline,
                "P / baseline burden", label=lab)
        _points(axes[1], groups, lambda r: value_at(r, "P", r.days[-1]) / r.baseline,
                f"P / baseline burden at day {first.days[-1]:g}", label=lab)
        with_niche = {a: rs for a, rs in groups.items()
                      if any(np.isfinite(r.observables["niche_contrast"]).any() for r in rs)}
        _curves(axes[2], with_niche, lambda r: r.observables["niche_contrast"],
                "niche contrast (P/T0 near ÷ far,\nedge-stratified)", log=False, label=lab)
        axes[2].axhline(1.0, color="black", lw=0.8)
        edges = np.array([0.0, 20.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0])
        centres = 0.5 * (edges[1:] + edges[:-1])
        for k, (arm, rs) in enumerate(groups.items()):
            colour, label = COLOURS[k % len(COLOURS)], lab(arm).replace("\n", " ")
            profiles = np.array([niche_profile_of(r, edges) for r in rs])
            if np.isfinite(profiles).any():
                with np.errstate(invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)    # all-NaN bins
                    axes[3].plot(centres, 1e3 * np.nanmean(profiles, axis=0), "o-",
                                 color=colour, label=label)
            else:   # no niche: the whole tumour bed's rate, for reference
                axes[3].axhline(1e3 * np.mean([near_far(r)[1] for r in rs]), color=colour,
                                ls="--", lw=1.2, label=f"{label} (no niche: bed)")
        axes[3].set_ylabel(f"P per 1000 initial tumour cells, day {first.days[-1]:g}")
        control, treated = groups.get("section + continuous"), groups.get("section + targeted_meti")
        if control and treated:
            ctrl = {r.seed: r for r in control}
            ratios = np.array([paired_profile_ratio(r, ctrl[r.seed], edges) for r in treated
                               if r.seed in ctrl])
            for ratio in ratios:
                axes[4].plot(centres, ratio, color="tab:blue", lw=0.6, alpha=0.4)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)    # all-NaN bins
                axes[4].plot(centres, np.nanmean(ratios, axis=0), "o-", color="tab:blue",
                             label="section: P with / without MET inhibitor")
            axes[4].axhline(1.0, color="black", lw=0.8)
            axes[4].set_ylabel(f"P ratio at day {first.days[-1]:g}, voxel by voxel")
            axes[4].legend(fontsize=7)
        for ax in axes[3:]:
            ax.axvspan(0.0, first.geometry.near, color="tab:red", alpha=0.07, lw=0)
            ax.axvspan(first.geometry.far, edges[-1], color="tab:grey", alpha=0.07, lw=0)
            ax.set_xlabel("distance to the nearest CAF/TAM niche voxel (µm)")
            ax.grid(True, alpha=0.3)
        axes[3].legend(fontsize=7)
        axes[2].legend(fontsize=7)
        axes[0].legend(fontsize=7)
    elif experiment == "persister_origin":
        fig = _figure((13, 3.8))
        axes = fig.subplots(1, 3)
        _curves(axes[0], groups, lambda r: r.observables["P"], "persisters P (cells)",
                label=lab, cells=True)
        _curves(axes[1], groups, lambda r: r.observables["S"], "sensitive S (cells)",
                label=lab, cells=True)
        _curves(axes[2], groups, lambda r: r.observables["P"] / (r.observables["S"]
                                                                  + r.observables["P"]),
                "P / (S + P)", label=lab)
        for ax in axes:
            _shade_windows(ax, first)
        axes[0].legend(fontsize=7)
    else:
        raise ValueError(f"experiment={experiment!r}: known experiments are {list(EXPERIMENTS)}")
    fig.suptitle(f"{title} — {len(runs)} runs; seeds {sorted({r.seed for r in runs})}",
                 fontsize=10)
    return fig
