"""Dock widgets that plot a run against time and follow napari's time slider (Qt).

- :class:`PopulationWidget` (*Population dynamics*): S, P, R and tumour burden (cells, log
  scale) against days, each drug's on-periods shaded, the end points of the run summary
  (progression threshold, time to progression, nadir, adaptive stop/resume burdens) and,
  below, the plasma levels; a marker at the frame shown.
- :class:`NicheWidget` (*Niche analysis*): at the frame shown, persisters per initial
  tumour cell against distance to the nearest CAF/TAM niche, and against distance to the
  tumour edge for the bed voxels near and far from niches (the comparison the niche
  contrast pools, :mod:`spatialdtp.run.niche`); below, the run's niche contrast and its
  voxel counts over time.

Both find the run among the viewer's layers (the last run added; layers made by
:func:`spatialdtp.viewer.layers.layer_data` carry it in their metadata). Moving the time
slider moves the markers; clicking a time plot moves the slider to the frame nearest the
click. Live runs call :meth:`RunPlot.update_data` as new data arrive.

Cost of a slider step: the markers are animated artists, drawn onto a copy of the
figure taken after its last full draw (blitting), so a step redraws two lines and no axes,
text or layout, and Qt paints that part of the canvas with the window's next paint. The layout is computed by matplotlib's constrained layout on the first draw (and
after a resize or new data) and then frozen, so the niche profiles, redrawn when the slider
rests, are not laid out again. Each widget has matplotlib's navigation toolbar (zoom, pan,
save) and a CSV button that writes the plotted curves.
"""
from __future__ import annotations

import csv
import math
import time

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QSizePolicy, QVBoxLayout, QWidget

from ..run import niche
from ..run.observables import NICHE_NAMES
from ..run.response_marks import adaptive_thresholds, mark_response, plot_plasma
from ..run.simulation import treatment_start_minutes
from ..run.summary import summarize
from ..run.summary_plot import POPULATION_STYLE, _positive, on_periods
from . import palette
from .layers import MINUTES_PER_DAY, TimeAxis, source_of
from .runlabel import run_label

MARKER = dict(color="0.2", lw=1.2, ls="-", zorder=5)
MARKER_GID = "time-marker"


class RunPlot(QWidget):
    """A matplotlib figure tied to the run shown in a napari viewer (base class)."""

    title = "run"
    FIGSIZE = (4.4, 3.8)
    #: at most one full draw per this many seconds for new data or a new profile: a live
    #: run sends frames faster than the figures draw (a few hundred ms each), and the
    #: window must keep handling events
    MIN_REDRAW_S = 1.0

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.figure = Figure(figsize=self.FIGSIZE, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumSize(300, 260)
        # Expanding, not Qt's Preferred: with Preferred the dock layout can leave the
        # canvas at its size hint (the figure's size) under a taller dock, a dead band
        # (it did from the second window on)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.toolbar = NavigationToolbar2QT(self.canvas, self, coordinates=False)
        export = self.toolbar.addAction("CSV")
        export.setToolTip("Save the plotted curves as a CSV file")
        export.triggered.connect(self._export_dialog)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas, stretch=1)
        self.source = None
        self.time: TimeAxis | None = None
        self._time_layer = None
        self._markers: list = []       # vertical lines at the frame shown (animated)
        self._time_axes: list = []     # axes whose x is time in days (clickable)
        self._curves: list = []        # (panel, name, x label, y label, Line2D) for CSV
        self.frame = None              # index of the frame the plots show
        # blitting state: the figure without its markers after the last full draw
        self._background = None
        self._stale = True             # a full draw is pending: the background is old
        self._layout_frozen = False
        self.full_draws = 0            # counters, for checks of what a slider step costs
        self.blits = 0
        self._last_draw = -math.inf    # time.monotonic() of the last full draw
        self._redraw_timer = QTimer()
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.timeout.connect(self._draw_later)
        self.canvas.mpl_connect("draw_event", self._drawn)
        self.canvas.mpl_connect("resize_event", self._resized)
        napari_viewer.layers.events.inserted.connect(self._layers_changed)
        napari_viewer.layers.events.removed.connect(self._layers_changed)
        napari_viewer.dims.events.current_step.connect(self._step_changed)
        self.canvas.mpl_connect("button_press_event", self._clicked)
        self._layers_changed()

    # -- the run and its time axis
    def _layers_changed(self, event=None):
        layers = [layer for layer in self.viewer.layers if source_of(layer) is not None]
        timed = [layer for layer in layers
                 if layer.ndim == source_of(layer).grid.ndim + 1]
        source = source_of(timed[-1]) if timed else None
        self._time_layer = timed[-1] if timed else None
        if source is not self.source:
            self.source = source
            self.refresh()

    @property
    def time_axis(self) -> int | None:
        """napari's dims axis of time for the run shown."""
        if self._time_layer is None:
            return None
        return self.viewer.dims.ndim - self._time_layer.ndim

    def current_frame(self) -> int:
        """Index of the frame the time slider shows."""
        axis = self.time_axis
        if axis is None or self.time is None:
            return 0
        return self.time.index(self.viewer.dims.point[axis])

    def show_frame(self, index: int):
        """Move napari's time slider to frame ``index``."""
        axis = self.time_axis
        if axis is not None and self.time is not None:
            self.viewer.dims.set_point(axis, self.time.world(int(index)))

    def _clicked(self, event):
        if self.toolbar.mode:          # zooming or panning: the click is the toolbar's
            return
        if event.inaxes in self._time_axes and event.xdata is not None and self.time is not None:
            self.show_frame(self.time.nearest(event.xdata))

    def _step_changed(self, event=None):
        try:
            self.update_frame()
        except RuntimeError:  # the Qt widget is gone (window closed): stop following
            self._disconnect()

    def _disconnect(self):
        for emitter, callback in ((self.viewer.layers.events.inserted, self._layers_changed),
                                  (self.viewer.layers.events.removed, self._layers_changed),
                                  (self.viewer.dims.events.current_step, self._step_changed)):
            emitter.disconnect(callback)

    # -- drawing: full draws, frozen layout, blitted markers
    def _drawn(self, event):
        """After every full draw: keep the figure without its (animated) markers for
        blitting, draw the markers on top, and freeze the layout just computed."""
        saving = getattr(self.canvas, "_is_saving", False)   # savefig: not the screen
        if not saving:
            # this draw shows all a pending redraw() was waiting to show: drawing again
            # when its timer fires would redraw the whole figure for nothing (it did in
            # the middle of a slider sweep)
            self._redraw_timer.stop()
            self.full_draws += 1
            self._last_draw = time.monotonic()
            self._background = self.canvas.copy_from_bbox(self.figure.bbox)
            self._stale = False
        for line in self._markers:            # on the screen and in a saved figure
            line.axes.draw_artist(line)
        if saving:                            # the buffer may now hold the saved image
            self._background = None
            return
        if not self._layout_frozen and self.figure.get_layout_engine() is not None:
            self.figure.set_layout_engine("none")   # positions stay as just computed
            self._layout_frozen = True

    def _resized(self, event=None):
        self.relayout()

    def relayout(self):
        """Lay the figure out again on its next draw (after a resize or new axes)."""
        self.figure.set_layout_engine("constrained")
        self._layout_frozen = False
        self._stale = True
        self.canvas.draw_idle()               # at once: a resize must not wait

    def redraw(self):
        """Schedule a full draw (content changed), at most one per MIN_REDRAW_S; the
        markers wait for it."""
        self._stale = True
        wait = self._last_draw + self.MIN_REDRAW_S - time.monotonic()
        if wait <= 0:
            self.canvas.draw_idle()
        elif not self._redraw_timer.isActive():
            self._redraw_timer.start(int(1000 * wait) + 1)

    def _draw_later(self):
        try:
            self.canvas.draw_idle()
        except RuntimeError:                  # the widget is gone
            pass

    def _blit_markers(self):
        if self._stale:                       # a full draw is coming: it draws them
            return
        if self._background is None:
            self.redraw()
            return
        self.canvas.restore_region(self._background)
        for line in self._markers:
            line.axes.draw_artist(line)
        # Not canvas.blit(): it repaints at once (QWidget.repaint), which makes Qt paint
        # the window, napari's GL canvas included, inside the slider's callback and again
        # after it (a step cost 30 % more). update() asks for a paint of the part of the
        # buffer just changed, which Qt merges with the window's own paint.
        self.canvas.update(self._marker_rect())
        self.blits += 1

    def _marker_rect(self):
        """The part of the canvas (Qt's logical pixels, origin top left) that the markers'
        axes cover: all that a step changes."""
        from qtpy.QtCore import QRect

        boxes = [line.axes.bbox for line in self._markers]
        ratio = self.canvas.device_pixel_ratio
        x0 = min(b.x0 for b in boxes) / ratio
        x1 = max(b.x1 for b in boxes) / ratio
        y0 = min(b.y0 for b in boxes) / ratio
        y1 = max(b.y1 for b in boxes) / ratio
        top = self.canvas.height() - y1
        return QRect(int(x0) - 1, int(top) - 1, int(x1 - x0) + 3, int(y1 - y0) + 3)

    def update_data(self):
        """Take in data a live run added (cheaper than :meth:`refresh` where a subclass
        can update its lines in place)."""
        self.refresh()

    def refresh(self):
        """Redraw everything from the run (after new data, or another run)."""
        self.figure.clear()
        self._markers, self._time_axes, self._curves = [], [], []
        self.frame = None
        if self.source is None or len(self.source.times) == 0:
            self.time = None
            self.figure.text(0.5, 0.5, "open a spatialdtp run file", ha="center",
                             va="center", color="gray")
        else:
            self.time = TimeAxis.of(self.source)
            self.figure.suptitle(run_label(self.source), fontsize="x-small")
            self.draw()
            self.update_frame(redraw=False)
        self.relayout()

    def draw(self):
        """Draw the figure for ``self.source`` (subclasses)."""

    def update_frame(self, redraw: bool = True):
        """Follow the time slider: move the markers to the frame shown (blitted)."""
        if self.time is None:
            return
        self.frame = self.current_frame()
        day = float(self.time.days[self.frame])
        for line in self._markers:
            line.set_xdata([day, day])
        if redraw:
            self._blit_markers()

    def marker_day(self) -> float | None:
        """Day at which the markers stand (for checks)."""
        return float(self._markers[0].get_xdata()[0]) if self._markers else None

    def _time_plot(self, ax, xlabel: bool = True):
        self._time_axes.append(ax)
        self._markers.append(ax.axvline(0.0, animated=True, gid=MARKER_GID, **MARKER))
        self._span_frames(ax)
        if xlabel:
            ax.set_xlabel("time (days)")

    def _span_frames(self, ax):
        days = self.time.days
        if days.size > 1:  # every time plot spans the frames, whatever its data covers
            ax.set_xlim(days[0], days[-1])

    def _curve(self, panel: str, name: str, xlabel: str, ylabel: str, line):
        self._curves.append((panel, name, xlabel, ylabel, line))
        return line

    def _lines_updated(self):
        """After a subclass changed its lines' data: rescale, move the marker, redraw.
        The layout stays as last computed: constrained layout is half the cost of a draw,
        and a live run redraws often from the window's thread."""
        self.time = TimeAxis.of(self.source)
        for ax in self._time_axes:
            self._span_frames(ax)
            ax.relim()
            ax.autoscale_view(scalex=False)
        self.redraw()                  # first: the markers wait for this draw
        self.update_frame()            # (the niche profiles: when the slider rests)

    # -- export
    def curves(self):
        """The plotted curves as (panel, curve, x label, x, y label, y), x and y arrays."""
        for panel, name, xlabel, ylabel, line in self._curves:
            yield (panel, name, xlabel, np.asarray(line.get_xdata(), dtype=np.float64),
                   ylabel, np.asarray(line.get_ydata(), dtype=np.float64))

    def export_csv(self, path) -> int:
        """Write the plotted curves to ``path`` in long form, one row per point:
        ``panel, curve, x_name, x, y_name, y`` (empty y where a curve has a gap); the
        number of rows written."""
        rows = 0
        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["panel", "curve", "x_name", "x", "y_name", "y"])
            for panel, name, xlabel, x, ylabel, y in self.curves():
                for xi, yi in zip(x, y):
                    out.writerow([panel, name, xlabel, repr(float(xi)), ylabel,
                                  repr(float(yi)) if math.isfinite(yi) else ""])
                    rows += 1
        return rows

    def _export_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save the plotted curves",
                                              f"{self.title.lower().replace(' ', '_')}.csv",
                                              "CSV (*.csv)")
        if path:
            self.export_csv(path)


def _small(ax):
    """Dock widgets are small: labels and ticks a size down from matplotlib's default."""
    ax.xaxis.label.set_fontsize("x-small")
    ax.yaxis.label.set_fontsize("x-small")
    ax.tick_params(labelsize="x-small")


class PopulationWidget(RunPlot):
    """S, P, R and burden against days with drug on-periods shaded and the run's end points
    marked; plasma levels below; a marker at the frame shown."""

    title = "Population dynamics"
    FIGSIZE = (4.4, 4.2)

    def _drug_colours(self):
        return {d: palette.drug_colour(i) for i, d in enumerate(self.source.drugs)}

    def draw(self):
        obs = self.source.observables()
        days = np.asarray(obs["time"], dtype=np.float64) / MINUTES_PER_DAY
        ax, self._plasma_ax = self.figure.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        self._ax = ax
        marker = "o" if days.size == 1 else None
        self._lines = {}
        for key, _, label in POPULATION_STYLE:
            if key in obs:
                self._lines[key] = self._curve("tumour populations", key, "time (days)",
                                               "cells", ax.plot(
                    days, _positive(obs[key]), **palette.curve(palette.CELL_COLOURS[key]),
                    label=label,
                    marker=marker, lw=2.0 if key == "burden" else 1.4)[0])
        self._log_scale(obs)
        self._marks = []
        self._mark(obs)
        self._spans = []
        self._shade(obs, days)
        self._legend()
        ax.set_ylabel("cells")
        ax.set_title("tumour populations", fontsize="x-small")
        _small(ax)
        ax.tick_params(labelbottom=False)
        self._time_plot(ax, xlabel=False)
        colours = self._drug_colours()
        plot_plasma(self._plasma_ax, days, obs, self.source.drugs, colours, marker=marker)
        for line in self._plasma_ax.get_lines():
            if str(line.get_gid()).startswith("plasma-"):
                self._curve("plasma", line.get_label(), "time (days)", "µM", line)
        if self._plasma_ax.get_legend() is not None:   # smaller than the summary PNG's
            self._plasma_ax.legend(fontsize="x-small", loc="best")
        self._time_plot(self._plasma_ax)
        _small(self._plasma_ax)

    def _summary(self, obs):
        try:
            return summarize(obs["time"], obs, self.source.cfg.run,
                             treatment_start_minutes(self.source.cfg))
        except ValueError:   # no rows yet, or no burden: nothing to mark
            return {}

    def _mark(self, obs):
        """The end points of the run summary, drawn as the summary PNG draws them."""
        for artist in self._marks:
            artist.remove()
        before = set(self._ax.get_lines())
        summary = self._summary(obs)
        burden = obs.get("burden")
        adaptive = (adaptive_thresholds(self.source.cfg, obs["time"], burden)
                    if burden is not None and len(burden) else ())
        mark_response(self._ax, summary, adaptive, self._drug_colours())
        self._marks = [line for line in self._ax.get_lines() if line not in before]

    def _legend(self):
        handles, labels = self._ax.get_legend_handles_labels()
        for drug, colour in self._drug_colours().items():
            if any(span.get_gid() == f"on-{drug}" for span in self._spans):
                handles.append(Patch(color=colour, alpha=0.3))
                labels.append(f"{drug} on")
        self._ax.legend(handles, labels, fontsize="xx-small", loc="best", framealpha=0.7,
                        ncols=2)

    def _log_scale(self, obs):
        if any(np.any(np.asarray(obs[k]) > 0) for k in self._lines):
            self._ax.set_yscale("log")

    def _shade(self, obs, days):
        """Each drug's on-periods as bands in its colour, on both axes."""
        for span in self._spans:
            span.remove()
        self._spans = []
        for drug, colour in self._drug_colours().items():
            if f"on_{drug}" in obs:
                for a, b in on_periods(days, obs[f"on_{drug}"]):
                    self._spans += [axis.axvspan(a, b, color=colour, alpha=0.15, lw=0,
                                                 gid=f"on-{drug}")
                                    for axis in (self._ax, self._plasma_ax)]

    def update_data(self):
        if self.source is None or not getattr(self, "_lines", None) or self.time is None:
            return self.refresh()
        obs = self.source.observables()
        days = np.asarray(obs["time"], dtype=np.float64) / MINUTES_PER_DAY
        for key, line in self._lines.items():
            line.set_data(days, _positive(obs[key]))
            line.set_marker("o" if days.size == 1 else "None")
        for panel, name, _, _, line in self._curves:
            if panel == "plasma" and f"plasma_{name}" in obs:
                line.set_data(days, np.asarray(obs[f"plasma_{name}"], dtype=np.float64))
        self._log_scale(obs)
        self._mark(obs)
        self._shade(obs, days)
        self._legend()
        self._lines_updated()


class NicheWidget(RunPlot):
    """At the frame shown: persisters per initial tumour cell against distance to the
    nearest niche, and against distance to the tumour edge near and far from niches, with
    that frame's niche contrast and voxel counts; below, the contrast and the counts over
    time (:mod:`spatialdtp.run.niche`). The profiles are recomputed shortly after the
    slider stops."""

    title = "Niche analysis"
    FIGSIZE = (5.2, 4.6)
    DELAY_MS = 150  # wait for the slider to rest before reading a frame

    def __init__(self, napari_viewer, parent=None):
        self._pending = QTimer()
        self._pending.setSingleShot(True)
        self.profile = None           # the NicheProfile drawn (for checks)
        self.edge = None              # the EdgeProfile drawn
        self.contrast = None          # the NicheContrast of that frame
        self.profile_frame = None     # its frame index
        super().__init__(napari_viewer, parent)
        self.canvas.setMinimumSize(340, 320)
        self._pending.setInterval(self.DELAY_MS)
        self._pending.timeout.connect(self._draw_profile)

    @property
    def geometry(self) -> niche.NicheGeometry:
        src = self.source
        return niche.NicheGeometry.of(src.cfg.run, src.capacity, src.grid.dx)

    def _contrast_series(self, obs, days):
        nan = np.full(days.shape, np.nan)
        return {k: np.asarray(obs.get(k, nan), dtype=np.float64) for k in NICHE_NAMES}

    def _undefined_text(self, series) -> str:
        """Why the contrast is NaN at the last step (when it is NaN at every step)."""
        ni = series["niche_contrast"]
        if np.any(np.isfinite(ni)) or ni.size == 0:
            return ""
        if "niche_contrast" not in self.source.observables():
            # a file from before the measure (it recorded the unstratified niche index,
            # which is not shown: rim effects pass for niche effects in it)
            return ("this run file records no niche contrast over time (written before "
                    "it existed); the frame's contrast above is computed from its frames")
        return "niche contrast undefined: " + niche.reason_of(
            ni[-1], series["niche_voxels"][-1], series["niche_near_voxels"][-1],
            series["niche_far_voxels"][-1], self.geometry)

    def draw(self):
        frame_fig, time_fig = self.figure.subfigures(2, 1, height_ratios=[1.25, 1])
        self._frame_fig = frame_fig
        self._niche_ax, self._edge_ax = frame_fig.subplots(1, 2, sharey=True)
        index_ax, count_ax = time_fig.subplots(1, 2)
        g = self.geometry
        rate = "P per 1000 initial\ntumour cells"
        # the frame's profiles: empty lines now, filled when a frame is read
        ax = self._niche_ax
        ax.axvspan(0.0, g.near, color=palette.NEAR_COLOUR, alpha=0.12, lw=0,
                   label=f"near: ≤ {g.near:g} µm")
        diagonal = float(np.sqrt(np.sum(np.square(self.source.grid.extent))))
        ax.axvspan(g.far, max(g.far, diagonal), color=palette.FAR_COLOUR, alpha=0.15, lw=0,
                   label=f"far: > {g.far:g} µm")
        self._niche_line = self._curve("P vs distance to niche", "bed", "µm", rate, ax.plot(
            [], [], "o-", **palette.curve(palette.CELL_COLOURS["P"]), ms=3)[0])
        ax.set_xlabel("distance to niche (µm)")
        ax.set_ylabel(rate)
        ax.legend(fontsize="xx-small", loc="upper right")   # the zones only
        ax = self._edge_ax
        self._edge_lines = {
            key: self._curve("P vs distance to tumour edge", key, "µm", rate, ax.plot(
                [], [], style, **palette.curve(colour), ms=3, label=label)[0])
            for key, style, colour, label in (
                ("bed", "o-", palette.CELL_COLOURS["P"], "all bed"),
                ("near", "s--", palette.NEAR_COLOUR, "near niches"),
                ("far", "^:", palette.FAR_COLOUR, "far from niches"))}
        ax.set_xlabel("distance to tumour edge (µm)")
        ax.legend(fontsize="xx-small", loc="upper right")
        self._empty = {a: a.text(0.5, 0.5, "", wrap=True, transform=a.transAxes, ha="center",
                                 va="center", color="gray", fontsize="x-small")
                       for a in (self._niche_ax, self._edge_ax)}
        self._frame_title = frame_fig.suptitle("", fontsize="small")

        obs = self.source.observables()
        days = np.asarray(obs["time"], dtype=np.float64) / MINUTES_PER_DAY
        series = self._contrast_series(obs, days)
        marker = "o" if days.size == 1 else "None"
        self._index_line = self._curve("niche contrast", "contrast", "time (days)", "1",
                                       index_ax.plot(days, series["niche_contrast"],
                                                     color=palette.CONTRAST_COLOUR,
                                                     marker=marker)[0])
        text = self._undefined_text(series)
        self._undefined = index_ax.text(
            0.5, 0.5, text, wrap=True, transform=index_ax.transAxes, ha="center",
            va="center", color="gray", fontsize="x-small", visible=bool(text))
        index_ax.axhline(1.0, color="gray", ls="--", lw=0.8)
        index_ax.set_ylabel("niche contrast")
        index_ax.set_title("edge-stratified, near ÷ far", fontsize="x-small")
        self._time_plot(index_ax)
        self._count_lines = {}
        for key, colour, label in (("niche_voxels", palette.CAF_NICHE_COLOUR, "niche"),
                                   ("niche_near_voxels", palette.NEAR_COLOUR, "near"),
                                   ("niche_far_voxels", palette.FAR_COLOUR, "far")):
            self._count_lines[key] = self._curve("voxel counts", label, "time (days)",
                                                 "voxels", count_ax.plot(
                days, _positive(series[key]), color=colour, label=label,
                ls="--" if key == "niche_near_voxels" else "-", marker=marker)[0])
        if any(np.any(series[k] > 0) for k in self._count_lines):
            count_ax.set_yscale("log")
        count_ax.set_ylabel("voxels")
        count_ax.set_title("niche, near, far voxels", fontsize="x-small")
        count_ax.legend(fontsize="xx-small", loc="best")
        self._time_plot(count_ax)
        for axis in (self._niche_ax, self._edge_ax, index_ax, count_ax):
            _small(axis)
        self.profile_frame = None

    def update_data(self):
        if self.source is None or self.time is None or not hasattr(self, "_index_line"):
            return self.refresh()
        obs = self.source.observables()
        days = np.asarray(obs["time"], dtype=np.float64) / MINUTES_PER_DAY
        series = self._contrast_series(obs, days)
        marker = "o" if days.size == 1 else "None"
        self._index_line.set_data(days, series["niche_contrast"])
        self._index_line.set_marker(marker)
        for key, line in self._count_lines.items():
            line.set_data(days, _positive(series[key]))
            line.set_marker(marker)
        text = self._undefined_text(series)
        self._undefined.set_text(text)
        self._undefined.set_visible(bool(text))
        self._lines_updated()

    def update_frame(self, redraw: bool = True):
        super().update_frame(redraw)
        if self.time is not None and self.frame != self.profile_frame:
            if redraw:
                self._pending.start()
            else:
                self._draw_profile(redraw=False)

    def compute_profile(self, index: int):
        """(niche profile, contrast) of frame ``index`` (see :meth:`compute_frame`)."""
        profile, _, contrast = self.compute_frame(index)
        return profile, contrast

    def compute_frame(self, index: int):
        """(niche profile, edge profile, contrast) of frame ``index``: reads P, F and M of
        that frame and the tumour at treatment start; (None, None, contrast with its
        reason) before that."""
        src, g = self.source, self.geometry
        P, F, M = (np.asarray(src.frame(c, index), dtype=np.float64) for c in ("P", "F", "M"))
        T0 = src.tumour_start()
        if T0 is None:
            return None, None, niche.niche_contrast(P, F, M, None, g)
        ref = niche.reference_of(T0, g)
        return (niche.niche_profile(P, F, M, ref, g, bins=self._edges()),
                niche.edge_profile(P, F, M, ref, g), niche.niche_contrast(P, F, M, ref, g))

    def _edges(self) -> np.ndarray:
        """Bins of half the near distance (at least one voxel) out to the farthest voxel."""
        g, run = self.source.grid, self.source.cfg.run
        width = max(g.dx, 0.5 * run.niche_distance)
        far = float(np.sqrt(np.sum(np.square(g.extent))))
        return np.arange(0.0, far + width, width)

    def _show(self, ax, lines, xs_ys, empty_text, xmax):
        """Put profile data in ``lines`` (None: no data) and rescale ``ax``."""
        drawn = False
        for line, (x, y) in zip(lines, xs_ys):
            keep = np.isfinite(y)
            line.set_data(x[keep], 1e3 * y[keep])
            drawn |= bool(np.any(keep))
        self._empty[ax].set_text("" if drawn else empty_text)
        if drawn and xmax > 0:
            ax.set_xlim(0.0, xmax)
        ax.relim()
        ax.autoscale_view(scalex=False)
        return drawn

    def _draw_profile(self, redraw: bool = True):
        try:
            if self.time is None:
                return
            index = self.frame if self.frame is not None else self.current_frame()
            profile, edge, contrast = self.compute_frame(index)
            none = "no tumour-bed voxel at a finite distance from a niche in this frame" \
                if profile is not None else contrast.reason
            if profile is not None:
                keep = profile.counts > 0
                top = float(profile.edges[1:][keep].max()) if keep.any() else 0.0
                self._show(self._niche_ax, [self._niche_line],
                           [(profile.centres, np.where(keep, profile.rate, np.nan))], none, top)
                self._show(self._edge_ax, list(self._edge_lines.values()),
                           [(edge.centres, edge.rate), (edge.centres, edge.near_rate),
                            (edge.centres, edge.far_rate)],
                           "no tumour bed at treatment start", float(edge.edges[-1]))
            else:
                self._show(self._niche_ax, [self._niche_line], [], none, 0.0)
                self._show(self._edge_ax, list(self._edge_lines.values()), [], none, 0.0)
            value = (f"contrast {contrast.value:.3g}" if np.isfinite(contrast.value)
                     else "contrast undefined")
            self._frame_title.set_text(
                f"day {self.time.days[index]:.3g}: {value}; {contrast.near_voxels} near, "
                f"{contrast.far_voxels} far, {contrast.niche_voxels} niche voxels")
            self.profile, self.edge, self.contrast = profile, edge, contrast
            self.profile_frame = index
            if redraw:
                self.redraw()
        except RuntimeError:
            self._disconnect()
