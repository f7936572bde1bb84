"""A second signal while a stopping run writes its final checkpoint and closes its file is
ignored (`spatialdtp-run` as a user runs it, in a subprocess): exit 130, status
`interrupted`, a checkpoint at the step the run reached, and `+resume=` finishes the run.

The window is made deterministic without touching the model: ``tests/hooks`` (a
sitecustomize on the child's PYTHONPATH) holds the writer at the start of the final
checkpoint or of ``close`` until the test has sent its second signal."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

HOOKS = Path(__file__).resolve().parent / "hooks"
ROOT = HOOKS.parents[1]
# frames every 2 h; a checkpoint only at the start, so a fresh one can only be the final one
LONG_RUN = ["experiment=quick", "hydra.run.dir=out", "run.days=200",
            "run.output_interval_hours=2", "run.checkpoint_interval_hours=1e5"]


def _start(tmp_path, args, hold_at=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(HOOKS), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if hold_at:
        env.update(SDTP_TEST_HOLD=str(tmp_path / "hold"), SDTP_TEST_HOLD_AT=hold_at)
        (tmp_path / "hold").mkdir()
    return subprocess.Popen([sys.executable, "-m", "spatialdtp", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_frames(proc, run, n, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if run.exists():
            try:
                with h5py.File(run, "r", locking=False) as f:
                    if len(f["time"]) >= n:
                        return
            except (OSError, KeyError):
                pass
        time.sleep(0.05)
    raise AssertionError(f"no {n} frames in {timeout} s")


def _wait_for(path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.005)


def _check_interrupted_and_resume(tmp_path, proc, out, err):
    run = tmp_path / "out" / "run.h5"
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err
    with h5py.File(run) as f:
        assert f.attrs["status"] == "interrupted"
        t_ckpt = float(f["checkpoint"].attrs["time"])
        t_reached = float(f["observables/time"][-1])   # the step the run reached
        assert t_ckpt == t_reached > 0
        assert f["time"][-1] <= t_ckpt
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "spatialdtp", f"+resume={run}",
                           f"run.days={(t_ckpt + 240) / 1440!r}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    with h5py.File(run) as f:
        assert f.attrs["status"] == "complete"
        assert f["time"][-1] == pytest.approx(t_ckpt + 240)
        assert np.all(np.diff(f["observables/time"][:]) > 0)


def test_sigterm_twice_5_ms_apart_stops_once_with_a_fresh_checkpoint(tmp_path):
    proc = _start(tmp_path, LONG_RUN)
    _wait_for_frames(proc, tmp_path / "out" / "run.h5", 3)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    _check_interrupted_and_resume(tmp_path, proc, out, err)


@pytest.mark.parametrize("hold_at", ["write_checkpoint", "close"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_during_the_final_checkpoint_or_close_is_ignored(tmp_path, sig, hold_at):
    proc = _start(tmp_path, LONG_RUN, hold_at=hold_at)
    hold = tmp_path / "hold"
    _wait_for_frames(proc, tmp_path / "out" / "run.h5", 3)
    (hold / "armed").touch()
    sent = time.monotonic()
    proc.send_signal(sig)
    _wait_for(hold / f"{hold_at}.begin", proc)       # the run is writing its last data now
    proc.send_signal(sig)
    second = time.monotonic() - sent
    time.sleep(0.05)
    (hold / f"{hold_at}.go").touch()
    out, err = proc.communicate(timeout=120)
    assert "ignored" in out + err, out + err
    _check_interrupted_and_resume(tmp_path, proc, out, err)
    assert second < 60


@pytest.mark.parametrize("hold_at", ["close", "write_outputs"])
def test_a_signal_while_a_finished_run_closes_its_file_is_ignored(tmp_path, hold_at):
    """The run had reached its end: it stays complete (exit 0), with its summary files."""
    proc = _start(tmp_path, ["experiment=quick", "hydra.run.dir=out", "run.plot=false"],
                  hold_at=hold_at)
    hold = tmp_path / "hold"
    (hold / "armed").touch()
    _wait_for(hold / f"{hold_at}.begin", proc, timeout=120)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    (hold / f"{hold_at}.go").touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "ignored" in out + err
    with h5py.File(tmp_path / "out" / "run.h5") as f:
        assert f.attrs["status"] == "complete"
        assert float(f["checkpoint"].attrs["time"]) == 1440.0
    assert (tmp_path / "out" / "run_summary.json").exists()
