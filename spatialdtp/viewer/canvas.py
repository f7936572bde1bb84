"""A run's layers set up in a napari viewer: what opens, what can be edited, what the
canvas says around them (napari and Qt).

:func:`dress` is what ``spatialdtp-view``, the plugin's reader and live runs do once a
run's layers are in a viewer:

- the derived layers (niches, vessels, enrichment, protection) are locked against editing
  (``editable = False``, kept so when napari resets it after new data), and the active
  layer is the persisters', so the layer controls show contrast, not paint brushes;
- time reads in days: a day stamp on the canvas (in screenshots and movies too), the time
  slider's numbers, and the status bar (napari's world time is days already);
- colorbars in the fields' own units (cells/voxel, ng/mL, µM, …) in the *Colorbars* dock
  widget (:mod:`.colorbars`), also for the layers shown as log₁₀ or log₂, whose napari
  colorbars are off (they would label the ticks with the logs); napari's colorbar stays
  on the canvas for the linear layers (it shows while its layer does, and in exported
  PNGs); a legend of the colours, and the scale bar;
- the run opens on :meth:`~spatialdtp.viewer.layers.TimeAxis.opening_frame`, where the
  plots' time marker stands inside their axes;
- a 3D run viewed as slices (2D display, ``--ndisplay 2``; napari's "roll dimensions"
  button steps through the three orthogonal slicings) draws its niche and vessel
  volumes as outlines of each slice, as a 2D run draws them (:func:`outline_slices`);
  back in 3D they are volumes again.

:func:`prefer_this_reader` records the plugin as napari's reader for run files
(``settings.plugins.extension2reader``), so ``napari run.h5`` and ``viewer.open`` stop
asking which of the two ``*.h5`` readers to use.
"""
from __future__ import annotations

import fnmatch
import logging

from .layers import (CELL_STYLE, DERIVED_ROLES, ENRICHMENT, LOG_SUFFIX, PALETTE, TimeAxis,
                     format_day, source_of)

log = logging.getLogger("spatialdtp")

VOLUME_VIEW = (-30.0, 35.0, 150.0)  # camera Euler angles (degrees): volumes seen at a slant
#: the name spatialdtp-run gives its run files; nested, so it outranks a plain ``*.h5``
READER_PATTERN = "*/run.h5"
PLUGIN = "spatialdtp"
BLOCK_COLOUR = "#808080"   # the 3D block's outline: grey, no hue of the palette
LEGEND = (("P", "P persister"), ("S", "S sensitive"), ("R", "R resistant"),
          ("caf_niche", "CAF niche"), ("tam_niche", "TAM niche"), ("vessels", "vessels"))
OUTLINED = ("caf_niche", "tam_niche", "vessels")   # drawn as outlines in 2D
LEGEND_KEY = "spatialdtp legend {}"


# --------------------------------------------------------------------------- reader
def prefer_this_reader(path=None) -> bool:
    """Make the plugin napari's reader for files named like a spatialdtp run
    (:data:`READER_PATTERN`), and for ``path`` itself if its name differs, where those
    patterns have no reader recorded yet (a broader ``*.h5`` choice is outranked: napari
    prefers the more specific pattern). Returns True if a preference was written.

    napari saves its settings itself: the choice lasts across sessions, and shows (and
    can be undone) in Preferences ▸ Plugins ▸ File extension readers."""
    try:
        from napari.settings import get_settings
    except ImportError:
        return False
    readers = get_settings().plugins.extension2reader
    patterns = [READER_PATTERN]
    if path is not None:
        import os

        real = os.path.realpath(os.fspath(path))
        if not fnmatch.fnmatch(real, READER_PATTERN):
            patterns.append(real)    # an absolute path: napari's most specific pattern
    missing = {p: PLUGIN for p in patterns if p not in readers}
    if missing:
        get_settings().plugins.extension2reader = {**readers, **missing}
    return bool(missing)


def dress_when_added(viewer, names):
    """:func:`dress` the run whose layers are named ``names`` once napari has added the
    last of them (a reader returns layer data; napari adds the layers afterwards)."""
    names = set(names)

    def added(event):
        layers = run_layers(viewer)
        if names <= {layer.name for layer in layers}:
            viewer.layers.events.inserted.disconnect(added)
            dress(viewer, layers)
            # napari makes the layer just inserted active after this event: take it back
            active = viewer.layers.selection.active
            selection = viewer.layers.selection.events.active

            def reselect(event):
                now = viewer.layers.selection.active
                if now is None or now is active:
                    return
                selection.disconnect(reselect)
                viewer.layers.selection.active = active

            selection.connect(reselect)

    viewer.layers.events.inserted.connect(added)   # a function: napari holds it strongly
    return added


# --------------------------------------------------------------------------- dressing
def run_layers(viewer, source=None) -> list:
    """The viewer's layers made from ``source`` (default: the last run added)."""
    layers = [layer for layer in viewer.layers if source_of(layer) is not None]
    if source is None and layers:
        source = source_of(layers[-1])
    return [layer for layer in layers if source_of(layer) is source]


def lock(layer):
    """No editing of a layer computed from the fields: napari resets ``editable`` to True
    when a layer gets new data (live runs), so it is set back each time."""
    layer.editable = False
    if not getattr(layer, "_spatialdtp_locked", False):
        layer.events.editable.connect(lambda event: setattr(layer, "editable", False))
        layer._spatialdtp_locked = True


def role_of(layer) -> str:
    return layer.metadata["spatialdtp"]["role"]


def dress(viewer, layers=None, *, frame: int | None = None, colorbars: bool = True):
    """Set up a run's layers in ``viewer`` (see the module docstring); show ``frame``
    (default: the opening frame). Returns the :class:`DayReadout` it installed.
    ``colorbars=False`` leaves them off: a live run renews its layers every second, and
    redrawing the colorbars each time kept its window waiting."""
    layers = run_layers(viewer) if layers is None else list(layers)
    if not layers:
        return None
    source = source_of(layers[0])
    from .colorbars import dock as dock_colorbars, is_log   # Qt and matplotlib

    for layer in layers:
        if role_of(layer) in DERIVED_ROLES:
            lock(layer)
        colorbar = getattr(layer, "colorbar", None)
        if colorbar is not None and colorbars:
            # napari's colorbar labels a log layer's ticks with the logs: those layers
            # have theirs in the Colorbars widget only, in real units
            colorbar.visible = not is_log(layer)   # shown only while its layer is
    persisters = [la for la in layers if la.name == CELL_STYLE["P"][0] + LOG_SUFFIX]
    if persisters:
        viewer.layers.selection.active = persisters[0]
    if colorbars:
        dock_colorbars(viewer)
    if source.grid.ndim == 3:
        outline_slices(viewer, layers)
    _legend(viewer, outlines=source.grid.ndim == 2)
    scale_bar(viewer).visible = True
    readout = DayReadout(viewer, source, layers)
    time = TimeAxis.of(source)
    if len(source.times):
        index = time.opening_frame() if frame is None else frame % len(source.times)
        viewer.dims.set_current_step(readout.axis, index)
    readout.update()
    return readout


#: outline width (voxels) of the niche and vessel labels in a slice of a volume
SLICE_OUTLINE = 1


def outline_slices(viewer, layers):
    """The niche and vessel volumes as outlines while a slice is shown (2D display) and as
    volumes in 3D (napari draws no contours in 3D and warns at each refresh if asked)."""
    outlined = [la for la in layers if role_of(la) in ("niches", "vessels")]

    def follow(event=None):
        width = SLICE_OUTLINE if viewer.dims.ndisplay == 2 else 0
        for layer in outlined:
            layer.contour = width

    follow()
    viewer.dims.events.ndisplay.connect(follow, position="first")
    # napari re-slices once for the new display (from a dims event emitted before
    # ndisplay's) while the contours are still on, and warns that 3D has none: that one
    # refresh draws the volumes, which is what is wanted
    import warnings

    warnings.filterwarnings("ignore", message="Contours are not displayed during 3D rendering")
    return follow


def fit_view(viewer):
    """Fit the run in the canvas. Volumes are seen at a slant, with the block's outline
    (the persisters' bounding box) drawn, and the zoom fits the slanted block: napari's
    reset_view fits a face-on view, whose zoom cuts the corners off the slanted one."""
    viewer.reset_view()
    if viewer.dims.ndisplay != 3:
        return
    camera = getattr(getattr(viewer, "scene", None), "camera", None) or viewer.camera
    camera.angles = VOLUME_VIEW
    for layer in run_layers(viewer):
        if layer.name == CELL_STYLE["P"][0] + LOG_SUFFIX and hasattr(layer, "bounding_box"):
            layer.bounding_box.visible = True
            layer.bounding_box.points = False
            layer.bounding_box.line_color = BLOCK_COLOUR
    if hasattr(viewer, "fit_to_view"):          # napari >= 0.6: fits the rotated extent
        viewer.fit_to_view()


def scale_bar(viewer):
    """The viewer's scale bar overlay (moved to ``viewer.canvas.overlays`` in napari 0.9)."""
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    return overlays.scale_bar if overlays is not None else viewer.scale_bar


def _overlays(viewer):
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    return overlays


def day_stamp(viewer):
    """The canvas text overlay that carries the day stamp."""
    overlays = _overlays(viewer)
    return overlays.text if overlays is not None else viewer.text_overlay


def _legend(viewer, outlines: bool):
    """One coloured line per colour of the default view, bottom left (napari tiles
    overlays that share a corner; here one above the other)."""
    overlays = _overlays(viewer)
    if overlays is None:
        return
    tiling = viewer.canvas.overlay_tiling
    tiling.bottom_left = "vertical"
    tiling.padding = (4.0, tiling.padding[1])
    from napari.components.overlays import TextOverlay

    for i, (key, text) in enumerate(LEGEND):
        name = LEGEND_KEY.format(i)
        text += " (outline)" if outlines and key in OUTLINED else ""
        if name not in overlays:
            overlays[name] = TextOverlay(text=text, color=PALETTE[key], font_size=9,
                                         position="bottom_left", visible=True)
        else:
            overlays[name].text = text


class DayReadout:
    """Keeps the day stamp and the time slider's numbers on the day of the frame shown."""

    def __init__(self, viewer, source, layers):
        self.viewer, self.source = viewer, source
        self._timed = [la for la in layers if la.ndim == source.grid.ndim + 1]
        stamp = day_stamp(viewer)
        stamp.visible = True
        stamp.position = "top_left"
        stamp.font_size = 14
        stamp.color = "white"
        viewer.dims.events.current_step.connect(self.update)
        viewer.dims.events.range.connect(self.update)
        viewer.dims.events.ndim.connect(self.update)
        # napari holds its callbacks weakly: the readout lives as long as its layers
        for layer in self._timed[:1]:
            layer.metadata["spatialdtp"]["readout"] = self

    @property
    def axis(self) -> int:
        layer = self._timed[0] if self._timed else None
        return self.viewer.dims.ndim - layer.ndim if layer is not None else 0

    @property
    def time(self) -> TimeAxis:
        return TimeAxis.of(self.source)        # a live run grows

    def frame(self) -> int:
        return int(self.viewer.dims.current_step[self.axis])

    def text(self) -> str:
        from ..run.simulation import treatment_start_minutes

        start = treatment_start_minutes(self.source.cfg) / 1440.0
        return self.time.stamp(self.frame(), start)

    def update(self, event=None):
        try:
            day_stamp(self.viewer).text = self.text()
            self._label_slider()
        except RuntimeError:     # the window is gone
            pass

    # napari's slider shows the step index; its labels are set here after napari's own
    # update (callbacks connected later run later), for as long as napari draws them.
    def _slider(self):
        window = getattr(self.viewer, "window", None)
        qt_viewer = getattr(window, "_qt_viewer", None)
        dims = getattr(qt_viewer, "dims", None)
        widgets = getattr(dims, "slider_widgets", None)
        if not widgets or self.axis >= len(widgets):
            return None
        return widgets[self.axis]

    def _label_slider(self):
        slider = self._slider()
        days = self.time.days
        if slider is None or days.size == 0:
            return
        index = min(max(self.frame(), 0), days.size - 1)
        if not getattr(slider, "_spatialdtp_days", False):
            self._take_over_entry(slider)
        slider.curslice_label.setText(format_day(float(days[index])))
        slider.totslice_label.setText(f"{format_day(float(days[-1]))} d")
        self._size_labels(slider, days)
        slider.curslice_label.setToolTip("day of the frame shown (type a day to go there)")
        slider.totslice_label.setToolTip("last day of the run")

    @staticmethod
    def _size_labels(slider, days):
        """Boxes as wide as the widest label of the run (napari sized them for the digits
        of the frame count), set when that width changes, not on every step. Qt's layouts
        above the slider keep the minimum sizes they cached before: a label's next text
        change made them ask for a few pixels more, at the first steps of the slider, and
        the window laid itself out again, the docked plots narrowed and redrew. So the
        layouts up to the window are told at once, while the run opens."""
        widest = max((format_day(float(d)) for d in days), key=len) + " d"
        changed = False
        for label in (slider.curslice_label, slider.totslice_label):
            width = label.fontMetrics().horizontalAdvance(widest) + 10
            if label.minimumWidth() != width or label.maximumWidth() != width:
                label.setFixedWidth(width)
                changed = True
        if not changed:
            return
        widget = slider
        while widget is not None:
            if widget.layout() is not None:
                widget.layout().invalidate()
            widget.updateGeometry()
            widget = widget.parentWidget()

    def _take_over_entry(self, slider):
        """The slider's number box takes a day, not a frame index."""
        from qtpy.QtGui import QDoubleValidator

        label = slider.curslice_label
        try:
            label.editingFinished.disconnect(slider._set_slice_from_label)
        except (TypeError, RuntimeError):
            pass
        label.setValidator(QDoubleValidator(-1e9, 1e9, 3, label))

        def go_to_day():
            try:
                day = float(label.text())
            except ValueError:
                return self.update()
            self.viewer.dims.set_current_step(self.axis, self.time.nearest(day))
            label.clearFocus()
            self.update()

        label.editingFinished.connect(go_to_day)
        slider._spatialdtp_days = True
