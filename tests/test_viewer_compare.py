"""Runs compared side by side in napari (`spatialdtp-view A.h5 B.h5`), on a virtual display:
each run in its own canvas, one time slider for all, each labelled by its overrides, their
curves overlaid in one widget."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qt_support import process, require_display, shown_viewer  # noqa: E402

require_display()

from spatialdtp.viewer import app  # noqa: E402
from spatialdtp.viewer.compare import CompareWidget, open_runs, run_label  # noqa: E402
from spatialdtp.viewer.layers import MINUTES_PER_DAY  # noqa: E402
from spatialdtp.viewer.runfile import RunFile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCHEDULES = ("seed=1", "seed=2")   # two tissues of the same model


def _process(seconds=0.2):
    process(seconds)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two seeds of one 32² section, made as a user makes them (Hydra writes the
    overrides beside each run file)."""
    base = tmp_path_factory.mktemp("compare")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, "-m", "spatialdtp", "experiment=quick",
                               "grid.shape=[32,32]", "run.plot=false", schedule,
                               f"hydra.run.dir=run{k}"], cwd=base, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for k, schedule in enumerate(SCHEDULES)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    return [base / f"run{k}" / "run.h5" for k in range(len(SCHEDULES))]


@pytest.fixture()
def viewer():
    with shown_viewer(1200, 700) as v:
        yield v


def test_a_run_is_labelled_by_its_overrides(two_runs, tmp_path):
    for path, schedule in zip(two_runs, SCHEDULES):
        label = run_label(path)
        assert schedule in label and "experiment=quick" in label and "hydra" not in label
    lone = tmp_path / "made_by_api" / "run.h5"
    assert run_label(lone) == "made_by_api"       # no overrides file: the directory


def test_two_runs_side_by_side_on_one_time_slider(viewer, two_runs):
    open_runs(two_runs, viewer)
    _process()
    layers = list(viewer.layers)
    assert viewer.grid.enabled and len(layers) == 2 * viewer.grid.stride
    stride = viewer.grid.stride
    shown = [la for la in layers if la.visible]
    cells = {letter: {viewer.grid.position(layers.index(la), layers) for la in shown
                      if la.name[0] == letter} for letter in "AB"}
    assert len(cells["A"]) == len(cells["B"]) == 1 and cells["A"] != cells["B"]  # one canvas each
    assert all(la.name.startswith("A ") for la in layers[:stride])
    assert all(la.name.startswith("B ") for la in layers[stride:])
    labels = [la for la in layers if la.name.endswith("run label")]
    assert [la.text.values[0].startswith(f"{c}: ") for c, la in zip("AB", labels)] == [True, True]
    # each canvas says what sets its run apart, not what the runs share
    assert [la.text.values[0] for la in labels] == [f"A: {SCHEDULES[0]}", f"B: {SCHEDULES[1]}"]
    assert not any(la.editable for la in layers if la.name.endswith(("niches", "vessels",
                                                                       "run label")))

    # one slider: a day chosen once is the day both runs show
    runs = [RunFile(p) for p in two_runs]
    days = runs[0].times / MINUTES_PER_DAY
    assert np.array_equal(days, runs[1].times / MINUTES_PER_DAY)
    for k in (0, 2, len(days) - 1):
        viewer.dims.set_current_step(0, k)
        _process(0.05)
        assert viewer.dims.point[0] == pytest.approx(days[k])
        for letter in "AB":
            P = next(la for la in layers if la.name.startswith(letter) and "persister" in la.name)
            assert P._slice_input.world_slice.point[0] == pytest.approx(days[k])


def test_the_widget_overlays_each_run_s_curves_and_follows_the_slider(viewer, two_runs):
    open_runs(two_runs, viewer)
    widget = next(w for w in viewer.window.dock_widgets.values()
                  if isinstance(w, CompareWidget))
    runs = [RunFile(p) for p in two_runs]
    for name in ("burden", "P"):
        assert len(widget.lines[name]) == 2
        for line, run in zip(widget.lines[name], runs):
            obs = run.observables()
            np.testing.assert_allclose(line.get_xdata(), obs["time"] / MINUTES_PER_DAY)
            np.testing.assert_allclose(line.get_ydata(), obs[name])
    assert widget.lines["P"][0].get_color() != widget.lines["P"][1].get_color()
    assert "experiment=quick" in widget.axes[0].get_title()       # what all runs share
    # the tissues differ, so do the curves: the overlay shows two runs, not one twice
    assert not np.allclose(widget.lines["burden"][0].get_ydata(),
                           widget.lines["burden"][1].get_ydata())
    viewer.dims.set_current_step(0, 1)
    _process(0.05)
    assert all(m.get_xdata()[0] == pytest.approx(viewer.dims.point[0]) for m in widget.markers)


def test_runs_that_cannot_be_compared_are_refused_by_name(viewer, two_runs, tmp_path):
    from spatialdtp import api

    path3d = tmp_path / "three_d" / "run.h5"
    api.simulation(["experiment=quick", "tissue=spheroid3d", "grid.shape=[8,8,8]",
                    "run.days=0.25", "run.plot=false"]).run_until(path=path3d)
    with pytest.raises(ValueError, match="3D run cannot be compared"):
        open_runs([two_runs[0], path3d], viewer)
    with pytest.raises(ValueError, match="compare 2 to"):
        open_runs([two_runs[0]], viewer)


def test_spatialdtp_view_with_two_runs_writes_a_screenshot_of_both(two_runs, tmp_path, capsys):
    png = tmp_path / "both.png"
    assert app.main([*map(str, two_runs), "--screenshot", str(png), "--size", "1200", "700"]) == 0
    from PIL import Image

    image = np.asarray(Image.open(png))[..., :3]
    assert image.shape[0] > 300 and image.std() > 5
