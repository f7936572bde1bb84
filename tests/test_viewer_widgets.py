"""The dock widgets: the niche panel on the run's own measure, distance profiles with known
answers, the end points of the run summary on the curves, titles, toolbar and CSV, and
what a slider step costs (only the markers are redrawn).

The profile tests need no display; the rest need napari and an X display (pytest-xvfb).
"""
import csv
import shutil
import time

import numpy as np
import pytest

from spatialdtp.run import niche
from spatialdtp.run.response_marks import adaptive_thresholds, mark_response


# --------------------------------------------------------------------------- profiles
def _synthetic(P_of):
    """A disc of tumour (radius 12 voxels of 10 µm, full at capacity 1) with a 2×2 CAF
    niche halfway between centre and edge, so that strata of distance to the edge hold
    voxels both near it and far from it; P = P_of(distance to niche, stratum) · T0."""
    n, dx = 32, 10.0
    y, x = np.mgrid[0:n, 0:n]
    T0 = np.where((y - 15.5) ** 2 + (x - 15.5) ** 2 <= 12.0 ** 2, 1.0, 0.0)
    F = np.zeros((n, n))
    F[15:17, 9:11] = 1.0
    M = np.zeros((n, n))
    g = niche.NicheGeometry(threshold=0.5, near=2 * dx, far=4 * dx, edge_bin=3 * dx, dx=dx,
                            capacity=1.0)
    ref = niche.reference_of(T0, g)
    d = niche.niche_distance(F, M, g)
    P = P_of(d, np.asarray(ref.stratum)) * T0
    return P, F, M, ref, g, d


def _high_near_niche(d, stratum):
    # high only within 2 voxels (20 µm) of the niche, flat everywhere else
    return np.where(d <= 20.0 + 1e-9, 0.2, 0.01)


def test_the_niche_profile_is_high_only_near_the_niche():
    P, F, M, ref, g, d = _synthetic(_high_near_niche)
    # distances are multiples of dx·sqrt(k): 20 µm (k = 4) is in the first bin, 22.4 µm
    # (k = 5) in the second
    edges = np.array([0.0, 21.0, 30.0, 60.0, 90.0, 120.0, 200.0])
    profile = niche.niche_profile(P, F, M, ref, g, bins=edges)
    assert profile.counts[0] > 0 and np.all(profile.counts[1:5] > 0)
    assert profile.rate[0] == pytest.approx(0.2)
    assert profile.rate[1:5] == pytest.approx([0.01] * 4)


def test_the_edge_profile_is_flat_far_from_the_niche_and_high_near_it():
    P, F, M, ref, g, d = _synthetic(_high_near_niche)
    edge = niche.edge_profile(P, F, M, ref, g)
    assert ref.n_strata >= 4                       # 12 voxels deep, strata of 3 voxels
    has_far, has_near = edge.far_counts > 0, edge.near_counts > 0
    assert has_far.sum() >= 3 and has_near.any()
    assert edge.far_rate[has_far] == pytest.approx([0.01] * int(has_far.sum()))  # flat
    assert edge.near_rate[has_near] == pytest.approx([0.2] * int(has_near.sum()))
    # the whole bed of a stratum mixes the two by hand: near voxels at 0.2, the rest 0.01
    mixed = (0.2 * edge.near_counts + 0.01 * (edge.counts - edge.near_counts)) / edge.counts
    assert edge.rate == pytest.approx(mixed)
    assert np.any(edge.rate > 0.011) and np.any(np.isclose(edge.rate, 0.01))
    assert edge.edges[:-1] == pytest.approx(30.0 * np.arange(ref.n_strata))
    counts = [np.sum(np.asarray(ref.stratum) == s) for s in range(ref.n_strata)]
    assert list(edge.counts) == counts
    # the contrast weighs exactly these near and far rates: 0.2 / 0.01
    assert niche.niche_contrast(P, F, M, ref, g).value == pytest.approx(20.0)


def test_a_rim_effect_moves_near_and_far_alike():
    """P falls with depth below the tumour edge, whatever the niche: the edge profile
    shows it in both the near and the far voxels, and the contrast is 1."""
    def rim(d, stratum):
        return 0.04 / (1.0 + np.maximum(stratum, 0))

    P, F, M, ref, g, d = _synthetic(rim)
    edge = niche.edge_profile(P, F, M, ref, g)
    expected = 0.04 / (1.0 + np.arange(ref.n_strata))
    assert edge.rate == pytest.approx(expected)
    both = (edge.near_counts > 0) & (edge.far_counts > 0)
    assert edge.near_rate[both] == pytest.approx(edge.far_rate[both])
    assert niche.niche_contrast(P, F, M, ref, g).value == pytest.approx(1.0)
    # the unstratified profile is not flat: near the niche lie the deeper voxels, where
    # P is low, and the farthest voxels are at the rim across the disc, where it is high
    profile = niche.niche_profile(P, F, M, ref, g, bins=np.array([0.0, 21.0, 60.0, 300.0]))
    assert profile.rate[0] < profile.rate[-1]


def test_adaptive_thresholds_are_the_fractions_of_the_burden_at_the_drug_start():
    from matplotlib.figure import Figure

    from spatialdtp.cli import compose

    cfg = compose(["treatment=adaptive", "treatment.lead_in_days=2"])
    (drug,) = cfg.treatment.drugs
    s = cfg.treatment.drugs[drug].schedule
    t = np.arange(0.0, 6 * 1440.0, 360.0)
    burden = 1000.0 + t                                # the start is at 2 days
    start = (2 + s.start_day) * 1440.0
    (a,) = adaptive_thresholds(cfg, t, burden)
    base = 1000.0 + t[np.nonzero(t >= start)[0][0]]
    assert (a.baseline, a.stop, a.resume) == pytest.approx(
        (base, s.stop_fraction * base, s.resume_fraction * base))
    ax = Figure().subplots()
    mark_response(ax, {}, [a], {drug: "blue"})
    levels = {line.get_gid(): line.get_ydata()[0] for line in ax.get_lines()}
    assert levels == pytest.approx({f"adaptive-stop-{drug}": a.stop,
                                    f"adaptive-resume-{drug}": a.resume})


# --------------------------------------------------------------------------- GUI
# Without napari or a display only the tests above run: the module must not be skipped.
from qt_support import napari, needs_display, shown_viewer  # noqa: E402
from qt_support import process as _process, wait as _wait  # noqa: E402
if napari is not None:
    import h5py
    from matplotlib.layout_engine import ConstrainedLayoutEngine
    from qtpy.QtWidgets import QApplication

    from spatialdtp import api
    from spatialdtp.viewer import app, palette
    from spatialdtp.viewer.runfile import RunFile
    from spatialdtp.viewer.widgets import MARKER_GID, NicheWidget, PopulationWidget


@pytest.fixture(scope="module")
def niche_run(tmp_path_factory):
    """A 2D run whose niche contrast is defined (a tumour wide enough to have bed voxels
    far from niches), on an adaptive schedule (48×48 voxels of 20 µm, one day)."""
    path = tmp_path_factory.mktemp("widgets") / "run.h5"
    api.simulation(["experiment=quick", "grid.shape=[48,48]", "tissue.tumour.radius=300",
                    "run.niche_distance=20", "run.niche_far_distance=60",
                    "treatment=adaptive", "run.plot=false"]).run_until(path=path)
    return path


@pytest.fixture()
def viewer():
    with shown_viewer(1200, 800) as v:
        yield v


def _widgets(viewer):
    docked = list(viewer.window.dock_widgets.values())
    (population,) = [w for w in docked if isinstance(w, PopulationWidget)]
    (niche_w,) = [w for w in docked if isinstance(w, NicheWidget)]
    return population, niche_w


def _settled(widgets):
    """Both widgets fully drawn on screen, nothing pending."""
    _wait(lambda: all(w.full_draws > 0 and not w._stale for w in widgets))
    _process(0.1)
    _wait(lambda: all(w.full_draws > 0 and not w._stale for w in widgets))


@needs_display
def test_the_niche_panel_shows_the_measure_the_run_recorded(viewer, niche_run):
    app.open_run(niche_run, viewer, frame=-1)
    _, panel = _widgets(viewer)
    with RunFile(niche_run) as run:
        obs = run.observables()
        last = len(run.times) - 1
        t_last = run.times[last]
        g = niche.NicheGeometry.of(run.cfg.run, run.capacity, run.grid.dx)
        P, F, M = (np.asarray(run.frame(c, last), dtype=np.float64) for c in ("P", "F", "M"))
        ref = niche.reference_of(run.tumour_start(), g)
        expected = niche.niche_contrast(P, F, M, ref, g)
    _wait(lambda: panel.profile_frame == last)
    row = int(np.nonzero(obs["time"] == t_last)[0][0])     # the step that wrote the frame
    assert np.isfinite(expected.value)
    # the frame's contrast is niche.py's, and the one the run recorded at that step (the
    # run computed it on the state in memory, the panel on the frame stored as float32:
    # sums of float32 values agree to ~1e-6 relative)
    assert panel.contrast == expected
    assert panel.contrast.value == pytest.approx(obs["niche_contrast"][row], rel=1e-5)
    assert (panel.contrast.near_voxels, panel.contrast.far_voxels,
            panel.contrast.niche_voxels) == (obs["niche_near_voxels"][row],
                                             obs["niche_far_voxels"][row],
                                             obs["niche_voxels"][row])
    text = panel._frame_title.get_text()
    assert f"contrast {expected.value:.3g}" in text
    assert f"{expected.near_voxels} near, {expected.far_voxels} far" in text
    # over time: the recorded contrast and counts, unchanged
    assert np.array_equal(panel._index_line.get_ydata(), obs["niche_contrast"], equal_nan=True)
    assert np.array_equal(panel._count_lines["niche_far_voxels"].get_ydata(),
                          obs["niche_far_voxels"], equal_nan=True)
    # the profiles drawn are the frame's (per 1000 initial tumour cells)
    profile, edge, _ = panel.compute_frame(last)
    keep = np.isfinite(edge.far_rate)
    assert panel._edge_lines["far"].get_ydata() == pytest.approx(1e3 * edge.far_rate[keep])
    keep = (profile.counts > 0) & np.isfinite(profile.rate)
    assert panel._niche_line.get_ydata() == pytest.approx(1e3 * profile.rate[keep])


@needs_display
def test_the_population_panel_marks_the_summary_end_points(viewer, niche_run, tmp_path):
    # a run directory as Hydra leaves it: the title names the run's overrides
    run_dir = tmp_path / "12-00-00"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("- experiment=quick\n- treatment=adaptive\n")
    path = run_dir / "run.h5"
    shutil.copy(niche_run, path)
    app.open_run(path, viewer, frame=0)
    population, panel = _widgets(viewer)
    ax = population._ax
    marks = {line.get_gid(): line for line in ax.get_lines()}
    with h5py.File(path, "r") as f:
        summary = dict(f["summary"].attrs)
    threshold = float(summary["progression_threshold"])
    assert marks["progression-threshold"].get_ydata()[0] == pytest.approx(threshold)
    nadir = marks["nadir"]
    assert nadir.get_ydata()[0] == pytest.approx(float(summary["nadir"]))
    assert nadir.get_xdata()[0] == pytest.approx(float(summary["treatment_start_day"])
                                                 + float(summary["nadir_day"]))
    assert {"adaptive-stop-drug", "adaptive-resume-drug"} <= set(marks)
    plasma = {line.get_gid() for line in population._plasma_ax.get_lines()}
    assert "plasma-drug" in plasma
    # curves in the colours of the palette; both widgets titled with the run and overrides
    for key in ("S", "P", "R", "burden"):
        assert population._lines[key].get_color() == palette.CELL_COLOURS[key]
    for widget in (population, panel):
        title = widget.figure._suptitle.get_text()
        assert "12-00-00/run.h5" in title and "experiment=quick treatment=adaptive" in title


@needs_display
def test_toolbar_and_csv_of_the_plotted_curves(viewer, niche_run, tmp_path):
    app.open_run(niche_run, viewer, frame=-1)
    population, panel = _widgets(viewer)
    for widget in (population, panel):
        actions = {a.text() for a in widget.toolbar.actions()}
        assert {"Save", "Zoom", "Pan", "Home", "CSV"} <= actions, actions
    out = tmp_path / "population.csv"
    rows = population.export_csv(out)
    with open(out, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == rows
    obs = population.source.observables()
    S = [float(r["y"]) for r in table if r["panel"] == "tumour populations" and r["curve"] == "S"]
    assert S == pytest.approx(obs["S"])
    assert {r["curve"] for r in table if r["panel"] == "plasma"} == {"drug"}
    _wait(lambda: panel.profile_frame is not None)
    panel.export_csv(tmp_path / "niche.csv")
    with open(tmp_path / "niche.csv", newline="") as f:
        panels = {r["panel"] for r in csv.DictReader(f)}
    assert panels == {"P vs distance to niche", "P vs distance to tumour edge",
                      "niche contrast", "voxel counts"}


def _day_per_pixel(ax) -> float:
    (x0, _), (x1, _) = ax.transData.transform([(ax.get_xlim()[0], 1), (ax.get_xlim()[1], 1)])
    return 2.0 * (ax.get_xlim()[1] - ax.get_xlim()[0]) / (x1 - x0)


def _marker_on_screen(widget, marker) -> float:
    """The day at which the canvas as painted on screen shows the marker: the pixel column
    across the middle of its axes with the most dark grey pixels (curves cross a column
    in a few pixels; the vertical marker fills it)."""
    image = widget.canvas.grab().toImage()
    ratio = image.devicePixelRatio()
    ax = marker.axes
    (x0, y0), (x1, y1) = ax.transAxes.transform([(0, 0.25), (1, 0.75)])   # display, y up
    height = widget.canvas.height()
    row_top, row_bottom = int((height - y1 / ratio) * ratio), int((height - y0 / ratio) * ratio)
    columns = range(int(x0 + 2), int(x1 - 2))
    def is_marker(c, r):       # dark grey (the marker is 0.2 grey, antialiased)
        rgb = [image.pixelColor(c, r).red(), image.pixelColor(c, r).green(),
               image.pixelColor(c, r).blue()]
        return max(rgb) < 120 and max(rgb) - min(rgb) < 30

    darkness = [sum(is_marker(c, r) for r in range(row_top, row_bottom, 2)) for c in columns]
    x = columns[int(np.argmax(darkness))]
    return float(ax.transData.inverted().transform((x, 0.5 * (y0 + y1)))[0])


@needs_display
def test_a_slider_step_redraws_only_the_time_markers(viewer, niche_run, monkeypatch):
    app.open_run(niche_run, viewer, frame=0)
    widgets = _widgets(viewer)
    _settled(widgets)
    widgets[1]._pending.setInterval(600_000)      # the slider never rests, until the end
    layouts = []
    original = ConstrainedLayoutEngine.execute
    monkeypatch.setattr(ConstrainedLayoutEngine, "execute",
                        lambda self, fig: (layouts.append(fig), original(self, fig))[1])
    draws = [w.full_draws for w in widgets]
    blits = [w.blits for w in widgets]
    n = len(widgets[0].time.days)
    for i in list(range(1, n)) + [0]:
        viewer.dims.set_current_step(0, i)
        QApplication.processEvents()
        for w in widgets:          # the markers stand at the frame shown
            assert w.marker_day() == pytest.approx(w.time.days[i])
    assert [w.full_draws for w in widgets] == draws          # no figure was redrawn
    viewer.dims.set_current_step(0, n - 2)                 # inside the axes, not on a spine
    _process(0.1)
    for w in widgets:                                      # and the screen shows the move
        for marker in w._markers:
            assert _marker_on_screen(w, marker) == pytest.approx(w.time.days[n - 2], abs=
                                                                 _day_per_pixel(marker.axes))
    viewer.dims.set_current_step(0, 0)
    QApplication.processEvents()
    assert [w.blits - b for w, b in zip(widgets, blits)] == [n + 2, n + 2]
    assert layouts == []                                    # nor laid out
    for w in widgets:
        assert all(m.get_animated() and m.get_gid() == MARKER_GID for m in w._markers)
    # when the slider rests the niche profiles follow, in the layout already computed
    widgets[1]._pending.setInterval(NicheWidget.DELAY_MS)
    viewer.dims.set_current_step(0, 1)
    _wait(lambda: widgets[1].profile_frame == 1)
    _process(0.3)
    assert widgets[1].full_draws > draws[1] and layouts == []


def _step_costs(viewer, frames) -> list[float]:
    """Seconds of each slider step: the slider moves, napari slices the layers and Qt
    handles the events that follow (the canvas paints, the widgets blit)."""
    costs = []
    for i in frames:
        start = time.perf_counter()
        viewer.dims.set_current_step(0, i)
        QApplication.processEvents()
        costs.append(time.perf_counter() - start)
    return costs


@needs_display
def test_the_widgets_add_little_to_a_slider_step(viewer, niche_run):
    """The same steps in one run, with the widgets docked (so that napari's canvas has the
    same size) and either following the slider or not, alternated step by step (and each
    frame stepped to in both ways) so that the load of a shared machine falls on both
    alike."""
    app.open_run(niche_run, viewer, frame=0)
    docked = _widgets(viewer)
    for widget in docked:
        # the profiles are recomputed when the slider rests, not on a step: keep them out
        # of the steps timed here
        if isinstance(widget, NicheWidget):
            widget._pending.setInterval(600_000)
    _settled(docked)
    n = len(docked[0].time.days)
    step = viewer.dims.events.current_step
    _step_costs(viewer, list(range(n)) * 2)          # warm-up: files and caches
    costs = {False: [], True: []}
    following = True
    blits = [w.blits for w in docked]
    for rep in range(12):
        for k, i in enumerate(range(n)):
            follow = (k + rep) % 2 == 1
            if follow != following:
                for w in docked:
                    (step.connect if follow else step.disconnect)(w._step_changed)
                following = follow
            costs[follow] += _step_costs(viewer, [i])
    if not following:
        for w in docked:
            step.connect(w._step_changed)
    assert all(w.blits - b == len(costs[True]) for w, b in zip(docked, blits))
    without, with_widgets = float(np.median(costs[False])), float(np.median(costs[True]))
    print(f"slider step: {1e3 * without:.1f} ms without the widgets, "
          f"{1e3 * with_widgets:.1f} ms with them")
    # 20 % of a step, and 4 ms: one scheduler tick (CONFIG_HZ=250) that another process
    # on a shared machine can take from a step; the blits themselves (two lines into two
    # figures a few hundred pixels wide) cost about a millisecond
    assert with_widgets <= 1.2 * without + 0.004, (with_widgets, without)


def _largest_vertical_gap(figure) -> float:
    """The tallest band of the figure (fraction of its height) that no axes, tick label,
    axis label, title or legend reaches into."""
    renderer = figure.canvas.get_renderer()
    boxes = [ax.get_tightbbox(renderer) for ax in figure.get_axes()]
    boxes += [t.get_window_extent(renderer) for t in figure.findobj(
        lambda a: hasattr(a, "get_text") and a.get_visible() and a.get_text()
        and a.figure is not None and a.get_figure(root=True) is figure
        and a not in [t for ax in figure.get_axes() for t in ax.texts])]
    spans = sorted((b.y0, b.y1) for b in boxes if b is not None and b.height > 0)
    height = figure.bbox.height
    gaps, top = [], 0.0
    for y0, y1 in spans:
        gaps.append(max(0.0, y0 - top))
        top = max(top, y1)
    gaps.append(max(0.0, height - top))
    return max(gaps) / height


@needs_display
def test_the_plots_fill_their_widgets(viewer, niche_run):
    """No dead space: the canvas fills its dock widget, and constrained layout leaves a few
    points between elements (3 pt pads), so no horizontal band of the figure taller than
    5 % of it is left empty (the plot of a frame's population widget before this left 10 %
    of its figure and 13 % of its dock widget empty)."""
    # the dead band appeared from the second window on (the canvas stayed at its figure's
    # size, its size hint): open one first
    first = napari.Viewer(show=True)
    first.window.resize(1200, 800)
    app.open_run(niche_run, first, frame=-1)
    _settled(_widgets(first))
    first.close()
    _process()
    app.open_run(niche_run, viewer, frame=-1)
    widgets = _widgets(viewer)
    _wait(lambda: widgets[1].profile_frame is not None)
    _settled(widgets)

    def filled(w):
        # the canvas takes the dock widget's height under the toolbar (2 px margins above
        # and below, 2 px for rounding)
        return w.canvas.height() + w.toolbar.height() >= w.height() - 6

    try:                                   # once Qt has laid the window out
        _wait(lambda: all(filled(w) for w in widgets), timeout=5)
    except TimeoutError:
        pass
    _settled(widgets)
    for w in widgets:
        assert filled(w), (w.title, w.height(), w.canvas.height(), w.toolbar.height())
        assert _largest_vertical_gap(w.figure) < 0.05, (w.title, _largest_vertical_gap(w.figure))


@needs_display
def test_new_data_redraws_at_most_once_a_second(viewer, niche_run):
    """A live run sends frames faster than the figures draw: updates in a burst are drawn
    together, and the last of them is what shows."""
    app.open_run(niche_run, viewer, frame=-1)
    widgets = _widgets(viewer)
    _settled(widgets)
    draws = [w.full_draws for w in widgets]
    started = time.monotonic()
    for _ in range(10):
        for w in widgets:
            w.update_data()
        QApplication.processEvents()
    _process(max(0.0, started + 1.6 - time.monotonic()))
    _wait(lambda: all(not w._stale for w in widgets), timeout=5)
    elapsed = time.monotonic() - started
    for w, before in zip(widgets, draws):
        # one at once or at the end of the interval after the last draw, then one a second
        assert 1 <= w.full_draws - before <= 1 + elapsed / w.MIN_REDRAW_S, (
            w.title, w.full_draws - before, elapsed)
