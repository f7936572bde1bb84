"""The Colorbars widget reads the fields' real units: a log₁₀ layer's ticks are 10^k of
its unit, a linear layer's its own values; the bars follow the active layer, the layers
shown, their contrast limits and colormaps, and not the time slider; napari's own
colorbar (which would label a log layer with the logs) is off for the log layers.

The parsing of units needs no display; the rest needs napari and an X display.
"""
from types import SimpleNamespace

import numpy as np
import pytest

from qt_support import napari, needs_display, process, shown_viewer  # noqa: F401

P_NAME = "P persister (log₁₀)"


def _layer(units):
    return SimpleNamespace(metadata={"units": units}, name="x")


def test_the_scale_of_a_layer_is_read_from_its_units():
    pytest.importorskip("qtpy")
    from spatialdtp.viewer.colorbars import scale_of

    cells = scale_of(_layer("log10 cells/voxel"))
    assert (cells.base, cells.unit) == (10.0, "cells/voxel")
    assert cells.real([-3.0, 0.0]) == pytest.approx([1e-3, 1.0])
    assert scale_of(_layer("log10 ng/mL")).unit == "ng/mL"
    assert scale_of(_layer("log2 (1)")).real([-1.0, 1.0]) == pytest.approx([0.5, 2.0])
    oxygen = scale_of(_layer("mmHg"))
    assert (oxygen.base, oxygen.unit) == (None, "mmHg")
    assert oxygen.real([0.0, 38.0]) == pytest.approx([0.0, 38.0])


def test_a_bar_within_a_decade_labels_more_than_one_tick():
    pytest.importorskip("qtpy")
    from spatialdtp.viewer.colorbars import log_subs

    assert log_subs(-3.0, 0.0) == (1.0,)
    assert log_subs(-4.4, -3.9) == (1.0, 2.0, 5.0)       # 5e-5 and 1e-4 inside
    assert len(log_subs(-4.05, -3.95)) == 9


def test_a_narrow_ratio_bar_labels_round_ratios_not_only_1():
    pytest.importorskip("qtpy")
    from spatialdtp.viewer.colorbars import ratio_ticks

    assert ratio_ticks(-1.0, 1.0) is None                 # 0.5, 1, 2: the powers of 2
    # a 3D enrichment bar at ±0.17 (×0.89 … ×1.13): 1 and its round neighbours
    ticks = ratio_ticks(-0.17, 0.17)
    assert len(ticks) >= 3 and 1.0 in ticks
    assert all(2 ** -0.17 <= t <= 2 ** 0.17 for t in ticks)


# --------------------------------------------------------------------------- GUI
if napari is not None:
    from qtpy.QtWidgets import QApplication

    from spatialdtp import api
    from spatialdtp.viewer import app
    from spatialdtp.viewer.colorbars import ColorbarWidget

# the viewer records reader preferences: in memory only (the fixture needs napari)
settings_in_memory = pytest.mark.usefixtures("napari_settings_in_memory")


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("colorbars") / "run.h5"
    api.simulation(["experiment=quick", "grid.shape=[32,32]", "run.plot=false"]).run_until(
        path=path)
    return path


@pytest.fixture()
def viewer():
    with shown_viewer(1200, 800) as v:
        yield v


def _bars(viewer) -> "ColorbarWidget":
    (widget,) = [w for w in viewer.window.dock_widgets.values()
                 if isinstance(w, ColorbarWidget)]
    return widget


def _settle():
    for _ in range(5):
        process(0.02)


@needs_display
@settings_in_memory
def test_a_log_layer_reads_its_real_values(viewer, run_file):
    app.open_run(run_file, viewer, widgets=False)
    bars = _bars(viewer)
    _settle()
    P = viewer.layers[P_NAME]
    assert viewer.layers.selection.active is P
    # napari's colorbar would read -3 … 0: off for the log layers, on for the linear ones
    assert not P.colorbar.visible and viewer.layers["oxygen"].colorbar.visible
    P.contrast_limits = (-3.0, 0.0)
    _settle()
    assert bars.ticks(P.name) == [(1e-3, "10^{-3}"), (1e-2, "10^{-2}"), (1e-1, "10^{-1}"),
                                  (1.0, "10^{0}")]
    ax = bars.bars[P.name]
    assert ax.get_xlim() == pytest.approx((1e-3, 1.0))
    assert ax.get_title(loc="left") == "P persister (cells/voxel)"
    assert ax._left_title.get_fontweight() in ("bold", 700)   # the active layer
    # the contrast limits move: so do the ticks, in real values
    P.contrast_limits = (-2.5, -1.0)
    _settle()
    values = [v for v, _ in bars.ticks(P.name)]
    assert values[0] >= 10 ** -2.5 * (1 - 1e-9) and values[-1] <= 0.1 * (1 + 1e-9)
    assert 1e-2 in values and len(values) >= 2
    assert bars.bars[P.name].get_xlim() == pytest.approx((10 ** -2.5, 0.1))
    # the colormap and gamma are the layer's
    P.colormap = "magma"
    _settle()
    mesh = bars.bars[P.name].collections[0]
    assert mesh.cmap(1.0) == pytest.approx(tuple(P.colormap.map(np.array([1.0]))[0]))
    assert mesh.cmap(0.0) == pytest.approx(tuple(P.colormap.map(np.array([0.0]))[0]))


@needs_display
@settings_in_memory
def test_the_bars_follow_the_active_layer_and_the_layers_shown(viewer, run_file):
    app.open_run(run_file, viewer, widgets=False)
    bars = _bars(viewer)
    _settle()
    shown = [la.name for la in reversed(list(viewer.layers))
             if la.visible and la._type_string == "image" and la.name != P_NAME]
    assert list(bars.bars) == [P_NAME] + shown     # the active layer first
    # a hidden log layer made active gets a bar, in its unit
    hgf = viewer.layers["hgf (log₁₀)"]
    assert not hgf.visible
    viewer.layers.selection.active = hgf
    _settle()
    unit = hgf.metadata["units"].split(" ", 1)[1]
    assert unit and not unit.startswith("log")
    assert list(bars.bars)[0] == hgf.name
    ax = bars.bars[hgf.name]
    assert ax.get_title(loc="left") == f"hgf ({unit}), hidden"
    lo, hi = hgf.contrast_limits
    assert ax.get_xlim() == pytest.approx((10 ** lo, 10 ** hi))
    for value, label in bars.ticks(hgf.name):
        assert 10 ** lo * (1 - 1e-9) <= value <= 10 ** hi * (1 + 1e-9)
        assert "10^{" in label
    # a linear layer: its own values, its unit
    oxygen = viewer.layers["oxygen"]
    oxygen.visible = True
    oxygen.contrast_limits = (0.0, 40.0)
    _settle()
    assert bars.bars["oxygen"].get_title(loc="left") == \
        f"oxygen ({oxygen.metadata['units']})"
    ticks = bars.ticks("oxygen")
    values = [v for v, _ in ticks]
    assert values[0] == 0.0 and values[-1] == 40.0 and len(values) >= 3
    assert [float(t.replace("−", "-")) for _, t in ticks] == pytest.approx(values)
    assert bars.bars["oxygen"].get_xscale() == "linear"
    # hidden again and no longer active: its bar goes
    viewer.layers.selection.active = viewer.layers[P_NAME]
    oxygen.visible = False
    _settle()
    assert "oxygen" not in bars.bars and hgf.name not in bars.bars


@needs_display
@settings_in_memory
def test_a_slider_step_does_not_redraw_the_bars(viewer, run_file):
    app.open_run(run_file, viewer, widgets=False)
    bars = _bars(viewer)
    _settle()
    draws = bars.draws
    for i in range(len(viewer.layers[P_NAME].data)):
        viewer.dims.set_current_step(0, i)
        QApplication.processEvents()
    _settle()
    assert bars.draws == draws
