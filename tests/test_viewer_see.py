"""What the viewer shows (issue 16): persisters distinguishable on screen, time in days,
run files opened the way users open them, derived layers locked.

Screens are checked on a run file whose cell, stromal and vessel maps were written by hand
(:func:`painted`): regions of known P, P with R, CAF and TAM niches and vessels, so each
probed pixel has one expected colour. Needs napari and an X display (pytest-xvfb).
"""
import colorsys

import numpy as np
import pytest

from qt_support import napari, require_display, shown_viewer  # noqa: E402,F401

require_display()

import h5py  # noqa: E402
from napari.plugins.utils import get_preferred_reader  # noqa: E402
from napari.errors import MultipleReaderError  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from spatialdtp import api  # noqa: E402
from spatialdtp.viewer import app, canvas, maps  # noqa: E402
from spatialdtp.viewer import layers as vlayers  # noqa: E402
from spatialdtp.viewer.colorbars import ColorbarWidget  # noqa: E402
from spatialdtp.viewer.runfile import RunFile  # noqa: E402
from spatialdtp.viewer.widgets import PopulationWidget  # noqa: E402

pytestmark = pytest.mark.usefixtures("napari_settings_in_memory")

P_NAME = "P persister (log₁₀)"
DAYS = [0.0, 0.25, 0.5, 0.75, 1.0]     # experiment=quick: one day, a frame every 6 hours


def _process(n=20):
    for _ in range(n):
        QApplication.processEvents()


# --------------------------------------------------------------------------- the run file
# Regions of the painted run (rows, columns of the 40 × 40 grid), away from the canvas
# corners where the overlays sit
P_ALONE = (slice(9, 14), slice(9, 14))
MIXED = (slice(9, 17), slice(17, 25))        # P down the rows, R across the columns
CAF = (slice(19, 27), slice(9, 17))          # a CAF niche, P inside its outline
VESSEL = (slice(19, 27), slice(19, 27))      # a vessel block, P inside its outline
TAM = (slice(29, 33), slice(9, 17))
INSIDE = (slice(21, 25), slice(11, 15)), (slice(21, 25), slice(21, 25))


@pytest.fixture(scope="module")
def painted(quick_run_40, tmp_path_factory):
    """The quick 40² run with S, P, R, F, M and the vessels replaced by known maps (the
    same in every frame)."""
    path = tmp_path_factory.mktemp("painted") / "run.h5"
    path.write_bytes(quick_run_40.read_bytes())
    with RunFile(quick_run_40) as run:
        cap = run.capacity
        threshold = run.cfg.run.niche_threshold * cap
    shape = (40, 40)
    cells = {c: np.zeros(shape, np.float32) for c in "SPRFM"}
    vessels = np.zeros(shape, np.float32)
    cells["P"][P_ALONE] = 0.5 * cap
    ramp = 10.0 ** np.linspace(-3, np.log10(0.5), 8)        # 1e-3 to 0.5 of capacity
    cells["P"][MIXED] = cap * ramp[:, None]
    cells["R"][MIXED] = cap * ramp[None, :]
    cells["F"][CAF] = 2 * threshold
    cells["M"][TAM] = 2 * threshold
    vessels[VESSEL] = 1.0
    for inside in INSIDE:
        cells["P"][inside] = 0.5 * cap
    with h5py.File(path, "r+") as f:
        for c, value in cells.items():
            f["fields"][c][...] = value[None]
        f["static/vessels"][...] = vessels
    return path


@pytest.fixture()
def viewer():
    with shown_viewer(1000, 700) as v:
        yield v


def _canvas(viewer, overlays=True):
    """The canvas as RGB; without the overlays (legend, colorbars, stamp) if asked."""
    hidden = []
    if not overlays:
        for layer in viewer.layers:
            if getattr(layer, "colorbar", None) is not None and layer.colorbar.visible:
                layer.colorbar.visible = False
                hidden.append(layer.colorbar)
        for key, overlay in viewer.canvas.overlays.items():
            if not key.startswith("_") and overlay.visible:
                overlay.visible = False
                hidden.append(overlay)
    _process()
    image = np.asarray(viewer.screenshot(canvas_only=True, flash=False))[..., :3]
    for overlay in hidden:
        overlay.visible = True
    return image


def _pixel(viewer, image, row, col):
    """The colour at the centre of voxel (row, col), averaged over 3 × 3 pixels."""
    layer = viewer.layers[P_NAME]
    world = np.asarray(layer.translate[1:]) + np.array([row, col]) * np.asarray(layer.scale[1:])
    camera = viewer.scene.camera
    size = np.asarray(viewer.canvas.size, dtype=float)          # (height, width)
    ratio = np.asarray(image.shape[:2]) / size
    centre = np.asarray(camera.center[-2:])
    y, x = ((world - centre) * camera.zoom + size / 2) * ratio
    y, x = int(round(y)), int(round(x))
    return image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(axis=0)


def _hue(colour: str | np.ndarray):
    rgb = np.asarray([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) if isinstance(colour, str) \
        else np.asarray(colour)
    h, s, v = colorsys.rgb_to_hsv(*(rgb / 255.0))
    return 360.0 * h, s, v


def _hue_gap(a, b):
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


HUED = ("P", "R", "caf_niche", "tam_niche", "vessels")
OUTLINES = ("caf_niche", "tam_niche", "vessels")
# A pixel whose saturation is below half the least saturated outline colour of the palette
# cannot be taken for an outline: it reads as grey (S, or P and R mixed).
GREY = 0.5 * min(_hue(vlayers.PALETTE[k])[1] for k in OUTLINES)


def _classify(rgb) -> str:
    """The palette entry whose hue is nearest the pixel's, or "grey"; the boundaries are
    the midpoints between the palette's hues."""
    h, s, v = _hue(rgb)
    if s < GREY or v < 0.1:
        return "grey"
    return min(HUED, key=lambda k: _hue_gap(h, _hue(vlayers.PALETTE[k])[0]))


# --------------------------------------------------------------------------- palette
def test_palette_hues_are_apart_and_cell_mixtures_stay_off_the_outline_hues():
    hues = {k: _hue(vlayers.PALETTE[k])[0] for k in HUED}
    # every outline hue at least 25° from P's and from every other (neighbours on the
    # hue circle of Okabe–Ito's set are 25–40° apart)
    for outline in OUTLINES:
        assert _hue_gap(hues[outline], hues["P"]) >= 25, outline
        assert _hue_gap(hues[outline], hues["R"]) >= 25, outline
    # P and R are complementary: any additive mix of them keeps P's hue, R's, or no hue
    assert _hue_gap(hues["P"], hues["R"]) >= 180 - 5
    for a in np.linspace(0, 1, 11):
        for b in np.linspace(0, 1, 11):
            rgb = np.clip(a * np.asarray(_rgb(vlayers.PALETTE["P"]))
                          + b * np.asarray(_rgb(vlayers.PALETTE["R"])), 0, 255)
            assert _classify(rgb) in ("P", "R", "grey"), (a, b, rgb)


def _rgb(colour):
    return [int(colour[i:i + 2], 16) for i in (1, 3, 5)]


def test_persisters_keep_their_hue_beside_and_inside_niches_and_vessels(viewer, painted):
    app.open_run(painted, viewer, frame=2, widgets=False)
    image = _canvas(viewer, overlays=False)
    probes = {
        "P alone": ((11, 11), "P"),
        "P inside a CAF niche": ((22, 12), "P"),
        "P inside a vessel's outline": ((22, 22), "P"),
        "CAF niche outline": ((19, 12), "caf_niche"),
        "TAM niche outline": ((29, 12), "tam_niche"),
        "vessel outline": ((19, 22), "vessels"),
    }
    seen = {name: _classify(_pixel(viewer, image, *rc)) for name, (rc, _) in probes.items()}
    assert seen == {name: want for name, (_, want) in probes.items()}, {
        name: (_pixel(viewer, image, *rc).round(), _hue(_pixel(viewer, image, *rc)))
        for name, (rc, _) in probes.items()}
    # P mixed with R at every pair of levels: never the colour of an outline
    mixed = {(r, c): _classify(_pixel(viewer, image, r, c))
             for r in range(MIXED[0].start, MIXED[0].stop)
             for c in range(MIXED[1].start, MIXED[1].stop)}
    assert set(mixed.values()) <= {"P", "R", "grey"}, mixed
    assert "P" in mixed.values()                      # where P outweighs R, it is yellow


def test_persister_limits_span_the_run_not_the_capacity(painted):
    layers = {meta["name"]: meta for _, meta, _ in vlayers.layer_data(RunFile(painted))}
    with RunFile(painted) as run:
        cap = run.capacity
    lo, hi = layers[P_NAME]["contrast_limits"]
    # the painted P goes from 1e-3 to 0.5 of capacity: its top is the top of the ramp,
    # and the ramp spans no more than those 2.7 decades (the fixed limits spanned 5)
    assert hi == pytest.approx(np.log10(0.5 * cap), abs=1e-3)
    assert np.log10(1e-3 * cap) - 1e-3 <= lo < hi


# --------------------------------------------------------------------------- enrichment
def test_enrichment_is_the_persister_share_over_the_tissue_share_by_hand():
    S = np.array([[3.0, 1.0], [0.0, 0.0]])
    P = np.array([[1.0, 1.0], [2.0, 0.0]])
    R = np.array([[0.0, 2.0], [1.0, 0.0]])
    # tumour 4, 4, 3, 0 cells; persister shares 1/4, 1/4, 2/3, undefined; tissue 4/11
    expected = np.array([[11 / 16, 11 / 16], [22 / 12, np.nan]])
    assert np.allclose(maps.enrichment(S, P, R), expected, equal_nan=True)
    thin = maps.enrichment(S, P, R, floor=0.8)          # 3 cells < 0.8 × 4: below
    assert np.isnan(thin[1, 0]) and thin[0, 0] == pytest.approx(11 / 16)
    assert np.isnan(maps.enrichment(S, 0 * P, R)).all()            # no persister at all


def test_the_enrichment_layer_shows_log2_of_the_ratio_centred_at_one(painted):
    layers = {meta["name"]: (data, meta) for data, meta, _ in vlayers.layer_data(RunFile(painted))}
    data, meta = layers[vlayers.ENRICHMENT]
    lo, hi = meta["contrast_limits"]
    assert lo == -hi and hi >= 1.0                    # white at 0 = log2(1)
    with RunFile(painted) as run:
        S, P, R = (run.frame(c, 1).astype(np.float64) for c in "SPR")
    shown = np.asarray(data[1])
    with np.errstate(divide="ignore"):
        assert shown == pytest.approx(np.log2(maps.enrichment(S, P, R, vlayers.TUMOUR_FLOOR)),
                                      nan_ok=True, rel=1e-5)
    # where only persisters live the share is 1: enrichment 1 / (tissue share)
    share = P.sum() / (S + P + R).sum()
    assert shown[P_ALONE] == pytest.approx(np.log2(1 / share), rel=1e-5)
    assert np.isnan(shown[S + P + R == 0]).all()       # no tumour: undefined, transparent


# --------------------------------------------------------------------------- days
def test_day_stamp_slider_and_status_read_days(viewer, quick_run_40):
    app.open_run(quick_run_40, viewer, frame=2, widgets=False)
    _process()
    assert canvas.day_stamp(viewer).text == "day 0.5"
    assert canvas.day_stamp(viewer).visible
    slider = viewer.window._qt_viewer.dims.slider_widgets[0]
    assert (slider.curslice_label.text(), slider.totslice_label.text()) == ("0.5", "1 d")
    assert viewer.dims.point[0] == pytest.approx(0.5)       # napari's world time: days
    status = viewer.layers[P_NAME].get_status(viewer.dims.point, world=True)
    assert float(status["coords"].strip("[]").split(",")[0]) == 0.5   # the status bar
    viewer.dims.set_current_step(0, 3)
    _process()
    assert canvas.day_stamp(viewer).text == "day 0.75"
    assert slider.curslice_label.text() == "0.75"
    # typing a day in the slider's box goes to the frame of that day
    slider.curslice_label.setText("0.25")
    slider.curslice_label.editingFinished.emit()
    assert viewer.dims.current_step[0] == 1
    # the stamp is drawn on the canvas: screenshots and movies carry it
    with_stamp = _canvas(viewer)
    canvas.day_stamp(viewer).visible = False
    without = _canvas(viewer)
    corner = (slice(0, 60), slice(0, 160))
    assert np.abs(with_stamp[corner].astype(int) - without[corner]).max() > 100


def test_day_chooses_the_frame_nearest_that_day(viewer, quick_run_40, monkeypatch, tmp_path):
    app.open_run(quick_run_40, viewer, day=0.6, widgets=False)
    assert viewer.dims.current_step[0] == 2                  # day 0.5 is nearest 0.6
    shown = {}
    original = app.open_run

    def recording(*args, **kwargs):
        v = original(*args, **kwargs)
        shown["step"], shown["stamp"] = v.dims.current_step[0], canvas.day_stamp(v).text
        return v

    monkeypatch.setattr(app, "open_run", recording)
    out = tmp_path / "day.png"
    assert app.main([str(quick_run_40), "--day", "0.25", "--no-widgets", "--screenshot",
                     str(out)]) == 0
    assert shown == {"step": 1, "stamp": "day 0.25"}
    with pytest.raises(SystemExit):
        app.main([str(quick_run_40), "--day", "0.25", "--frame", "1"])   # one or the other
    windows = len(napari.Viewer._instances) if hasattr(napari.Viewer, "_instances") else None
    with pytest.raises(SystemExit) as stop:
        app.main([str(quick_run_40), "--day", "30"])                      # past the run's end
    assert stop.value.code == 2
    if windows is not None:                                            # no window left open
        assert len(napari.Viewer._instances) == windows


def test_the_run_opens_where_the_plots_marker_is_inside_the_axes(viewer, quick_run_40):
    app.open_run(quick_run_40, viewer)
    (population,) = [w for w in viewer.window.dock_widgets.values()
                     if isinstance(w, PopulationWidget)]
    ax = population._time_axes[0]
    lo, hi = ax.get_xlim()
    inside = (population.marker_day() - lo) / (hi - lo)
    # not on either edge, where the axes' frame hides it: at least the inset in from the end
    assert vlayers.MARKER_INSET - 1e-9 <= inside <= 1 - vlayers.MARKER_INSET + 1e-9
    assert viewer.dims.current_step[0] == len(DAYS) - 2       # the latest such frame


# --------------------------------------------------------------------------- opening
def test_viewer_open_picks_the_plugin_without_asking(viewer, quick_run_40):
    path = str(quick_run_40)
    assert get_preferred_reader(path) is None           # a fresh napari: two readers...
    with pytest.raises(MultipleReaderError):
        viewer.open(path, plugin=None)                  # ...and it asks
    canvas.prefer_this_reader()
    assert get_preferred_reader(path) == "spatialdtp"
    added = viewer.open(path, plugin=None)              # what `napari run.h5` does
    assert P_NAME in {layer.name for layer in added}
    _process()
    assert viewer.layers.selection.active.name == P_NAME
    assert [layer.name for layer in viewer.layers.selection] == [P_NAME]
    assert canvas.scale_bar(viewer).visible
    assert canvas.day_stamp(viewer).text == "day 0.75"


def test_using_the_plugin_once_makes_it_the_reader_of_run_files(viewer, quick_run_40, tmp_path):
    other = tmp_path / "my_experiment.h5"
    other.write_bytes(quick_run_40.read_bytes())
    viewer.open(str(other), plugin="spatialdtp")        # chosen once in the dialog
    assert get_preferred_reader(str(quick_run_40)) == "spatialdtp"    # every run.h5
    assert get_preferred_reader(str(other)) == "spatialdtp"        # and this file
    viewer.layers.clear()
    viewer.window._qt_viewer._qt_open([str(other)], stack=False)   # the `napari` command
    assert P_NAME in viewer.layers


def test_spatialdtp_view_records_the_reader(quick_run_40, tmp_path):
    assert get_preferred_reader(str(quick_run_40)) is None
    assert app.main([str(quick_run_40), "--no-widgets", "--screenshot",
                     str(tmp_path / "v.png")]) == 0
    assert get_preferred_reader(str(quick_run_40)) == "spatialdtp"


@pytest.mark.parametrize("how", ["spatialdtp-view", "plugin"])
def test_derived_layers_are_locked_and_a_cell_layer_is_active(viewer, quick_run_40, how):
    if how == "plugin":
        viewer.open(str(quick_run_40), plugin="spatialdtp")
    else:
        app.open_run(quick_run_40, viewer, widgets=False)
    _process()
    derived = [la for la in viewer.layers if canvas.role_of(la) in vlayers.DERIVED_ROLES]
    assert {la.name for la in derived} == {"niches", "vessels", vlayers.ENRICHMENT,
                                           "protection"}
    assert not any(la.editable for la in derived)
    assert viewer.layers.selection.active.name == P_NAME
    assert canvas.scale_bar(viewer).visible
    legend = {viewer.canvas.overlays[canvas.LEGEND_KEY.format(i)].text:
              tuple(np.round(viewer.canvas.overlays[canvas.LEGEND_KEY.format(i)].color[:3] * 255))
              for i in range(len(canvas.LEGEND))}
    assert legend["P persister"] == tuple(_rgb(vlayers.PALETTE["P"]))
    assert legend["CAF niche (outline)"] == tuple(_rgb(vlayers.PALETTE["caf_niche"]))
    assert legend["vessels (outline)"] == tuple(_rgb(vlayers.PALETTE["vessels"]))
    # the log layers' colorbars are the Colorbars widget's, in cells/voxel (napari's
    # would read the log); the linear layers keep napari's too
    assert not viewer.layers[P_NAME].colorbar.visible
    assert viewer.layers["oxygen"].colorbar.visible
    (bars,) = [w for w in viewer.window.dock_widgets.values() if isinstance(w, ColorbarWidget)]
    _process()
    assert P_NAME in bars.bars
    niches = viewer.layers["niches"]
    niches.mode = "paint"                                # napari refuses: not editable
    assert niches.mode == "pan_zoom"
    niches.data = niches.data                            # new data (live runs) keep it locked
    assert not niches.editable


# --------------------------------------------------------------------------- 3D
@pytest.fixture(scope="module")
def run3d(tmp_path_factory):
    path = tmp_path_factory.mktemp("see3d") / "run.h5"
    api.simulation(["experiment=quick", "tissue=spheroid3d", "grid.shape=[16,16,16]",
                    "run.days=0.5", "run.plot=false"]).run_until(path=path)
    return path


def test_a_3d_run_is_framed_whole_at_a_slant(viewer, run3d):
    app.open_run(run3d, viewer, widgets=False)
    assert viewer.dims.ndisplay == 3
    assert viewer.scene.camera.angles == pytest.approx(canvas.VOLUME_VIEW)
    P = viewer.layers[P_NAME]
    assert P.bounding_box.visible                        # the block's outline is drawn
    enrichment = viewer.layers[vlayers.ENRICHMENT]
    assert enrichment.rendering == "iso"
    assert enrichment.iso_threshold >= np.log2(vlayers.LEAST_ISO)
    image = _canvas(viewer, overlays=False).astype(int)
    drawn = image.max(axis=-1) > 40
    assert drawn.sum() > 0.05 * drawn.size
    # the whole slanted block lies inside the canvas: nothing drawn in a border of 2 %
    # (napari's fit leaves 5 % of the canvas as margin)
    band = max(2, int(0.02 * min(drawn.shape)))
    edges = np.concatenate([drawn[:band].ravel(), drawn[-band:].ravel(),
                            drawn[:, :band].ravel(), drawn[:, -band:].ravel()])
    assert not edges.any()


def test_slices_of_a_3d_run_outline_its_niches_and_vessels(viewer, run3d):
    """Viewed as slices (2D display) the niche and vessel volumes are drawn as each
    slice's outlines, as in a 2D run; in 3D as volumes (napari has no 3D contours)."""
    app.open_run(run3d, viewer, widgets=False)
    outlined = [viewer.layers["niches"], viewer.layers["vessels"]]
    assert [la.contour for la in outlined] == [0, 0]
    viewer.dims.ndisplay = 2
    _process()
    assert [la.contour for la in outlined] == [canvas.SLICE_OUTLINE] * 2
    # the slice through the widest niche section, as napari draws it: only its rim
    niches = viewer.layers["niches"]
    t = viewer.dims.current_step[0]
    volume = np.asarray(niches.data[t]) > 0
    z = int(np.argmax(volume.reshape(volume.shape[0], -1).sum(axis=1)))
    viewer.dims.set_current_step(1, z)
    _process()
    section = np.asarray(niches._slice.image.raw) > 0
    drawn = np.asarray(niches._slice.image.view) > 0
    assert section.sum() == volume[z].sum() >= 9, "no niche section with an inside"
    assert 0 < drawn.sum() < section.sum()               # the rim, not the inside
    assert not (drawn & ~section).any()
    viewer.dims.ndisplay = 3                     # volumes again (napari: no 3D contours)
    _process()
    assert [la.contour for la in outlined] == [0, 0]
