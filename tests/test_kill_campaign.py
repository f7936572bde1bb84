"""A kill campaign: `spatialdtp-run`, as a user runs it, killed with SIGKILL at random
moments, many times, on `numpy` and `cpu` (issue 14, item 2).

The writer's promise (:mod:`spatialdtp.run.runfile.writer`) is that a frame counted by
``/time`` and an observables row counted by ``/observables/time`` are on disk whole, however
the process dies. "Whole" is checked as strictly as it can be: the run is deterministic
(same backend, same thread count), so every counted frame and row must be *bit for bit* the
one the same run writes when nobody kills it; a frame HDF5 never wrote reads back as zeros
from plain h5py and would fail this, as would a torn chunk. The killed file must also verify
in a child (``python -m spatialdtp.run.runfile.verify``: no crash, resumable) and, for the
first kills of each backend, ``+resume=`` must finish it to the uninterrupted run's frames,
again bit for bit (resume is exact).

Frames are written every step (a 96² section, twelve fields): a frame's write and its two
``fsync``s take a large share of each step, so a uniform random kill time lands inside a
flush often rather than once in tens of kills. Kill moments are stratified over the window
in which the uninterrupted run writes its file: kill k of K falls uniformly at random in the
k-th K-th of the window (in shuffled order), so the campaign always reaches both the run's
first and last stretches (eight independent uniform draws can all miss the first 40 % of a
run, and did). The window shrinks when a run ends before its kill (a shared machine's speed
drifts); a kill that comes after the run has finished is not counted as a kill, and at
least half of the kills must land (else the window was wrong).
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DT_HOURS = 20 / 60    # experiment=quick steps 20 min; one frame per step
RUN = ["experiment=quick", "grid.shape=[96,96]", "run.days=1",
       f"run.output_interval_hours={DT_HOURS!r}", f"run.checkpoint_interval_hours={6 * DT_HOURS!r}",
       "run.plot=false", "hydra.run.dir=out"]
KILLS = 8             # per backend in CI; -m slow runs KILLS_SLOW
KILLS_SLOW = 60
RESUMED = 2           # kills per backend whose file is then resumed to the end
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           # the same thread count in every run, so that the cpu backend's reductions are
           # summed in the same order and the runs are comparable bit for bit
           OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))


def _start(cwd: Path, backend: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "spatialdtp", *RUN, f"backend={backend}", *extra],
                            cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _contents(path: Path) -> dict[str, np.ndarray]:
    """Every counted frame of every field and every counted observables row, by plain h5py
    (what a user's own script would read)."""
    with h5py.File(path, "r", locking=False) as f:
        n, rows = len(f["time"]), len(f["observables/time"])
        out = {"time": f["time"][:n]}
        for k, ds in f["fields"].items():
            assert ds.shape[0] >= n, f"{path}: /time counts {n} frames, field {k} has {ds.shape[0]}"
            out[f"fields/{k}"] = ds[:n]
        for k, ds in f["observables"].items():
            assert ds.shape[0] >= rows, f"{path}: {rows} observables rows, {k} has {ds.shape[0]}"
            out[f"observables/{k}"] = ds[:rows]
    return out


def _the_same(got: dict, want: dict, what: str):
    """``got`` (a killed or resumed file) holds a prefix of ``want`` (the uninterrupted run)
    in every dataset, bit for bit."""
    assert got.keys() == want.keys(), what
    for name, values in got.items():
        ref = want[name][:len(values)]
        assert len(values) <= len(want[name]), (what, name)
        assert np.array_equal(values, ref, equal_nan=True), \
            f"{what}: {name} differs from the uninterrupted run (first at row " \
            f"{int(np.flatnonzero(~((values == ref) | (np.isnan(values) & np.isnan(ref))).reshape(len(values), -1).all(axis=1))[0])})"


@pytest.fixture(scope="module", params=["numpy", "cpu"])
def uninterrupted(request, tmp_path_factory):
    """The run nobody kills: its contents and the window (s) in which it writes its file."""
    backend = request.param
    cwd = tmp_path_factory.mktemp(f"reference_{backend}")
    proc = _start(cwd, backend)
    run = cwd / "out" / "run.h5"
    while not run.exists():
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.005)
    published = time.monotonic()
    _, err = proc.communicate(timeout=600)
    window = time.monotonic() - published
    assert proc.returncode == 0, err
    with h5py.File(run, "r") as f:
        assert f.attrs["status"] == "complete"
        assert len(f["time"]) == 73    # day 0 and every 20-min step to day 1
    return backend, _contents(run), window


def _campaign(tmp_path, uninterrupted, kills: int):
    backend, want, window = uninterrupted
    rng = random.Random(f"kill-{backend}")
    fractions = [(k + rng.random()) / kills for k in range(kills)]   # one in each stratum
    rng.shuffle(fractions)
    landed, counted_frames = 0, []
    for k, fraction in enumerate(fractions):
        cwd = tmp_path / f"kill{k}"
        cwd.mkdir()
        proc = _start(cwd, backend)
        run = cwd / "out" / "run.h5"
        while not run.exists() and proc.poll() is None:   # the file is published
            time.sleep(0.002)
        published = time.monotonic()
        time.sleep(fraction * window)
        if proc.poll() is not None:                         # finished before the kill
            assert proc.returncode == 0, proc.communicate()[1]
            # the machine runs faster now than when the window was measured: aim earlier
            window = min(window, 0.9 * (time.monotonic() - published))
            continue
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        landed += 1

        # every counted frame and row is the uninterrupted run's, bit for bit
        got = _contents(run)
        _the_same(got, want, f"{backend} kill {k}")
        counted_frames.append(len(got["time"]))

        # the file verifies in a child (a damaged HDF5 file can crash the library)
        check = subprocess.run([sys.executable, "-m", "spatialdtp.run.runfile.verify", str(run)],
                               env=ENV, capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, (k, check.returncode, check.stderr)
        report = json.loads(check.stdout.strip().splitlines()[-1])
        assert report["ok"], (k, report)
        assert report["whole_frames"] == report["frames"] == len(got["time"]), (k, report)

        if landed <= RESUMED:   # resumed to the end: the uninterrupted run, bit for bit
            done = subprocess.run([sys.executable, "-m", "spatialdtp", f"+resume={run}"],
                                  cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, (k, done.stderr)
            resumed = _contents(run)
            assert len(resumed["time"]) == len(want["time"])
            _the_same(resumed, want, f"{backend} kill {k}, resumed")
    assert landed >= kills // 2, f"only {landed} of {kills} kills landed before the run ended"
    # the kills were spread over the run, not all at its start or end
    assert min(counted_frames) < len(want["time"]) // 2 < max(counted_frames), counted_frames


def test_every_counted_frame_of_a_killed_run_is_whole_and_resumes_exactly(tmp_path, uninterrupted):
    _campaign(tmp_path, uninterrupted, KILLS)


@pytest.mark.slow
def test_many_more_kills(tmp_path, uninterrupted):
    _campaign(tmp_path, uninterrupted, KILLS_SLOW)
