"""Comparison plots of a sweep: burden curves per group, time to progression, an
optimisation's history.

Like :mod:`spatialdtp.plotting`, only Matplotlib's object-oriented API with the Agg canvas
is used (headless nodes; pyplot's global state untouched). Groups are the values of the
``by`` keys (the treatment by default); runs that failed, never started or have no
results are left out of the curves and counted in a note on the figure.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .sweeps import Sweep, groups, kaplan_meier, progression_times

GROUP_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
                 "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
CURVE_PANELS = (("burden", "burden S+P+R"), ("P", "persisters P"), ("R", "resistant R"))
GRID_POINTS = 400


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colours(n: int) -> list:
    """``n`` distinct colours: tab10 up to 10 groups, tab20 up to 20, beyond that evenly
    spaced along turbo (never a colour used twice, which would merge two groups)."""
    if n <= len(GROUP_COLOURS):
        return list(GROUP_COLOURS[:n])
    from matplotlib import colormaps

    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](x) for x in np.linspace(0.0, 1.0, n)]


def _left_out(sweep: Sweep) -> str:
    """A note naming what the plot does not show, so nothing is dropped silently."""
    counts = {}
    for job in sweep.jobs:
        if job.status in ("failed", "pending", "started") or not job.summary:
            counts[job.status] = counts.get(job.status, 0) + 1
    if not counts:
        return ""
    return "not shown: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + \
        " (see spatialdtp-summarize's list)"


def band(curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray):
    """Median, 25th and 75th percentile over runs of ``y(x)`` on ``grid``, each run
    interpolated linearly inside its own time span (NaN outside it), and the number of
    runs at each grid point."""
    stack = np.full((len(curves), grid.size), np.nan)
    for k, (x, y) in enumerate(curves):
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if x.size == 0:
            continue
        inside = (grid >= x[0]) & (grid <= x[-1])
        stack[k, inside] = np.interp(grid[inside], x, y)
    count = np.sum(np.isfinite(stack), axis=0)
    med = np.full(grid.size, np.nan)
    q25, q75 = med.copy(), med.copy()
    has = count > 0
    if has.any():
        med[has] = np.nanmedian(stack[:, has], axis=0)
        q25[has], q75[has] = np.nanpercentile(stack[:, has], [25, 75], axis=0)
    return med, q25, q75, count


def plot_burden_curves(sweep: Sweep, by: Sequence[str], path) -> None:
    """Burden, P and R relative to each run's baseline burden, against days since treatment
    start: per group the median over runs (line) and the interquartile range (band), on a
    log axis; the progression threshold dashed."""
    grouped = groups(sweep, by)
    fig = _figure((8.0, 9.0))
    axes = fig.subplots(len(CURVE_PANELS), 1, sharex=True)
    spans = [job.curves["days"] for jobs in grouped.values() for job in jobs
             if job.curves is not None and job.curves["days"].size]
    if spans:
        lo = min(float(d[0]) for d in spans)
        hi = max(float(d[-1]) for d in spans)
        grid = np.linspace(lo, hi, GRID_POINTS) if hi > lo else np.array([lo])
    else:
        grid = np.zeros(1)
    factors = set()
    for colour, (label, jobs) in zip(_colours(len(grouped)), grouped.items()):
        for ax, (name, _) in zip(axes, CURVE_PANELS):
            curves = []
            for job in jobs:
                c = job.curves
                if c is None or name not in c or not (c["baseline"] > 0):
                    continue
                curves.append((c["days"], np.asarray(c[name], dtype=np.float64) / c["baseline"]))
            if not curves:
                continue
            med, q25, q75, count = band(curves, grid)
            positive = np.where(med > 0, med, np.nan)
            ax.plot(grid, positive, color=colour, lw=1.8,
                    label=f"{label} (n={len(curves)})" if name == "burden" else None)
            if len(curves) > 1:
                ax.fill_between(grid, np.where(q25 > 0, q25, np.nan),
                                np.where(q75 > 0, q75, np.nan), color=colour, alpha=0.2,
                                lw=0)
        for job in jobs:
            threshold = job.summary.get("progression_threshold")
            baseline = job.summary.get("baseline_burden")
            if threshold and baseline:
                factors.add(round(threshold / baseline, 6))
    for ax, (name, title) in zip(axes, CURVE_PANELS):
        ax.set_yscale("log")
        ax.set_ylabel(f"{name} / baseline burden")
        ax.set_title(title, fontsize="medium", loc="left")
        ax.grid(True, which="major", alpha=0.3)
    for factor in sorted(factors):
        axes[0].axhline(factor, color="black", ls="--", lw=0.8,
                        label=f"progression ({factor:g} × baseline)")
    axes[-1].set_xlabel("days since treatment start")
    if grouped:
        axes[0].legend(fontsize="small", loc="best")
    else:
        axes[0].text(0.5, 0.5, "no run has results yet", transform=axes[0].transAxes,
                     ha="center", va="center")
    by_text = ", ".join(by)
    fig.suptitle(f"{sweep.dir.name}: median and interquartile range over runs, by {by_text}",
                 fontsize="medium")
    note = _left_out(sweep)
    if note:
        fig.text(0.01, 0.002, note, fontsize="small", color="tab:red", va="bottom")
    fig.savefig(path, dpi=110)


def plot_progression(sweep: Sweep, by: Sequence[str], path) -> None:
    """Left: each run's time to progression per group (filled), or the days it was followed
    without progressing (open triangle: censored). Right: Kaplan–Meier fraction of runs not
    yet progressed against days since treatment start."""
    grouped = groups(sweep, by)
    fig = _figure((11.0, 4.8))
    strip, km = fig.subplots(1, 2, width_ratios=[1.0, 1.2])
    rng = np.random.default_rng(0)   # fixed jitter: the same sweep draws the same picture
    for i, (colour, (label, jobs)) in enumerate(zip(_colours(len(grouped)), grouped.items())):
        times, events = progression_times(jobs)
        x = i + rng.uniform(-0.15, 0.15, size=times.size)
        strip.scatter(x[events], times[events], color=colour, s=28, zorder=3)
        strip.scatter(x[~events], times[~events], facecolors="none", edgecolors=colour,
                      marker="^", s=36, zorder=3)
        xs, ys = kaplan_meier(times, events)
        km.step(xs, ys, where="post", color=colour, lw=1.8,
                label=f"{label}: {int(events.sum())}/{times.size} progressed")
        cens = ~events & np.isfinite(times)
        if cens.any():
            km.plot(times[cens], np.interp(times[cens], xs, ys), "|", color=colour, ms=10)
    labels = list(grouped)
    strip.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 3 else 0,
                     ha="right" if len(labels) > 3 else "center")
    longest = max((float(np.nanmax(progression_times(jobs)[0])) for jobs in grouped.values()),
                  default=1.0)
    strip.set_ylim(0, 1.08 * longest if longest > 0 else 1.0)   # room for the top markers
    strip.set_ylabel("days since treatment start")
    strip.set_title("time to progression (● progressed, △ not by then)", fontsize="medium",
                    loc="left")
    strip.grid(True, axis="y", alpha=0.3)
    km.set_ylim(-0.03, 1.03)
    km.set_xlabel("days since treatment start")
    km.set_ylabel("fraction not progressed")
    km.set_title("Kaplan–Meier (| censored)", fontsize="medium", loc="left")
    km.grid(True, alpha=0.3)
    if grouped:
        km.legend(fontsize="small", loc="best")
    fig.suptitle(f"{sweep.dir.name}: time to progression by {', '.join(by)}", fontsize="medium")
    note = _left_out(sweep)
    if note:
        fig.text(0.01, 0.002, note, fontsize="small", color="tab:red", va="bottom")
    fig.savefig(path, dpi=110)


def plot_optimization(history, params: Sequence[str], direction: str, path,
                      title: str = "") -> None:
    """Top: the objective of each trial (failed trials marked at the bottom) and the best so
    far. Below: the objective against each searched parameter, the best trial ringed.
    ``history``: :func:`spatialdtp.optimization.study_history`'s table."""
    n = max(1, len(params))
    cols = min(n, 3)
    rows = 1 + math.ceil(n / cols)
    fig = _figure((4.0 * cols + 1.0, 3.4 * rows))
    grid = fig.add_gridspec(rows, cols)
    top = fig.add_subplot(grid[0, :])
    done = history[history["objective"].notna()]
    trial, value = done["trial"].to_numpy(dtype=float), done["objective"].to_numpy(dtype=float)
    over = done["over_cap"].to_numpy(dtype=bool) if "over_cap" in done else \
        np.zeros(value.size, bool)
    top.scatter(trial[~over], value[~over], color="tab:blue", s=24, label="trial", zorder=3)
    if over.any():
        top.scatter(trial[over], value[over], color="tab:gray", marker="s", s=24,
                    label="over dose cap (penalty)", zorder=3)
    if value.size:
        best = np.maximum.accumulate(value) if direction == "maximize" else \
            np.minimum.accumulate(value)
        top.step(trial, best, where="post", color="black", lw=1.5, label="best so far")
    failed = history[history["objective"].isna()]
    if len(failed):
        floor = float(np.nanmin(value)) if value.size else 0.0
        top.scatter(failed["trial"].to_numpy(dtype=float), np.full(len(failed), floor),
                    marker="x", color="tab:red", label="failed / no result", zorder=3)
    top.set_xlabel("trial")
    from matplotlib.ticker import MaxNLocator

    top.xaxis.set_major_locator(MaxNLocator(integer=True))     # trials are whole numbers
    top.set_ylabel("objective")
    top.set_title(f"{title} ({direction})".strip(), fontsize="medium", loc="left")
    top.grid(True, alpha=0.3)
    top.legend(fontsize="small", loc="best")
    best_row = None
    if value.size:
        k = int(np.argmax(value) if direction == "maximize" else np.argmin(value))
        best_row = done.iloc[k]
    for i, name in enumerate(params):
        ax = fig.add_subplot(grid[1 + i // cols, i % cols])
        if name in done:
            x = done[name].to_numpy(dtype=float)
            ax.scatter(x[~over], value[~over], color="tab:blue", s=20)
            if over.any():
                ax.scatter(x[over], value[over], color="tab:gray", marker="s", s=20,
                           label="over dose cap")
                ax.legend(fontsize="x-small", loc="best")
            if best_row is not None:
                ax.scatter([float(best_row[name])], [float(best_row["objective"])], s=140,
                           facecolors="none", edgecolors="black", lw=1.5)
        ax.set_xlabel(".".join(name.split(".")[-2:]), fontsize="small")
        ax.set_ylabel("objective")
        ax.grid(True, alpha=0.3)
    fig.savefig(path, dpi=110)


def plot_sensitivity(sweep: Sweep, frame, metric: str, path) -> list[str]:
    """``metric`` (a summary key, e.g. ``final_niche_contrast``) against every numeric
    override key the sweep varies (``seed`` aside): one panel per key, each complete run a
    dot, the median over runs at each value a line (so in a product sweep each panel is
    the key's effect with the others pooled). Returns the keys drawn."""
    from .sweeps import parse_overrides

    keys: list[str] = []
    for job in sweep.jobs:
        for k in parse_overrides(job.overrides):
            if k not in keys and k != "seed":
                keys.append(k)
    done = frame[frame["status"] == "complete"]
    if metric not in frame.columns:
        raise ValueError(f"metric={metric!r}: not a column of the sweep's table; summary "
                         f"keys include {[c for c in frame.columns if c.startswith('final_')]}")

    def numeric(k):
        vals = [v for v in done[k] if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return len(vals) == len(done) and len(set(vals)) >= 2
    keys = [k for k in keys if k in done.columns and numeric(k)]
    if not keys:
        raise ValueError("the sweep varies no numeric override key to plot against")
    fig = _figure((3.6 * len(keys), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(keys), sharey=True))
    y = done[metric].to_numpy(dtype=float)
    for ax, k in zip(axes, keys):
        x = done[k].to_numpy(dtype=float)
        ax.scatter(x, y, s=14, color="tab:blue", alpha=0.5, zorder=3)
        xs = np.unique(x)
        with np.errstate(invalid="ignore"):
            med = [np.nanmedian(y[x == v]) if np.isfinite(y[x == v]).any() else np.nan
                   for v in xs]
        ax.plot(xs, med, "o-", color="tab:red", lw=1.6, label="median")
        if xs.min() > 0 and xs.max() / xs.min() >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(k)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].legend(fontsize=7)
    note = _left_out(sweep)
    fig.suptitle(f"{metric}: {len(done)} complete runs" + (f" ({note})" if note else ""),
                 fontsize=9)
    fig.savefig(path, dpi=110)
    return keys
