"""Movies and figures: ``spatialdtp-view RUN --movie`` and ``--export DIR --days --layers``.

The choice of days and layers is checked without napari; writing needs napari, a display
(pytest-xvfb) and, for movies, napari-animation (imageio and its ffmpeg).
"""
import os

import numpy as np
import pytest

from spatialdtp.viewer.export import parse_days, select_frames
from spatialdtp.viewer.layers import TimeAxis


def test_days_are_a_list_or_a_range_and_must_match_frames():
    assert parse_days("0,7,21") == [0.0, 7.0, 21.0]
    assert parse_days("7:21") == (7.0, 21.0)
    for bad in ("", "a,b", "21:7", "1:2:3"):
        with pytest.raises(ValueError, match="--days"):
            parse_days(bad)
    time = TimeAxis(0.0, 0.25, np.arange(5) * 0.25)            # days 0 to 1, every 6 h
    assert select_frames(time, [0.0, 0.5, 1.0]) == [0, 2, 4]
    assert select_frames(time, [0.6]) == [2]                    # within half an interval
    assert select_frames(time, (0.25, 0.75)) == [1, 2, 3]
    assert select_frames(time, None) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"no frame at days 3, 7: the run's 5 frames span "
                                         r"days 0 to 1, every 0.25 d") as err:
        select_frames(time, [0.0, 3.0, 7.0])
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no frame between days 2 and 3"):
        select_frames(time, (2.0, 3.0))


from qt_support import napari, needs_display  # noqa: E402


@needs_display
def test_a_movie_has_one_frame_per_output_frame(quick_run_40, tmp_path, capsys):
    pytest.importorskip("napari_animation")
    imageio = pytest.importorskip("imageio.v2")
    from spatialdtp.viewer import app

    whole, part = tmp_path / "run.mp4", tmp_path / "part.mp4"
    assert app.main([str(quick_run_40), "--movie", str(whole), "--size", "640", "480"]) == 0
    assert app.main([str(quick_run_40), "--movie", str(part), "--days", "0.25:0.75",
                     "--layers", "P,niches"]) == 0
    assert f"wrote {whole}" in capsys.readouterr().out
    for path, n in ((whole, 5), (part, 3)):               # days 0–1 every 6 h; 3 of them
        assert path.stat().st_size > 0
        reader = imageio.get_reader(path)
        try:
            assert reader.count_frames() == n
            first = reader.get_data(0)
        finally:
            reader.close()
        assert first.shape[0] > 100 and first.shape[1] > 100 and first.std() > 5


@needs_display
def test_png_export_writes_exactly_the_frames_and_layers_asked_for(quick_run_40, tmp_path, monkeypatch):
    from PIL import Image

    from spatialdtp.viewer import app, export

    stamps = []
    screenshot = napari.Viewer.screenshot

    def recording(viewer, path=None, **kwargs):    # what the canvas shows at each PNG
        stamps.append((export._text_overlay(viewer).text,
                       sorted(layer.name for layer in viewer.layers if layer.visible)))
        return screenshot(viewer, path, **kwargs)

    monkeypatch.setattr(napari.Viewer, "screenshot", recording)
    out = tmp_path / "figures"
    assert app.main([str(quick_run_40), "--export", str(out), "--days", "0,0.5,1",
                     "--layers", "P,niches"]) == 0
    assert sorted(os.listdir(out)) == ["day0.5_P+niches.png", "day0_P+niches.png",
                                       "day1_P+niches.png"]
    assert [s[0] for s in stamps] == ["day 0", "day 0.5", "day 1"]       # the day stamp
    assert all(s[1] == ["P persister (log₁₀)", "niches"] for s in stamps)
    images = [np.asarray(Image.open(out / name))[..., :3] for name in sorted(os.listdir(out))]
    assert all(im.std() > 5 for im in images)
    assert not np.array_equal(images[0], images[2])                     # different days


@needs_display
@pytest.mark.parametrize("days, layers, message", [
    ("0,3", "P", "no frame at day 3: the run's 5 frames span days 0 to 1"),
    ("0,0.5", "P,nichez", "unknown layer 'nichez'; the run's layers are "),
    ("0.5", "P", "a movie needs two frames or more"),
    ("x", "P", "--days 'x': give days as a list"),
])
def test_an_unknown_day_or_layer_is_refused_and_nothing_is_written(quick_run_40, tmp_path, capsys,
                                                                    days, layers, message):
    from spatialdtp.viewer import app

    out, movie = tmp_path / "figures", tmp_path / "run.mp4"
    with pytest.raises(SystemExit) as stop:
        app.main([str(quick_run_40), "--export", str(out), "--movie", str(movie), "--days", days,
                  "--layers", layers])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]       # after the usage lines
    assert error.startswith("spatialdtp-view: error: ") and message in error, error
    assert not out.exists() and not movie.exists()
