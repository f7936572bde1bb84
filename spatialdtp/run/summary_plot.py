"""A one-page picture of a run: tumour populations, treatment and plasma levels over time,
and where the persisters, niches and vessels are at treatment start, nadir and end.

Matplotlib is imported only when a plot is drawn, and only its object-oriented API with
the Agg canvas is used, so plotting works on a headless node and never touches pyplot's
global state (or the backend another program chose).
"""
from __future__ import annotations


import numpy as np

from ..units import MINUTES_PER_DAY
from .response_marks import adaptive_thresholds, mark_response, plot_plasma

POPULATION_STYLE = (("S", "tab:blue", "S (sensitive)"), ("P", "tab:orange", "P (persister)"),
                    ("R", "tab:red", "R (resistant)"), ("burden", "black", "burden S+P+R"))
DRUG_COLOURS = ("tab:green", "tab:purple", "tab:cyan", "tab:olive", "tab:pink", "tab:brown",
                "tab:gray")


def on_periods(days: np.ndarray, on: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) in days of each run of on-samples; a flag holds until the next sample."""
    flags = np.asarray(on, dtype=np.float64) > 0.5
    periods, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = days[i]
        if start is not None and (not f or i == len(flags) - 1):
            end = days[i] if not f else days[min(i + 1, len(days) - 1)]
            periods.append((float(start), float(end)))
            start = None
    return periods


def shade_sub_cell(ax) -> bool:
    """Shade a log axis of cell counts grey below one cell (gid "sub-cell"), where a count
    is a mean-field fraction of a cell; the limits stay. Whether a band was drawn."""
    if ax.get_yscale() != "log" or ax.get_ylim()[0] >= 1.0:
        return False
    lo, hi = ax.get_ylim()             # the band reaches below the axis; the limits stay
    ax.axhspan(lo * 1e-3, 1.0, color="gray", alpha=0.15, lw=0, zorder=0, gid="sub-cell")
    ax.set_ylim(lo, hi)
    return True


def _positive(a):
    """Log axes cannot show 0: draw those samples as gaps."""
    a = np.asarray(a, dtype=np.float64)
    return np.where(a > 0, a, np.nan)


def plot_summary(path, times_min, obs: dict[str, np.ndarray], summary: dict[str, float],
                 drugs=(), title: str = "", spatial=None, config=None):
    """Write a PNG: populations on a log axis with treatment shading, plasma levels, the
    niche contrast and (with ``spatial``, a :class:`.summary_maps.SpatialPanel`) maps.

    Top: S, P, R and burden (cells) against days, the progression threshold dashed, the
    time to progression (vertical line) and the nadir (marker) from ``summary``
    (:func:`spatialdtp.observables.summarize`), each drug's on-periods shaded in its own
    colour. Middle: plasma level of each drug (µM). Bottom: the niche contrast, when
    ``obs`` has one. ``title`` (which run: tissue, treatment, seed, grid, backend) heads
    the figure. Below one cell the counts are shaded "< 1 cell": a population there is a
    mean-field fraction of a cell, not a cell that is present. Bottom row (``spatial``):
    persisters per voxel (log colour), niche voxels, the tumour's outline and the vessels
    at each snapshot. With ``config`` (the run's :class:`~spatialdtp.config.SpatialDTPConfig`)
    the stop and resume burdens of adaptive schedules are drawn too. The marks are those
    of :mod:`.response_marks`, which the viewer draws as well. Returns the figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    days = np.asarray(times_min, dtype=np.float64).ravel() / MINUTES_PER_DAY
    drugs = tuple(drugs)
    has_niche = "niche_contrast" in obs
    n_panels = 3 if has_niche else 2
    height = 8.5 if has_niche else 7.0
    maps_height = 3.6 if spatial is not None and spatial.snapshots else 0.0
    fig = Figure(figsize=(10.0, height + maps_height), layout="constrained")
    FigureCanvasAgg(fig)
    series_fig, maps_fig = (fig.subfigures(2, 1, height_ratios=[height, maps_height])
                            if maps_height else (fig, None))
    axes = series_fig.subplots(n_panels, 1, sharex=True,
                               gridspec_kw={"height_ratios": [3, 1.4, 1][:n_panels]})
    top, plasma = axes[0], axes[1]
    marker = "o" if days.size == 1 else None

    # --- populations
    for key, colour, label in POPULATION_STYLE:
        if key in obs:
            top.plot(days, _positive(obs[key]), color=colour, label=label, marker=marker,
                     lw=2.0 if key == "burden" else 1.4)
    start = summary.get("treatment_start_day", 0.0)
    drug_colours = dict(zip(drugs, _cycle(DRUG_COLOURS, len(drugs))))
    burden = obs["burden"] if "burden" in obs else sum(
        np.asarray(obs[k], dtype=np.float64) for k in ("S", "P", "R") if k in obs)
    adaptive = adaptive_thresholds(config, times_min, burden) if config is not None else ()
    mark_response(top, summary, adaptive, drug_colours)
    populations = [np.asarray(obs[k], dtype=np.float64) for k, _, _ in POPULATION_STYLE if k in obs]
    if any(np.any(p > 0) for p in populations):
        top.set_yscale("log")
    handles, labels = top.get_legend_handles_labels()
    for drug, colour in zip(drugs, _cycle(DRUG_COLOURS, len(drugs))):
        if f"on_{drug}" not in obs:
            continue
        periods = on_periods(days, obs[f"on_{drug}"])
        for a, b in periods:
            for ax in axes:
                ax.axvspan(a, b, color=colour, alpha=0.15, lw=0)
        if periods:                    # a run inside its lead-in has none to name
            handles.append(Patch(color=colour, alpha=0.3))
            labels.append(f"{drug} on")
    if shade_sub_cell(top):
        handles.append(Patch(color="gray", alpha=0.3))
        labels.append("< 1 cell (sub-cell)")
    # beside the axes, so that it never covers the progression line or the curves
    top.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    top.set_ylabel("cells")
    panel_title = "Tumour populations"
    if not drugs:
        panel_title += " (untreated)"
    elif days.size and start > days[-1]:
        panel_title += f" (treatment starts on day {start:g}, after the end of this run)"
    top.set_title(panel_title)

    # --- plasma
    plot_plasma(plasma, days, obs, drugs, drug_colours, marker=marker)
    plasma.set_title("Plasma drug levels")

    # --- niche contrast
    if has_niche:
        ax = axes[2]
        ni = np.asarray(obs["niche_contrast"], dtype=np.float64)
        if np.any(np.isfinite(ni)):
            ax.plot(days, ni, color="tab:brown", marker=marker)
            ax.axhline(1.0, color="gray", ls="--", lw=0.8)
        else:
            ax.text(0.5, 0.5, "niche contrast undefined (no niche, no near or far tumour)",
                    transform=ax.transAxes, ha="center", va="center", color="gray")
        ax.set_ylabel("P/T0 near ÷ far")
        ax.set_title("Persister enrichment near CAF/TAM niches (edge-stratified)")
    axes[-1].set_xlabel("time (days)")
    if maps_fig is not None:
        _maps(maps_fig, spatial)
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.savefig(path, dpi=110, format="png")
    return fig


def _maps(fig, panel):
    """One image per snapshot: P per voxel on a shared log colour scale (four decades below
    the highest; less is drawn as none), niche voxels and the tumour bed at treatment start
    outlined (the same bed in every image, so shrinkage shows against it), vessels."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    shots = panel.snapshots
    axes = np.atleast_1d(fig.subplots(1, len(shots)))
    top = max(float(np.max(s.P)) for s in shots)
    norm = LogNorm(vmin=top * 1e-4, vmax=top) if top > 0 else None
    cmap = (ListedColormap(["black"]) if norm is None
            else colormaps["magma"].with_extremes(bad="black"))
    extent = None
    for ax, shot in zip(axes, shots):
        ny, nx = shot.P.shape
        extent = (0.0, nx * panel.dx / 1000.0, ny * panel.dx / 1000.0, 0.0)   # mm
        shown = np.ma.masked_less(shot.P, top * 1e-4) if norm is not None else shot.P
        image = ax.imshow(shown, norm=norm, cmap=cmap, extent=extent, interpolation="nearest")
        ax.set_facecolor("black")
        vessels = np.ma.masked_where(~panel.vessels, panel.vessels.astype(float))
        ax.imshow(vessels, cmap=ListedColormap(["deepskyblue"]), extent=extent,
                  interpolation="nearest", vmin=0, vmax=1)
        for mask, colour, style in ((shot.niche, "lime", "solid"),
                                    (panel.bed, "white", "dashed")):
            if mask.any() and not mask.all():
                ax.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=0.8,
                           linestyles=style, extent=(extent[0], extent[1], extent[3], extent[2]),
                           origin="upper")
        ax.set_title(f"{shot.label}, day {shot.day:.3g}", fontsize="small")
        ax.set_xlabel("x (mm)", fontsize="small")
        ax.tick_params(labelsize="x-small")
    axes[0].set_ylabel("y (mm)", fontsize="small")
    if norm is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.9, pad=0.01).set_label(
            "P (cells/voxel)", fontsize="small")
    handles = [Line2D([], [], color="lime", lw=1.0), Line2D([], [], color="white", lw=1.0,
               ls="--"), Patch(color="deepskyblue")]
    fig.legend(handles, ["CAF/TAM niche voxels", f"tumour at {shots[0].label.split(' = ')[0]}",
                         "vessels"],
               loc="outside lower center", ncols=3, fontsize="small", facecolor="0.85")
    fig.suptitle("Persisters, niches and vessels" + (f" ({panel.plane})" if panel.plane else ""),
                 fontsize="small")


def _cycle(colours, n):
    return [colours[i % len(colours)] for i in range(n)]
