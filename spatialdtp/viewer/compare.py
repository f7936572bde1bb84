"""Runs side by side: ``spatialdtp-view A.h5 B.h5 …`` (or :func:`open_runs`).

Every experiment is a comparison (a schedule against another, a tissue with its niches
against one without), so several runs open in one viewer, in napari's grid mode: each run's
layers fill a canvas of their own (``grid.stride`` = the number of layers of one run; runs
must have the same layers, which every run of one model has). All layers place time in
days (:class:`~spatialdtp.viewer.layers.TimeAxis`), so the one time slider moves every run
to the same day. Each canvas is labelled with its run's letter and overrides (a text-only
points layer at its top-left corner, locked), layer names start with the run's letter, and
:class:`CompareWidget` overlays the runs' curves: tumour burden and persisters against days,
one colour per run, a marker at the day shown.

A run's label is its Hydra overrides (``.hydra/overrides.yaml`` beside the run file, as
``spatialdtp-run`` writes it, without ``hydra.*`` keys), else its directory's name.
"""
from __future__ import annotations

import os
import string
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .layers import MINUTES_PER_DAY, source_of

#: one colour per run (Okabe–Ito: distinct for colour-blind readers), in the order opened
RUN_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MAX_RUNS = len(RUN_COLOURS)
LABEL_LAYER = "run label"


def run_overrides(path) -> list[str] | None:
    """The overrides a run was made with (Hydra's ``.hydra/overrides.yaml`` beside it,
    without ``hydra.*`` keys), or None when there is no such file (a run made from Python)."""
    overrides = Path(path).parent / ".hydra" / "overrides.yaml"
    if not overrides.is_file():
        return None
    import yaml

    try:
        items = yaml.safe_load(overrides.read_text()) or []
    except yaml.YAMLError:
        return None
    return [str(o) for o in items if not str(o).lstrip("+~").startswith("hydra")]


def run_label(path) -> str:
    """The overrides a run was made with (``key=value, …``), or its directory's name."""
    items = run_overrides(path)
    if items is None:
        return Path(path).parent.name or Path(path).name
    return ", ".join(items) or "defaults"


def distinct_labels(paths) -> tuple[list[str], str]:
    """Each run's label without the overrides all the runs share, and those shared ones:
    what tells the runs apart is what a canvas should say."""
    items = [run_overrides(p) for p in paths]
    if any(i is None for i in items):
        return [run_label(p) for p in paths], ""
    shared = [o for o in items[0] if all(o in i for i in items[1:])]
    own = [", ".join(o for o in i if o not in shared) or "defaults" for i in items]
    return own, ", ".join(shared)


def _label_layer(letter: str, label: str, run, ndim_grid: int):
    """A text-only points layer just above the run's top-left voxel."""
    from napari.layers import Points

    dx = run.grid.dx
    where = np.zeros((1, ndim_grid))
    where[0, -2] = -1.5 * dx           # a voxel and a half above the first row, in µm
    layer = Points(where, name=f"{letter} {LABEL_LAYER}", size=1, border_width=0,
                   units=("µm",) * ndim_grid,
                   face_color="transparent",
                   # one override per line: a canvas is narrow when several runs share it
                   text={"string": [f"{letter}: " + label.replace(", ", "\n")],
                         "anchor": "upper_left",
                         "color": "white", "size": 10},
                   # not a layer of the run (no "spatialdtp" source): nothing treats it as one
                   metadata={"spatialdtp_label": letter})
    return layer


def open_runs(paths, viewer=None, *, frame: int | None = None, day: float | None = None,
              ndisplay: int | None = None, widgets: bool = True):
    """Open the run files ``paths`` side by side in ``viewer`` (a new one if None) on one
    time slider, at frame ``frame`` or the frame nearest ``day`` (default: the first run's
    opening frame); return the viewer. Raises ValueError naming the file for a run that
    cannot be shown with the others."""
    import napari
    from napari.layers import Layer

    from .canvas import dress, fit_view, lock
    from .layers import TimeAxis
    from .reader import read_run

    paths = [os.fspath(p) for p in paths]
    if not 2 <= len(paths) <= MAX_RUNS:
        raise ValueError(f"{len(paths)} run files: compare 2 to {MAX_RUNS} at a time")
    if viewer is None:
        viewer = napari.Viewer(title="spatialdtp: " + " | ".join(
            os.path.basename(os.path.dirname(os.path.abspath(p))) or p for p in paths))
    names, runs, stride = None, [], None
    labels, shared = distinct_labels(paths)
    for k, path in enumerate(paths):
        letter = string.ascii_uppercase[k]
        data = read_run(path)
        these = [meta["name"] for _d, meta, _kind in data]
        if names is None:
            names = these
        elif these != names:
            raise ValueError(f"{path}: its layers {these} are not those of {paths[0]} "
                             f"({names}); only runs of the same fields can be compared")
        added = []
        for d, meta, kind in data:
            layer = viewer.add_layer(Layer.create(d, {**meta, "name": f"{letter} {meta['name']}"},
                                                  kind))
            added.append(layer)
        run = source_of(added[0])
        if run.grid.ndim != (runs[0].grid.ndim if runs else run.grid.ndim):
            raise ValueError(f"{path}: a {run.grid.ndim}D run cannot be compared with a "
                             f"{runs[0].grid.ndim}D one")
        timed_ndim = added[-1].ndim      # the niches layer: time + space
        viewer.add_layer(_label_layer(letter, labels[k], run, timed_ndim - 1))
        runs.append(run)
        stride = len(added) + 1
    viewer.grid.stride = stride
    viewer.grid.enabled = True
    n = len(runs[0].times)
    if frame is not None and not -n <= frame < n:
        raise ValueError(f"frame={frame}: {paths[0]} has {n} frames")
    if day is not None:
        frame = TimeAxis.of(runs[0]).nearest(day)
    viewer.dims.ndisplay = ndisplay or (3 if runs[0].grid.ndim == 3 else 2)
    run_layers = [la for la in viewer.layers if source_of(la) is not None]
    dress(viewer, run_layers, frame=frame)   # locks, legend, day stamp, scale bar: as one run
    for layer in viewer.layers:
        if "spatialdtp_label" in layer.metadata:
            lock(layer)
    persisters = [la for la in run_layers if la.metadata["spatialdtp"].get("field") == "P"
                  and la.metadata["spatialdtp"]["role"] == "cell"]
    if persisters:
        viewer.layers.selection.active = persisters[0]
    if widgets:
        viewer.window.add_dock_widget(CompareWidget(viewer, runs, labels, shared),
                                      name=CompareWidget.title, area="right")
    fit_view(viewer)
    return viewer


class CompareWidget(QWidget):
    """Tumour burden and persisters of every run against days, one colour per run, with
    a marker at the day the time slider shows."""

    title = "Runs compared"

    def __init__(self, napari_viewer, runs, labels, shared: str = "", parent=None):
        super().__init__(parent)
        self.viewer, self.runs = napari_viewer, list(runs)
        self.figure = Figure(figsize=(4.4, 4.2), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumSize(300, 280)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.canvas)
        self.lines: dict[str, list] = {"burden": [], "P": []}
        axes = self.figure.subplots(2, 1, sharex=True)
        for k, (run, label) in enumerate(zip(self.runs, labels)):
            obs = run.observables()
            days = np.asarray(obs["time"]) / MINUTES_PER_DAY
            letter = string.ascii_uppercase[k]
            for ax, name in zip(axes, ("burden", "P")):
                values = np.asarray(obs.get(name, np.full(len(days), np.nan)), dtype=float)
                (line,) = ax.plot(days, np.where(values > 0, values, np.nan),
                                  color=RUN_COLOURS[k], lw=1.4,
                                  label=f"{letter}: {_short(label)}")
                self.lines[name].append(line)
        axes[0].set_ylabel("tumour burden (cells)")
        axes[1].set_ylabel("persisters P (cells)")
        axes[1].set_xlabel("time (days)")
        for ax in axes:
            ax.set_yscale("log")
        axes[0].legend(fontsize=7, loc="best")
        if shared:
            axes[0].set_title(_short("all: " + shared, 60), fontsize=8)
        self.axes = axes
        self.markers = [ax.axvline(self.day(), color="0.2", lw=1.0) for ax in axes]
        self.canvas.draw()
        self._background = None
        napari_viewer.dims.events.current_step.connect(self._moved)

    def day(self) -> float:
        """The day the time slider shows (world coordinate of the time axis)."""
        return float(self.viewer.dims.point[0])

    def _moved(self, event=None):
        for m in self.markers:
            m.set_xdata([self.day(), self.day()])
        self.canvas.draw_idle()


def _short(label: str, width: int = 48) -> str:
    return label if len(label) <= width else label[:width - 1] + "…"
