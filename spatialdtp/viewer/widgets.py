"""Dock widgets that plot a run against time and follow napari's time slider (Qt).

- :class:`PopulationWidget` (*Population dynamics*): S, P, R and tumour burden (cells, log
  scale) against days, each drug's on-periods shaded, a marker at the frame shown.
- :class:`NicheWidget` (*Niche analysis*): at the frame shown, persisters per initial
  tumour cell of the tumour bed against distance to the nearest CAF/TAM niche, and that
  frame's niche contrast (:mod:`spatialdtp.run.niche`); below, the run's niche contrast
  over time, with the reason when it is undefined.

Both find the run among the viewer's layers (the last run added; layers made by
:func:`spatialdtp.viewer.layers.layer_data` carry it in their metadata). Moving the time
slider moves the markers; clicking a time plot moves the slider to the frame nearest the
click. Live runs call :meth:`refresh` as new data arrive.
"""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..run import niche
from ..run.observables import NICHE_NAMES
from ..run.summary_plot import DRUG_COLOURS, POPULATION_STYLE, _positive, on_periods
from .layers import MINUTES_PER_DAY, TimeAxis, source_of

MARKER = dict(color="0.2", lw=1.2, ls="-", zorder=5)


class RunPlot(QWidget):
    """A matplotlib figure tied to the run shown in a napari viewer (base class)."""

    title = "run"

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.figure = Figure(figsize=(4.4, 3.8), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumSize(300, 260)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.canvas)
        self.source = None
        self.time: TimeAxis | None = None
        self._time_layer = None
        self._markers: list = []       # vertical lines at the frame shown
        self._time_axes: list = []     # axes whose x is time in days (clickable)
        self.frame = None              # index of the frame the plots show
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

    # -- drawing
    def update_data(self):
        """Take in data a live run added (cheaper than :meth:`refresh` where a subclass
        can update its lines in place)."""
        self.refresh()

    def refresh(self):
        """Redraw everything from the run (after new data, or another run)."""
        self.figure.clear()
        self.figure.set_layout_engine("constrained")
        self._markers, self._time_axes = [], []
        self.frame = None
        if self.source is None or len(self.source.times) == 0:
            self.time = None
            self.figure.text(0.5, 0.5, "open a spatialdtp run file", ha="center",
                             va="center", color="gray")
        else:
            self.time = TimeAxis.of(self.source)
            self.draw()
            self.update_frame(redraw=False)
        self.canvas.draw_idle()

    def draw(self):
        """Draw the figure for ``self.source`` (subclasses)."""

    def update_frame(self, redraw: bool = True):
        """Follow the time slider: move the markers to the frame shown."""
        if self.time is None:
            return
        self.frame = self.current_frame()
        day = float(self.time.days[self.frame])
        for line in self._markers:
            line.set_xdata([day, day])
        if redraw:
            self.canvas.draw_idle()

    def marker_day(self) -> float | None:
        """Day at which the markers stand (for checks)."""
        return float(self._markers[0].get_xdata()[0]) if self._markers else None

    def _time_plot(self, ax):
        self._time_axes.append(ax)
        self._markers.append(ax.axvline(0.0, **MARKER))
        self._span_frames(ax)
        ax.set_xlabel("time (days)")

    def _span_frames(self, ax):
        days = self.time.days
        if days.size > 1:  # every time plot spans the frames, whatever its data covers
            ax.set_xlim(days[0], days[-1])

    def _lines_updated(self):
        """After a subclass changed its lines' data: rescale, move the marker, redraw.
        The layout stays as last computed: constrained layout is half the cost of a draw,
        and a live run redraws often from the window's thread."""
        self.figure.set_layout_engine("none")
        self.time = TimeAxis.of(self.source)
        for ax in self._time_axes:
            self._span_frames(ax)
            ax.relim()
            ax.autoscale_view(scalex=False)
        self.update_frame()


class PopulationWidget(RunPlot):
    """S, P, R and burden against days with drug on-periods shaded; marker at the frame."""

    title = "Population dynamics"

    def draw(self):
        obs = self.source.observables()
        days = np.asarray(obs["time"], dtype=np.float64) / MINUTES_PER_DAY
        ax = self._ax = self.figure.add_subplot()
        marker = "o" if days.size == 1 else None
        self._lines = {}
        for key, colour, label in POPULATION_STYLE:
            if key in obs:
                self._lines[key], = ax.plot(days, _positive(obs[key]), color=colour,
                                            label=label, marker=marker,
                                            lw=2.0 if key == "burden" else 1.4)
        self._log_scale(obs)
        handles, labels = ax.get_legend_handles_labels()
        self._spans = []
        for i, drug in enumerate(self.source.drugs):
            if f"on_{drug}" in obs:
                handles.append(Patch(color=DRUG_COLOURS[i % len(DRUG_COLOURS)], alpha=0.3))
                labels.append(f"{drug} on")
        self._shade(obs, days)
        ax.legend(handles, labels, fontsize="x-small", loc="best")
        ax.set_ylabel("cells")
        ax.set_title(f"{self.source.name}: tumour populations", fontsize="medium")
        self._time_plot(ax)

    def _log_scale(self, obs):
        if any(np.any(np.asarray(obs[k]) > 0) for k in self._lines):
            self._ax.set_yscale("log")

    def _shade(self, obs, days):
        """Each drug's on-periods as bands in its colour."""
        for span in self._spans:
            span.remove()
        self._spans = []
        for i, drug in enumerate(self.source.drugs):
            if f"on_{drug}" in obs:
                self._spans += [self._ax.axvspan(a, b, color=DRUG_COLOURS[i % len(DRUG_COLOURS)],
                                                 alpha=0.15, lw=0)
                                for a, b in on_periods(days, obs[f"on_{drug}"])]

    def update_data(self):
        if self.source is None or not getattr(self, "_lines", None) or self.time is None:
            return self.refresh()
        obs = self.source.observables()
        days = np.asarray(obs["time"], dtype=np.float64) / MINUTES_PER_DAY
        for key, line in self._lines.items():
            line.set_data(days, _positive(obs[key]))
            line.set_marker("o" if days.size == 1 else "None")
        self._log_scale(obs)
        self._shade(obs, days)
        self._lines_updated()


class NicheWidget(RunPlot):
    """Persisters per initial tumour cell against distance to the nearest niche at the frame
    shown, with that frame's niche contrast; below, the run's niche contrast over time
    (:mod:`spatialdtp.run.niche`). The profile is recomputed shortly after the slider stops."""

    title = "Niche analysis"
    DELAY_MS = 150  # wait for the slider to rest before reading a frame

    def __init__(self, napari_viewer, parent=None):
        self._pending = QTimer()
        self._pending.setSingleShot(True)
        self.profile = None           # the NicheProfile drawn (for checks)
        self.contrast = None          # the NicheContrast of that frame
        self.profile_frame = None     # its frame index
        super().__init__(napari_viewer, parent)
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
        return "niche contrast undefined: " + niche.reason_of(
            ni[-1], series["niche_voxels"][-1], series["niche_near_voxels"][-1],
            series["niche_far_voxels"][-1], self.geometry)

    def draw(self):
        self._profile_ax, index_ax = self.figure.subplots(
            2, 1, gridspec_kw={"height_ratios": [1.4, 1]})
        obs = self.source.observables()
        days = np.asarray(obs["time"], dtype=np.float64) / MINUTES_PER_DAY
        series = self._contrast_series(obs, days)
        self._index_line, = index_ax.plot(days, series["niche_contrast"], color="tab:brown",
                                          marker="o" if days.size == 1 else "None")
        text = self._undefined_text(series)
        self._undefined = index_ax.text(
            0.5, 0.5, text, wrap=True, transform=index_ax.transAxes, ha="center",
            va="center", color="gray", fontsize="small", visible=bool(text))
        index_ax.axhline(1.0, color="gray", ls="--", lw=0.8)
        index_ax.set_ylabel("niche contrast\n(P/T0 near ÷ far)")
        self._time_plot(index_ax)
        self.profile_frame = None

    def update_data(self):
        if self.source is None or self.time is None or not hasattr(self, "_index_line"):
            return self.refresh()
        obs = self.source.observables()
        days = np.asarray(obs["time"], dtype=np.float64) / MINUTES_PER_DAY
        series = self._contrast_series(obs, days)
        self._index_line.set_data(days, series["niche_contrast"])
        self._index_line.set_marker("o" if days.size == 1 else "None")
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
                self._draw_profile()

    def compute_profile(self, index: int):
        """The niche profile and contrast of frame ``index`` (reads P, F and M of that frame
        and the tumour at treatment start); (None, contrast with its reason) before that."""
        src, g = self.source, self.geometry
        P, F, M = (np.asarray(src.frame(c, index), dtype=np.float64) for c in ("P", "F", "M"))
        T0 = src.tumour_start()
        if T0 is None:
            return None, niche.niche_contrast(P, F, M, None, g)
        ref = niche.reference_of(T0, g)
        return (niche.niche_profile(P, F, M, ref, g, bins=self._edges()),
                niche.niche_contrast(P, F, M, ref, g))

    def _edges(self) -> np.ndarray:
        """Bins of half the near distance (at least one voxel) out to the farthest voxel."""
        g, run = self.source.grid, self.source.cfg.run
        width = max(g.dx, 0.5 * run.niche_distance)
        far = float(np.sqrt(np.sum(np.square(g.extent))))
        return np.arange(0.0, far + width, width)

    def _draw_profile(self):
        try:
            if self.time is None:
                return
            index = self.frame if self.frame is not None else self.current_frame()
            profile, contrast = self.compute_profile(index)
            ax = self._profile_ax
            ax.clear()
            keep = profile.counts > 0 if profile is not None else np.zeros(0, dtype=bool)
            if np.any(keep):
                ax.plot(profile.centres[keep], 1e3 * profile.rate[keep], "o-",
                        color="tab:orange", ms=3)
                ax.set_xlim(0.0, float(profile.edges[1:][keep].max()))
            else:
                ax.text(0.5, 0.5, "no tumour-bed voxel at a finite distance from a niche "
                        "in this frame" if profile is not None else contrast.reason,
                        wrap=True, transform=ax.transAxes, ha="center", va="center",
                        color="gray", fontsize="small")
            g = self.geometry
            ax.axvspan(0.0, g.near, color="tab:red", alpha=0.08, lw=0,
                       label=f"near: ≤ {g.near:g} µm")
            ax.axvspan(g.far, max(g.far, ax.get_xlim()[1]), color="tab:grey", alpha=0.1, lw=0,
                       label=f"far: > {g.far:g} µm")
            ax.legend(fontsize="x-small", loc="best")
            ax.set_xlabel("distance to nearest CAF/TAM niche (µm)")
            ax.set_ylabel("P per 1000 initial\ntumour cells")
            value = (f"contrast {contrast.value:.3g} ({contrast.near_voxels} near, "
                     f"{contrast.far_voxels} far voxels)" if np.isfinite(contrast.value)
                     else "contrast undefined")
            ax.set_title(f"day {self.time.days[index]:.3g}: {value}", fontsize="medium")
            self.profile, self.contrast, self.profile_frame = profile, contrast, index
            self.canvas.draw_idle()
        except RuntimeError:
            self._disconnect()
