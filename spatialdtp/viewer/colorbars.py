"""Colorbars in the fields' own units: the *Colorbars* dock widget (matplotlib, Qt).

Cells, HGF and chemokine are shown as log₁₀ of the field, and the enrichment as log₂
(:mod:`.layers`): napari's colorbar would label their ticks with the logs (−3 for 10⁻³
cells/voxel), and it has no tick formatter. Here each bar is drawn on an axis in the
field's real values, log-scaled for a log layer, so a log₁₀ layer with contrast limits
(−3, 0) reads 10⁻³ … 10⁰ cells/voxel, and the enrichment reads ratios (0.5, 1, 2).

One bar per image layer shown, the active layer's first (also if it is hidden, its title
in bold), then the others from the top of the layer list; a scroll area holds them when
the dock is short (runs side by side show six). A bar spans its layer's contrast
limits in its colormap (with its gamma), and is drawn again when one of those, a layer's
visibility, the layer list or the active layer changes: never on a slider step.

Whether a layer is a log layer, and its unit, come from its ``units`` metadata
(``"log10 cells/voxel"``, ``"log2 (1)"``, ``"mmHg"``) through :func:`scale_of`.
:func:`dock` adds the widget to a viewer once (``canvas.dress`` calls it).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import (FixedLocator, FuncFormatter, LogFormatterSciNotation,
                               LogLocator, MaxNLocator, NullFormatter, NullLocator)
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

TITLE = "Colorbars"
LOG_UNITS = {"log10": 10.0, "log2": 2.0}     # the units' prefix of a log layer, its base
LOG_NAME = re.compile(r"\s*\(log(₁₀|₂)\)$")   # " (log₁₀)" at the end of a layer's name
ROW_PX, MARGIN_PX = 46, 8                     # height of one bar with its title and ticks
MAX_BARS = 8
SHOWN_BARS = 3                                # bars the dock shows without scrolling
SAMPLES = 256                                 # colours along a bar
NO_UNIT = ("", "1", "(1)")


@dataclass(frozen=True)
class Scale:
    """How a layer's values relate to the field's: ``base ** value`` for a log layer
    (``base`` None: the values are the field's), in ``unit``."""

    base: float | None
    unit: str

    def real(self, values):
        values = np.asarray(values, dtype=np.float64)
        return self.base ** values if self.base is not None else values


def scale_of(layer) -> Scale:
    """The :class:`Scale` of ``layer`` read from its ``units`` metadata: a leading
    ``log10``/``log2`` makes it a log layer of the unit that follows."""
    units = str(getattr(layer, "metadata", {}).get("units", "") or "").strip()
    head, _, rest = units.partition(" ")
    if head in LOG_UNITS:
        return Scale(LOG_UNITS[head], rest.strip())
    return Scale(None, units)


def is_log(layer) -> bool:
    return scale_of(layer).base is not None


def bar_title(layer) -> str:
    """The layer's name without its log suffix, and the field's unit."""
    name = LOG_NAME.sub("", layer.name)
    unit = scale_of(layer).unit
    if unit in NO_UNIT:
        return f"{name} (ratio)" if is_log(layer) else name
    return f"{name} ({unit})"


def log_subs(lo: float, hi: float) -> tuple[float, ...]:
    """The multiples m of 10^k labelled on a bar spanning 10^lo to 10^hi: the decades
    alone where at least two fall inside, else 1, 2 and 5 × 10^k, else every m."""
    for subs in ((1.0,), (1.0, 2.0, 5.0)):
        inside = [k + np.log10(m) for k in range(math.floor(lo), math.ceil(hi) + 1)
                  for m in subs]
        if sum(lo - 1e-9 <= x <= hi + 1e-9 for x in inside) >= 2:
            return subs
    return tuple(float(m) for m in range(1, 10))


def ratio_ticks(lo: float, hi: float) -> list[float] | None:
    """The labelled ratios of a log₂ bar spanning 2^lo to 2^hi: the powers of 2 where at
    least two fall inside, else about four round numbers, 1 among them if inside (a 3D
    enrichment bar spans ×0.89 to ×1.13, where the powers of 2 leave only "1"); None: the
    powers."""
    if sum(lo - 1e-9 <= k <= hi + 1e-9 for k in range(math.floor(lo), math.ceil(hi) + 1)) >= 2:
        return None
    a, b = 2.0 ** lo, 2.0 ** hi
    # round steps from 1 (the tissue mean), so that 1 is always one of them
    steps = MaxNLocator(4, steps=[1, 2, 2.5, 5, 10]).tick_values(a - 1.0, b - 1.0)
    return [round(1.0 + float(v), 12) for v in steps if a - 1e-12 <= 1.0 + v <= b + 1e-12]


def _is_image(layer) -> bool:
    from napari.layers import Image

    return isinstance(layer, Image) and getattr(layer, "rgb", False) is False


def _plain(text: str) -> str:
    """A tick label without matplotlib's mathtext markup: ``10^{-3}``."""
    return re.sub(r"\\mathdefault\{(.*)\}", r"\1", text.replace("$", ""))


class ColorbarWidget(QWidget):
    """The colorbars of the image layers shown (see the module docstring)."""

    title = TITLE

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.figure = Figure(figsize=(3.2, 1.0), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setMinimumWidth(200)
        # the bars' height grows with their number (runs side by side show six): in a
        # scroll area, so that the window needs no more than three bars' height for them
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(self.canvas)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.scroll)
        self.bars: dict[str, object] = {}   # layer name -> its axes (for checks)
        self.layers: list = []               # the layers with a bar, as drawn
        self.draws = 0                       # rebuilds (a slider step must make none)
        self._pending = QTimer()
        self._pending.setSingleShot(True)
        self._pending.setInterval(0)         # changes in one event loop pass: one redraw
        self._pending.timeout.connect(self.rebuild)
        self._watched: set[int] = set()
        layers = napari_viewer.layers
        layers.events.inserted.connect(self._layers_changed)
        layers.events.removed.connect(self._layers_changed)
        layers.events.moved.connect(self.schedule)
        layers.selection.events.active.connect(self.schedule)
        self._layers_changed()
        self.rebuild()

    # -- what to follow
    def _layers_changed(self, event=None):
        for layer in self.viewer.layers:
            if id(layer) in self._watched or not _is_image(layer):
                continue
            for name in ("visible", "contrast_limits", "colormap", "gamma", "name"):
                getattr(layer.events, name).connect(self.schedule)
            self._watched.add(id(layer))
        self.schedule()

    def schedule(self, event=None):
        try:
            self._pending.start()
        except RuntimeError:           # the widget is gone
            pass

    def shown_layers(self) -> list:
        """The image layers that get a bar: the active one first (if an image), then
        the visible ones, top of the layer list first."""
        active = self.viewer.layers.selection.active
        layers = [la for la in reversed(list(self.viewer.layers))
                  if _is_image(la) and la.visible and la is not active]
        if active is not None and _is_image(active):
            layers.insert(0, active)
        return layers[:MAX_BARS]

    # -- drawing
    def rebuild(self):
        try:
            self._rebuild()
        except RuntimeError:           # the Qt widget is gone (window closed)
            pass

    def _rebuild(self):
        self.figure.clear()
        self.bars = {}
        self.layers = self.shown_layers()
        active = self.viewer.layers.selection.active
        n = len(self.layers)
        self.canvas.setFixedHeight(MARGIN_PX + ROW_PX * max(n, 1))
        self.scroll.setMaximumHeight(MARGIN_PX + ROW_PX * max(n, 1) + 2)
        # the layer list takes any height it is given: the bars claim theirs, up to
        # SHOWN_BARS of them, and scroll beyond
        self.scroll.setMinimumHeight(MARGIN_PX + ROW_PX * min(max(n, 1), SHOWN_BARS) + 2)
        if not n:
            self.figure.text(0.5, 0.5, "no image layer shown", ha="center", va="center",
                             color="gray", fontsize="small")
        else:
            axes = self.figure.subplots(n, 1, squeeze=False)[:, 0]
            for ax, layer in zip(axes, self.layers):
                self._bar(ax, layer, bold=layer is active)
                self.bars[layer.name] = ax
        self.draws += 1
        self.canvas.draw_idle()

    def _bar(self, ax, layer, bold: bool):
        scale = scale_of(layer)
        lo, hi = (float(c) for c in layer.contrast_limits)
        if not hi > lo:
            hi = lo + 1.0
        t = np.linspace(0.0, 1.0, SAMPLES)
        colours = np.asarray(layer.colormap.map(t ** float(layer.gamma)))
        edges = scale.real(np.linspace(lo, hi, SAMPLES + 1))
        if scale.base is not None:
            ax.set_xscale("log", base=scale.base)
        ax.pcolormesh(edges, [0.0, 1.0], t[None, :], cmap=ListedColormap(colours),
                      vmin=0.0, vmax=1.0, shading="flat", rasterized=True)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0.0, 1.0)
        ax.yaxis.set_major_locator(NullLocator())
        if scale.base == 2.0:      # ratios, as numbers: 0.5, 1, 2 (or 0.9, 1, 1.1)
            fixed = ratio_ticks(lo, hi)
            if fixed is not None:
                ax.xaxis.set_major_locator(FixedLocator(fixed))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_locator(NullLocator())
        elif scale.base is None:
            ax.xaxis.set_major_locator(MaxNLocator(5))
        else:                      # 10^k; within a decade or so 1, 2, 5 × 10^k too
            ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=log_subs(lo, hi)))
            # every tick the locator places is labelled (by default matplotlib labels
            # only some multiples within a decade or two)
            ax.xaxis.set_major_formatter(LogFormatterSciNotation(
                base=10.0, labelOnlyBase=False, minor_thresholds=(math.inf, math.inf)))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(labelsize=7, length=3, pad=1)
        ax.tick_params(which="minor", labelsize=6, length=2)
        title = bar_title(layer) + ("" if layer.visible else ", hidden")
        ax.set_title(title, loc="left", fontsize=7, pad=2,
                     fontweight="bold" if bold else "normal")

    # -- for checks
    def ticks(self, name: str) -> list[tuple[float, str]]:
        """(value, label) of the labelled major ticks of layer ``name``'s bar, inside
        its span, labels as matplotlib draws them (mathtext markup removed)."""
        ax = self.bars[name]
        self.canvas.draw()
        lo, hi = sorted(ax.get_xlim())
        tol = 1e-9 * max(abs(lo), abs(hi))
        return [(float(tick.get_loc()), _plain(tick.label1.get_text()))
                for tick in ax.xaxis.get_major_ticks()
                if lo - tol <= tick.get_loc() <= hi + tol and tick.label1.get_text()]


def dock(viewer):
    """The viewer's :class:`ColorbarWidget`, docked on the left under the layer list
    the first time."""
    window = getattr(viewer, "window", None)
    if window is None or not hasattr(window, "add_dock_widget"):
        return None
    for widget in window.dock_widgets.values():
        if isinstance(widget, ColorbarWidget):
            return widget
    widget = ColorbarWidget(viewer)
    window.add_dock_widget(widget, name=TITLE, area="left")
    return widget
