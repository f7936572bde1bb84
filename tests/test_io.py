"""The run file: its layout read back with plain h5py, crash safety, checkpoints, resume."""
from __future__ import annotations

import math
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime

import h5py
import numpy as np
import pytest
import yaml

from spatialdtp.model.grid import Grid
from spatialdtp.model.state import FieldLayout
from spatialdtp.run.runfile import (
    RunWriter,
    fields_from_layout,
    is_run_file,
    read_checkpoint,
    read_observables,
    read_run,
)

FIELDS = {
    "oxygen": {"units": "mmHg", "long_name": "oxygen partial pressure", "kind": "substrate"},
    "S": {"units": "cells/voxel", "long_name": "drug-sensitive cycling cells", "kind": "cell"},
    "auc_drug": {"units": "µM·min", "long_name": "local drug exposure", "kind": "exposure"},
}
CONFIG = {"seed": 7, "grid": {"shape": [12, 10], "dx": 20.0}, "run": {"days": 21.0, "dt": 10.0}}


def attrs(**extra):
    return {"config": yaml.safe_dump(CONFIG), "backend": "numpy", "device": "cpu", "seed": 7,
            **extra}


def frame_values(grid, t, dtype):
    """Distinct, reproducible values for every field of the frame at time t."""
    base = np.arange(grid.size, dtype=np.float64).reshape(grid.shape)
    return {name: (base * (k + 1) + t).astype(dtype) for k, name in enumerate(FIELDS)}


@pytest.mark.parametrize("shape,dtype", [((12, 10), np.float32), ((5, 6, 7), np.float64)])
def test_round_trip_reads_back_with_plain_h5py(tmp_path, shape, dtype):
    grid = Grid(shape, 20.0)
    path = tmp_path / "run.h5"
    rng = np.random.default_rng(0)
    vessels = (rng.random(shape) < 0.1).astype(np.float32)
    frame_times = [0.0, 720.0, 1440.0]
    state = rng.random((len(FIELDS), *shape)).astype(dtype)
    with RunWriter(path, grid=grid, fields=FIELDS, attrs=attrs(), dtype=dtype) as w:
        w.write_static("vessels", vessels, units="1")
        for t in frame_times:
            w.write_frame(t, frame_values(grid, t, dtype))
        for k in range(10):
            w.append_observables(10.0 * k, {"burden": 100.0 + k, "mean_oxygen": 40.0 - k},
                                 units={"burden": "cells", "mean_oxygen": "mmHg"})
        w.write_checkpoint(9, 90.0, {"state": state}, {"dose_on": True})
        w.write_summary({"time_to_progression_days": float("nan"), "final_burden": 109.0})

    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == "spatialdtp-run" and a["format_version"] == 1
        assert a["status"] == "complete"
        assert yaml.safe_load(a["config"]) == CONFIG
        assert (a["backend"], a["device"], a["precision"], a["seed"]) == \
            ("numpy", "cpu", np.dtype(dtype).name, 7)
        assert a["ndim"] == len(shape) and tuple(a["shape"]) == shape and a["dx"] == 20.0
        assert list(a["axes"]) == list("zyx"[-len(shape):])
        assert a["time_units"] == "min" and isinstance(a["spatialdtp_version"], str)
        created = datetime.fromisoformat(a["created"].replace("Z", "+00:00"))
        assert created.utcoffset().total_seconds() == 0

        assert f["time"].dtype == np.float64 and f["time"].attrs["units"] == "min"
        np.testing.assert_array_equal(f["time"][:], frame_times)
        assert list(f["fields"]) == list(FIELDS)  # state order, not alphabetical
        for name, spec in FIELDS.items():
            ds = f["fields"][name]
            assert ds.shape == (3, *shape) and ds.dtype == dtype
            assert ds.chunks == (1, *shape) and ds.maxshape == (None, *shape)
            assert ds.compression == "gzip" and ds.compression_opts == 4 and ds.shuffle
            assert {k: ds.attrs[k] for k in spec} == spec
            for i, t in enumerate(frame_times):
                np.testing.assert_array_equal(ds[i], frame_values(grid, t, dtype)[name])

        obs = f["observables"]
        np.testing.assert_array_equal(obs["time"][:], 10.0 * np.arange(10))
        np.testing.assert_array_equal(obs["burden"][:], 100.0 + np.arange(10))
        assert obs["burden"].dtype == np.float64 and obs["burden"].attrs["units"] == "cells"
        assert obs["mean_oxygen"].attrs["units"] == "mmHg"

        np.testing.assert_array_equal(f["static/vessels"][()], vessels)
        assert f["static/vessels"].attrs["units"] == "1"
        assert f["checkpoint"].attrs["step"] == 9 and f["checkpoint"].attrs["time"] == 90.0
        np.testing.assert_array_equal(f["checkpoint/state"][()], state)
        assert math.isnan(f["summary"].attrs["time_to_progression_days"])
        assert f["summary"].attrs["final_burden"] == 109.0

    run = read_run(path)  # and the package's own reader agrees
    assert run.n_frames == 3 and run.status == "complete" and run.grid == grid
    assert run.config_dict() == CONFIG and list(run.fields) == list(FIELDS)
    assert run.fields["oxygen"]["units"] == "mmHg" and run.static == {"vessels": "1"}
    np.testing.assert_array_equal(run.frame("S", -1), frame_values(grid, 1440.0, dtype)["S"])
    with run:
        assert run.dataset("oxygen").shape == (3, *shape)
    np.testing.assert_array_equal(run.static_map("vessels"), vessels)
    assert math.isnan(run.summary["time_to_progression_days"])


CRASHING_WRITER = textwrap.dedent("""
    import os, sys
    import numpy as np
    from spatialdtp.model.grid import Grid
    from spatialdtp.run.runfile import RunWriter
    fields = {"oxygen": {"units": "mmHg", "kind": "substrate"},
              "S": {"units": "cells/voxel", "kind": "cell"}}
    grid = Grid((16, 12), 10.0)
    w = RunWriter(sys.argv[1], grid=grid, fields=fields, dtype="float32",
                  attrs={"config": "seed: 1\\n", "backend": "numpy", "device": "cpu", "seed": 1})
    for k in range(3):                                  # frames at 0, 60, 120 min
        for j in range(6):                              # observables every 10 min
            w.append_observables(60.0 * k + 10.0 * j, {"burden": 60.0 * k + 10.0 * j})
        w.write_frame(60.0 * k, {"oxygen": np.full(grid.shape, k + 1.0),
                                 "S": np.full(grid.shape, 10.0 * (k + 1))})
        if k == 1:
            w.write_checkpoint(6, 60.0, {"state": np.full((2, 16, 12), 7.0, np.float32)},
                               {"note": "after frame 1"})
    for j in range(4):                                  # rows still in memory when killed
        w.append_observables(180.0 + 10.0 * j, {"burden": -1.0})
    os._exit(1)                                         # killed: no close, no flush
""")


@pytest.fixture(scope="module")
def crashed_run(tmp_path_factory):
    """A run file whose writer was killed after three frames (and four unflushed rows)."""
    path = tmp_path_factory.mktemp("crash") / "crashed.h5"
    proc = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    return path


def test_killed_writer_leaves_every_flushed_frame_readable(crashed_run):
    with h5py.File(crashed_run, "r") as f:
        assert f.attrs["status"] == "running"
        np.testing.assert_array_equal(f["time"][:], [0.0, 60.0, 120.0])
        for k in range(3):
            np.testing.assert_array_equal(f["fields/oxygen"][k], np.full((16, 12), k + 1.0))
            np.testing.assert_array_equal(f["fields/S"][k], np.full((16, 12), 10.0 * (k + 1)))
        # rows go out with each frame; the 4 appended after the last frame are lost
        np.testing.assert_array_equal(f["observables/time"][:], 10.0 * np.arange(18))
        np.testing.assert_array_equal(f["observables/burden"][:], 10.0 * np.arange(18))
    assert is_run_file(crashed_run)
    assert read_checkpoint(crashed_run)[:2] == (6, 60.0)


LIVE_WRITER = CRASHING_WRITER.replace("os._exit(1)", "print('ready', flush=True); sys.stdin.read()")


def test_a_run_still_being_written_by_another_process_can_be_read(tmp_path):
    """The writer holds HDF5's file lock; readers fall back to an unlocked read so napari
    can look at a running simulation."""
    path = tmp_path / "live.h5"
    proc = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, str(path)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert is_run_file(path)
        run = read_run(path)
        assert run.status == "running" and run.n_frames == 3
        np.testing.assert_array_equal(run.frame("S", 2), np.full((16, 12), 30.0))
        assert read_checkpoint(path)[0] == 6
    finally:
        proc.communicate(timeout=30)  # stdin closed: the writer returns and exits


def test_resume_after_crash_truncates_past_checkpoint_and_appends(crashed_run, tmp_path):
    path = tmp_path / "resumed.h5"
    shutil.copy(crashed_run, path)
    w = RunWriter.reopen(path)
    with h5py.File(path, "r") as f:  # what resume starts from: nothing later than t=60
        np.testing.assert_array_equal(f["time"][:], [0.0, 60.0])
        assert f["fields/oxygen"].shape == (2, 16, 12)
        np.testing.assert_array_equal(f["observables/time"][:], 10.0 * np.arange(7))
        assert f.attrs["status"] == "running"
    with pytest.raises(ValueError, match="later than"):
        w.write_frame(60.0, {"oxygen": np.zeros((16, 12)), "S": np.zeros((16, 12))})
    for j in range(1, 7):
        w.append_observables(60.0 + 10.0 * j, {"burden": -1.0})
    w.write_frame(120.0, {"oxygen": np.full((16, 12), 42.0), "S": np.zeros((16, 12))})
    w.close()

    run = read_run(path)
    np.testing.assert_array_equal(run.time, [0.0, 60.0, 120.0])
    np.testing.assert_array_equal(run.frame("oxygen", 2), np.full((16, 12), 42.0))
    np.testing.assert_array_equal(run.frame("oxygen", 1), np.full((16, 12), 2.0))
    obs = read_observables(path)
    np.testing.assert_array_equal(obs["time"], 10.0 * np.arange(13))
    np.testing.assert_array_equal(obs["burden"], np.r_[10.0 * np.arange(7), -np.ones(6)])
    assert run.status == "complete"


def test_reopen_without_checkpoint_is_refused(tmp_path):
    grid = Grid((4, 4), 1.0)
    path = tmp_path / "run.h5"
    RunWriter(path, grid=grid, fields=FIELDS, attrs=attrs(), dtype="float32").close()
    with pytest.raises(ValueError, match="no checkpoint"):
        RunWriter.reopen(path)


def writer(path, grid=Grid((6, 5), 10.0), **kw):
    return RunWriter(path, grid=grid, fields=FIELDS, attrs=attrs(), dtype="float32", **kw)


def test_checkpoint_replacement_keeps_exactly_one_and_restores_bit_exactly(tmp_path):
    path = tmp_path / "run.h5"
    rng = np.random.default_rng(123)
    with writer(path) as w:
        for step in (10, 20, 30):
            state = rng.standard_normal((3, 6, 5)).astype(np.float32)
            state[0, 0, 0] = np.nan  # NaN payload must survive too
            labels = rng.integers(0, 5, (6, 5)).astype(np.int16)
            rng_state = rng.bit_generator.state
            info = {"treatment": {"drug": {"on": step != 20, "doses": [1.5, 2.0]}},
                    "rng": rng_state, "step_count": np.int64(step)}
            w.write_checkpoint(step, step * 10.0, {"state": state, "labels": labels}, info)
        expected_draw = rng.random(5)
    with h5py.File(path, "r") as f:
        assert [k for k in f if k.startswith("checkpoint")] == ["checkpoint"]
    step, t, arrays, got = read_checkpoint(path)
    assert (step, t) == (30, 300.0)
    assert arrays["state"].dtype == np.float32 and arrays["state"].tobytes() == state.tobytes()
    assert arrays["labels"].dtype == np.int16
    np.testing.assert_array_equal(arrays["labels"], labels)
    assert got == {**info, "step_count": 30}
    restored = np.random.default_rng()
    restored.bit_generator.state = got["rng"]  # the RNG resumes where it stopped
    np.testing.assert_array_equal(restored.random(5), expected_draw)


def test_crash_inside_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    path = tmp_path / "run.h5"
    with writer(path) as w:
        w.write_checkpoint(1, 10.0, {"state": np.ones(3)}, {})
    with h5py.File(path, "r+") as f:  # killed while writing the next: no "step" yet
        f.create_group("checkpoint_new").create_dataset("state", data=np.zeros(3))
    step, _, arrays, _ = read_checkpoint(path)
    assert step == 1 and arrays["state"].tolist() == [1, 1, 1]
    RunWriter.reopen(path).close()
    with h5py.File(path, "r") as f:
        assert "checkpoint_new" not in f and f["checkpoint"].attrs["step"] == 1

    with h5py.File(path, "r+") as f:  # killed between deleting the old and the move
        del f["checkpoint"]
        g = f.create_group("checkpoint_new")
        g.create_dataset("state", data=np.full(3, 2.0))
        g.attrs["time"], g.attrs["step"] = 20.0, 2
    assert read_checkpoint(path)[0] == 2
    RunWriter.reopen(path).close()
    with h5py.File(path, "r") as f:
        assert list(k for k in f if k.startswith("checkpoint")) == ["checkpoint"]
        assert f["checkpoint"].attrs["step"] == 2


def test_observables_are_buffered_and_written_on_frame_flush_and_close(tmp_path):
    path = tmp_path / "run.h5"
    grid = Grid((6, 5), 10.0)
    w = writer(path, grid, flush_every=5)
    w.publish()                 # give the new file its name now (else: at its first checkpoint)

    def rows_on_disk():
        with h5py.File(path, "r") as f:
            return f["observables/time"].shape[0]

    for k in range(3):
        w.append_observables(10.0 * k, {"burden": float(k)})
    assert rows_on_disk() == 0  # still in memory
    w.write_frame(20.0, frame_values(grid, 20.0, np.float32))
    assert rows_on_disk() == 3
    for k in range(3, 8):  # the 5th buffered row triggers a flush
        w.append_observables(10.0 * k, {"burden": float(k), "hypoxic_fraction": 0.5})
    assert rows_on_disk() == 8
    w.append_observables(80.0, {"burden": 8.0})
    assert rows_on_disk() == 8
    w.close()
    obs = read_observables(path)
    np.testing.assert_array_equal(obs["time"], 10.0 * np.arange(9))
    np.testing.assert_array_equal(obs["burden"], np.arange(9.0))
    # an observable first reported at row 3 reads NaN before it and where a row lacks it
    np.testing.assert_array_equal(obs["hypoxic_fraction"], [np.nan] * 3 + [0.5] * 5 + [np.nan])


def test_is_run_file_only_for_spatialdtp_run_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.attrs["format"] = "something-else"
        f["data"] = np.arange(3)
    bare = tmp_path / "bare.h5"
    h5py.File(bare, "w").close()
    text = tmp_path / "notes.h5"
    text.write_text("format: spatialdtp-run\n")
    run = tmp_path / "run.h5"
    w = writer(run)
    assert not run.exists()  # a new file gets its name with its first checkpoint
    w.write_checkpoint(0, 0.0, {"state": np.zeros(3)}, {})
    assert is_run_file(run)  # also while it is being written
    w.close()
    assert is_run_file(run)
    for path in (foreign, bare, text, tmp_path / "missing.h5", tmp_path):
        assert not is_run_file(path), path
    with pytest.raises(ValueError, match="not a spatialdtp run file"):
        read_run(foreign)


def test_context_manager_records_how_the_run_ended(tmp_path):
    with pytest.raises(RuntimeError):
        with writer(tmp_path / "a.h5"):
            raise RuntimeError("solver diverged")
    with pytest.raises(KeyboardInterrupt):
        with writer(tmp_path / "b.h5"):
            raise KeyboardInterrupt
    assert read_run(tmp_path / "a.h5").status == "failed: RuntimeError: solver diverged"
    assert read_run(tmp_path / "b.h5").status == "interrupted"
    w = writer(tmp_path / "c.h5")
    w.close("interrupted")
    w.close()  # idempotent: the first status stays
    assert read_run(tmp_path / "c.h5").status == "interrupted"


def test_bad_input_is_refused_with_the_offending_value(tmp_path):
    grid = Grid((6, 5), 10.0)
    w = writer(tmp_path / "run.h5", grid)
    with pytest.raises(ValueError, match=r"missing fields \['auc_drug'\]"):
        w.write_frame(0.0, {"oxygen": np.zeros((6, 5)), "S": np.zeros((6, 5))})
    with pytest.raises(ValueError, match=r"shape \(5, 6\)"):
        w.write_frame(0.0, {n: np.zeros((5, 6)) for n in FIELDS})
    w.write_frame(0.0, frame_values(grid, 0.0, np.float32))
    with pytest.raises(ValueError, match="later than"):
        w.write_frame(0.0, frame_values(grid, 0.0, np.float32))
    w.close()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        writer(tmp_path / "run.h5")
    with pytest.raises(ValueError, match=r"lacks \['device'\]"):
        RunWriter(tmp_path / "x.h5", grid=grid, fields=FIELDS, dtype="float32",
                  attrs={"config": "", "backend": "numpy", "seed": 0})
    with pytest.raises(ValueError, match="'kind'"):
        RunWriter(tmp_path / "x.h5", grid=grid, fields={"O2": {"units": "mmHg", "kind": "gas"}},
                  attrs=attrs(), dtype="float32")
    with pytest.raises(ValueError, match="dtype=int32"):
        RunWriter(tmp_path / "x.h5", grid=grid, fields=FIELDS, attrs=attrs(), dtype="int32")
    assert not (tmp_path / "x.h5").exists()


def test_fields_from_layout_follows_state_order_and_units():
    layout = FieldLayout(substrates=("oxygen", "drug"), drugs=("drug",),
                         units={"oxygen": "mmHg", "drug": "µM"})
    specs = fields_from_layout(layout)
    assert list(specs) == list(layout.names)
    assert specs["oxygen"]["kind"] == "substrate" and specs["P"]["kind"] == "cell"
    assert specs["auc_drug"] == {"units": "µM·min", "kind": "exposure",
                                 "long_name": "local drug exposure (time integral)"}


def test_write_behind_queue_is_bounded_when_the_writer_is_slower_than_the_run():
    """A frame every step onto a slow disk: each queued call holds a frame's copy of every
    field, so ``submit`` must wait for the oldest call instead of queueing without end.
    After every ``submit`` at most ``depth`` calls are unfinished, and they ran in order."""
    import threading
    import time as clock

    from spatialdtp.run.runfile import WriteBehind

    finished, lock = [], threading.Lock()
    unfinished_after_submit = []

    def slow_write(k):
        clock.sleep(0.01)
        with lock:
            finished.append(k)

    behind = WriteBehind(depth=2)
    for k in range(20):
        behind.submit(slow_write, k)
        with lock:
            unfinished_after_submit.append(k + 1 - len(finished))
    behind.close()
    assert max(unfinished_after_submit) <= 2
    assert finished == list(range(20))
