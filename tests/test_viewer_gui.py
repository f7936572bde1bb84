"""The napari viewer on a real (virtual) display: screenshots, widgets, live runs.

Needs napari and an X display: CI installs Xvfb and pytest-xvfb starts it. Qt's
``offscreen`` platform cannot draw napari's canvas (no OpenGL), so it is not used.
"""
import time

import numpy as np
import pytest

from qt_support import napari, process, require_display, shown_viewer, wait  # noqa: E402

require_display()

import h5py  # noqa: E402
from matplotlib.backend_bases import MouseEvent  # noqa: E402
from qtpy.QtCore import QTimer  # noqa: E402

from spatialdtp import api  # noqa: E402
from spatialdtp.run.simulation import RunInterrupted  # noqa: E402
from spatialdtp.viewer import app  # noqa: E402
from spatialdtp.viewer import layers as vlayers  # noqa: E402
from spatialdtp.viewer import ranges  # noqa: E402
from spatialdtp.viewer.live import LiveSession, run_live  # noqa: E402
from spatialdtp.viewer.runfile import RunFile, RunFileWarning  # noqa: E402
from spatialdtp.viewer.widgets import NicheWidget, PopulationWidget  # noqa: E402

pytestmark = pytest.mark.usefixtures("napari_settings_in_memory")
CAF_RGB = np.array([0x00, 0x9E, 0x73])   # layers.PALETTE["caf_niche"]


_process, _wait = process, wait   # the shared Qt event-loop helpers


@pytest.fixture(scope="module")
def run3d(tmp_path_factory):
    path = tmp_path_factory.mktemp("gui3d") / "run.h5"
    api.simulation(["experiment=quick", "tissue=spheroid3d", "grid.shape=[16,16,16]",
                    "run.days=0.5", "run.plot=false"]).run_until(path=path)
    return path


@pytest.fixture()
def viewer():
    with shown_viewer(1000, 700) as v:
        yield v


def _canvas(viewer):
    _process(0.2)
    return np.asarray(viewer.screenshot(canvas_only=True, flash=False))[..., :3]


def _caf_pixels(image):
    return int(np.sum(np.all(np.abs(image.astype(int) - CAF_RGB) <= 12, axis=-1)))


# --------------------------------------------------------------------------- reading
def test_napari_opens_a_run_with_the_plugin_in_um_and_days(viewer, quick_run_40):
    added = viewer.open(str(quick_run_40), plugin="spatialdtp")
    assert {layer.name for layer in added} >= {"P persister (log₁₀)", "niches", "vessels",
                                                "protection", "oxygen"}
    assert viewer.dims.axis_labels[0] == "time (days)"
    P = viewer.layers["P persister (log₁₀)"]
    assert [str(u) for u in P.units] == ["day", "micrometer", "micrometer"]
    assert P.scale[1:] == pytest.approx([20.0, 20.0])
    assert viewer.layers["niches"].data.shape[0] == P.data.shape[0]


def test_a_screenshot_of_a_run_shows_its_caf_niches(viewer, quick_run_40):
    app.open_run(quick_run_40, viewer, frame=0, widgets=False)
    with RunFile(quick_run_40) as run:
        F, M = run.frame("F", 0), run.frame("M", 0)
        threshold = run.cfg.run.niche_threshold * run.capacity      # cells/voxel
        assert np.any((F + M >= threshold) & (F >= M))            # a CAF niche
    image = _canvas(viewer)
    assert image.std() > 10                                   # not blank
    with_niches = _caf_pixels(image)
    viewer.layers["niches"].visible = False
    without = _caf_pixels(_canvas(viewer))
    assert with_niches > 200 and without < with_niches / 20   # the green is the niche


def test_a_3d_run_opens_in_3d_reading_only_the_frame_shown(viewer, run3d, monkeypatch):
    frames_read = {}
    original = h5py.Dataset.__getitem__

    def recording(self, key):
        if self.name.startswith("/fields/"):
            k = key[0] if isinstance(key, tuple) else key   # an index or a frame slice
            frames_read.setdefault(self.name.rsplit("/", 1)[1], []).append(
                k if isinstance(k, (int, np.integer)) else k.start)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    viewer.open(str(run3d), plugin="spatialdtp")
    _wait(lambda: viewer.dims.ndisplay == 3, timeout=5)
    assert viewer.layers["P persister (log₁₀)"].data.shape[1:] == (16, 16, 16)
    assert _canvas(viewer).std() > 5
    # napari read the shown layers at the time point shown (and at frame 0, where it
    # slices a layer as it is added), never the whole run: big runs open fast. Opening
    # read each field once at the frames its contrast limits are fitted to.
    with h5py.File(run3d, "r") as f:
        sample = ranges.sample_indices(len(f["time"]))
    shown = viewer.dims.current_step[0]
    assert shown == 1
    cells = {"S", "P", "R", "F", "M"}
    for name, read in frames_read.items():
        beyond = list(read)
        for i in sample:
            beyond.remove(i)         # the sample, once
        if name in cells:            # shown (or derived from shown ones: niches)
            assert set(beyond) <= {0, shown}, (name, read)
        else:                        # hidden: nothing beyond the sample
            assert beyond == [], (name, read)


def test_a_foreign_hdf5_file_is_refused(viewer, tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["image"] = np.ones((8, 8))
    with pytest.raises(ValueError, match="refused"):
        viewer.open(str(path), plugin="spatialdtp")
    assert len(viewer.layers) == 0


def test_a_truncated_run_file_opens_with_a_warning(viewer, quick_run_40, tmp_path):
    path = tmp_path / "cut.h5"
    data = quick_run_40.read_bytes()
    # cut inside the last frame (after the start of its last field's chunk), wherever the
    # frames sit in the file: a fixed fraction of the file depends on how much comes after
    # them (checkpoint, summary)
    with h5py.File(quick_run_40, "r") as f:
        cut = max(ds.id.get_chunk_info(ds.id.get_num_chunks() - 1).byte_offset
                  for ds in f["fields"].values()) + 16
    path.write_bytes(data[:cut])
    with pytest.warns(RunFileWarning, match="cut short"):
        viewer.open(str(path), plugin="spatialdtp")
    with h5py.File(quick_run_40, "r") as f:
        n_full = len(f["time"])
    assert 1 <= viewer.layers["P persister (log₁₀)"].data.shape[0] < n_full
    assert _canvas(viewer).std() > 10


# --------------------------------------------------------------------------- widgets
def _click(widget, ax, day):
    x, y = ax.transData.transform((day, np.mean(ax.get_ylim())))
    widget.canvas.callbacks.process(
        "button_press_event", MouseEvent("button_press_event", widget.canvas, x, y, button=1))


def test_the_widgets_follow_the_time_slider_and_a_click_moves_it(viewer, quick_run_40):
    app.open_run(quick_run_40, viewer, frame=0)
    (population,) = [w for w in viewer.window.dock_widgets.values()
                     if isinstance(w, PopulationWidget)]
    (niche,) = [w for w in viewer.window.dock_widgets.values() if isinstance(w, NicheWidget)]
    days = population.time.days
    assert population.source is niche.source and len(days) >= 3
    assert population.marker_day() == pytest.approx(days[0])

    viewer.dims.set_current_step(0, 2)                      # the slider moves...
    assert population.marker_day() == pytest.approx(days[2])
    assert niche.marker_day() == pytest.approx(days[2])
    _wait(lambda: niche.profile_frame == 2, timeout=5)      # ...and the profile follows
    expected, contrast = niche.compute_profile(2)
    assert np.allclose(niche.profile.rate, expected.rate, equal_nan=True)
    assert niche.contrast.near_voxels == contrast.near_voxels

    _click(population, population._time_axes[0], days[-1])  # a click moves the slider
    assert population.current_frame() == len(days) - 1
    assert viewer.dims.current_step[0] == len(days) - 1
    assert population.marker_day() == pytest.approx(days[-1])


# --------------------------------------------------------------------------- live runs
def test_a_live_run_updates_the_viewer_while_the_window_stays_responsive(viewer, tmp_path):
    sim = api.simulation(["experiment=quick", "grid.shape=[48,48]", "run.days=3",
                          "run.plot=false"])
    session = LiveSession(sim, tmp_path / "live.h5", viewer)
    P = viewer.layers["P persister (log₁₀)"]
    assert P.data.shape[0] == 1
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(50)
    started = time.monotonic()
    session.start()
    _wait(lambda: session.done, timeout=60)
    ran = time.monotonic() - started
    _process(0.6)
    timer.stop()
    assert session.result()["final_burden"] > 0
    assert P.data.shape[0] == len(sim.observables()["time"][::18])     # every 6 h frame
    assert viewer.dims.current_step[0] == P.data.shape[0] - 1           # slider followed
    viewer.layers["oxygen"].visible = True      # a hidden layer gets the frames when shown
    assert viewer.layers["oxygen"].data.shape[0] == P.data.shape[0]
    population = session.widgets[0]
    assert population._lines["P"].get_xdata().size == len(sim.observables()["time"])
    # The window kept handling events while the simulation ran: a 50 ms timer never
    # waited seconds (the two threads share one interpreter lock, so it waits some).
    gaps = np.diff(ticks)
    assert ran > 1 and len(ticks) >= ran / 2 and gaps.max() < 3.0, (ran, len(ticks), gaps)
    with h5py.File(tmp_path / "live.h5", "r") as f:
        assert f.attrs["status"] == "complete" and len(f["time"]) == P.data.shape[0]


def test_closing_the_live_window_stops_the_run_cleanly(tmp_path, monkeypatch):
    path = tmp_path / "live.h5"
    sim = api.simulation(["experiment=quick", "run.days=30", "run.plot=false"])
    closer = QTimer()

    def close_after_two_frames():
        v = napari.current_viewer()
        if v is not None and len(v.layers) and v.layers["niches"].data.shape[0] >= 3:
            closer.stop()
            v.close()

    closer.timeout.connect(close_after_two_frames)
    closer.start(100)
    with pytest.raises(RunInterrupted):
        run_live(sim, path)                  # returns when the window is closed
    assert sim.t < 30 * 1440
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "interrupted"
        assert f["checkpoint"].attrs["time"] == pytest.approx(sim.t)
        n = len(f["time"])
    assert n >= 3
    resumed = api.resume(path, days=sim.t / 1440 + 0.25)   # the file is intact: it resumes
    assert resumed.t == pytest.approx(sim.t)


# --------------------------------------------------------------------------- command
def test_spatialdtp_view_writes_a_screenshot(quick_run_40, tmp_path, capsys):
    out = tmp_path / "view.png"
    assert app.main([str(quick_run_40), "--screenshot", str(out), "--size", "900", "600"]) == 0
    from PIL import Image

    image = np.asarray(Image.open(out))[..., :3]
    assert image.shape[0] >= 600 and image.shape[1] >= 900 and image.std() > 10


def test_spatialdtp_view_refuses_a_foreign_file(tmp_path, capsys):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with pytest.raises(SystemExit) as stop:
        app.main([str(path)])
    assert stop.value.code == 2
    assert "not a spatialdtp run file" in capsys.readouterr().err


def test_layer_source_is_found_from_the_viewer(viewer, quick_run_40):
    added = viewer.open(str(quick_run_40), plugin="spatialdtp")
    assert all(isinstance(vlayers.source_of(layer), RunFile) for layer in added)
