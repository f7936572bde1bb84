"""One writer per run file: ``run.h5.lock`` says who writes it, whatever HDF5's own locking
does (clusters turn it off). A live writer elsewhere refuses a second writer and a resume,
leaving the file as it was; a dead writer's lock (a killed run, a reused pid, a reboot, a
silent host) is taken over."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from spatialdtp.model.grid import Grid
from spatialdtp.run.runfile import RunFileBusy, RunWriter, lock_path
from spatialdtp.run.runfile import lock as L

from test_io import FIELDS, LIVE_WRITER, attrs


def n_frames(path) -> int:
    with h5py.File(path, "r", locking=False) as f:
        return int(f["time"].shape[0])


def test_a_live_writer_refuses_a_second_writer_and_a_resume_until_it_is_gone(tmp_path):
    path = tmp_path / "live.h5"
    proc = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, str(path)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            cwd=os.path.dirname(__file__))
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert n_frames(path) == 3                        # frames 0, 60, 120; checkpoint at 60
        with pytest.raises(RunFileBusy, match=f"process {proc.pid} on"):
            RunWriter(path, grid=Grid((16, 12), 10.0), fields=FIELDS, attrs=attrs(),
                      dtype="float32", overwrite=True)
        with pytest.raises(RunFileBusy, match=f"process {proc.pid} on"):
            RunWriter.reopen(path)
        # refused before touching it: a resume would have cut the file back to its checkpoint
        assert n_frames(path) == 3 and path.exists()
    finally:
        proc.communicate(timeout=30)          # the writer returns without closing: killed
    assert proc.returncode == 0 and lock_path(path).exists()   # its lock is left behind
    w = RunWriter.reopen(path)                # ... and is stale now: the resume takes it over
    assert L.read_holder(path)["pid"] == os.getpid()
    w.close()
    assert not lock_path(path).exists()       # closing gives the lock back
    assert n_frames(path) == 2                # resumed from the checkpoint at t = 60 min


def test_the_command_line_refuses_to_resume_a_file_being_written_in_one_line(tmp_path):
    """``spatialdtp-run +resume=`` on a file another process writes: exit 2 before anything
    is written, the writer's pid named, no traceback, the file as it was."""
    path = tmp_path / "live.h5"
    proc = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, str(path)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready"
        cli = subprocess.run([sys.executable, "-m", "spatialdtp", f"+resume={path}",
                              "hydra.run.dir=out"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=240)
        said = cli.stdout + cli.stderr
        assert cli.returncode == 2, said
        assert f"being written by process {proc.pid}" in said and "Traceback" not in said
        assert not (tmp_path / "out").exists() and n_frames(path) == 3
    finally:
        proc.communicate(timeout=30)


def write_lock(path, mtime_age=0.0, **holder):
    """A lock file as another writer would have left it, ``mtime_age`` seconds ago."""
    line = {"host": socket.gethostname(), "pid": os.getpid(), "start": L._start_time(os.getpid()),
            "boot_id": L._boot_id(), "since": "2026-01-01T00:00:00Z", "token": "theirs",
            **holder}
    lock_path(path).write_text(json.dumps(line) + "\n")
    t = time.time() - mtime_age
    os.utime(lock_path(path), (t, t))
    return L.read_holder(path)


def exited_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("who,alive", [
    ({}, True),                                          # this very process: live
    ({"pid": "exited"}, False),                          # a killed run on this machine
    ({"start": "0"}, False),                             # its pid reused by another process
    ({"boot_id": "before-the-reboot"}, False),           # written before this machine rebooted
    ({"host": "node17", "pid": 1}, True),                # another host, heartbeat fresh
    ({"host": "node17", "pid": 1, "age": L.STALE_SECONDS + 60}, False),  # host gone silent
])
def test_whether_a_lock_s_writer_may_still_write(tmp_path, who, alive):
    path = tmp_path / "run.h5"
    who = dict(who)
    if who.get("pid") == "exited":
        who["pid"] = exited_pid()
    age = who.pop("age", 0.0)
    holder = write_lock(path, mtime_age=age, **who)
    assert L.holder_alive(path, holder) is alive
    if alive:
        with pytest.raises(RunFileBusy):
            L.WriterLock(path).acquire()
        assert L.read_holder(path)["token"] == "theirs"   # left in place
    else:
        lock = L.WriterLock(path).acquire()               # the stale lock is taken over
        assert L.read_holder(path)["token"] == lock.token
        lock.release()
        assert not lock_path(path).exists()


def test_a_writer_never_deletes_a_lock_that_is_not_its_own(tmp_path):
    """If an operator deleted a hung writer's lock and another run took the file, the
    first writer's release must leave the new holder's lock alone."""
    path = tmp_path / "run.h5"
    lock = L.WriterLock(path).acquire()
    os.unlink(lock_path(path))
    write_lock(path)                          # the new writer's lock (token "theirs")
    lock.release()
    assert L.read_holder(path)["token"] == "theirs"


def test_the_lock_holds_the_disk_reserve_and_gives_it_back(tmp_path):
    path = tmp_path / "run.h5"
    lock = L.WriterLock(path, reserve_bytes=3 << 20).acquire()
    head = len(lock_path(path).read_bytes().split(b"\n")[0]) + 1
    assert os.path.getsize(lock_path(path)) == head + (3 << 20)
    lock.release_reserve()
    assert os.path.getsize(lock_path(path)) == head
    assert L.read_holder(path)["token"] == lock.token       # still the writer
    lock.release()
    np.testing.assert_equal(lock_path(path).exists(), False)
