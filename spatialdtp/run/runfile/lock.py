"""Who writes a run file: ``<run file>.lock`` beside it, whatever HDF5's own locking does.

HDF5 locks a file it writes with ``flock``, but clusters often turn that off
(``HDF5_USE_FILE_LOCKING=FALSE`` on NFS and Lustre), and then two writers of one file
corrupt it. So a writer first creates ``run.h5.lock`` with ``O_CREAT | O_EXCL`` (atomic on
local file systems and NFSv3+), holding one JSON line: host, pid, the process's start time
and boot id (so a reused pid is not mistaken for the writer), and a token. Whoever finds
the lock asks whether its writer lives:

- on the same host (and boot): the pid exists and started when the lock says;
- on another host: the lock file's modification time is less than :data:`STALE_SECONDS`
  old; the writer refreshes it every :data:`HEARTBEAT_SECONDS` from a background thread.

A lock whose writer is gone (a killed run) is stale and is taken over; a live one makes
:class:`RunFileBusy` name the host and pid. The lock file is removed when the writer
closes the file.

The same file is the run's **disk reserve**: after the JSON line it is extended by
``reserve_bytes`` (``posix_fallocate``). When a write fails because the disk is full,
:meth:`WriterLock.release_reserve` gives that space back, so that HDF5 can flush its
metadata and close the file whole (without it, HDF5 crashes at exit on a full disk).
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 600.0
LOCK_SUFFIX = ".lock"


class RunFileBusy(RuntimeError):
    """Another live process writes this run file."""


def lock_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + LOCK_SUFFIX)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc has none)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # exists, another user's
        return True
    return True


def read_holder(path) -> dict | None:
    """The lock's JSON line (None if there is no lock; {} if it cannot be parsed)."""
    try:
        with open(lock_path(path), "rb") as f:
            line = f.readline(4096)
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        holder = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def holder_alive(path, holder: dict | None) -> bool:
    """Whether the process that wrote ``holder`` (the lock of ``path``) may still write."""
    if holder is None:
        return False
    try:
        age = time.time() - os.stat(lock_path(path)).st_mtime
    except FileNotFoundError:
        return False
    same_machine = (holder.get("host") == socket.gethostname()
                    and holder.get("boot_id", "") == _boot_id())
    if same_machine and isinstance(holder.get("pid"), int):
        pid = holder["pid"]
        return _pid_alive(pid) and (not holder.get("start") or _start_time(pid) == holder["start"])
    if holder.get("host") == socket.gethostname() and holder.get("boot_id") != _boot_id():
        return False            # written before this machine rebooted
    return age < STALE_SECONDS   # another host (or an unreadable lock): trust the heartbeat


def describe_holder(path, holder: dict | None) -> str:
    if not holder:
        return f"{lock_path(path)} exists (being created, or unreadable)"
    since = holder.get("since", "?")
    return (f"process {holder.get('pid')} on {holder.get('host')} (since {since}; lock "
            f"{lock_path(path)})")


def busy_message(path, holder) -> str:
    return (f"run file {os.fspath(path)!r} is being written by {describe_holder(path, holder)}; "
            "wait for that run to end, or stop it. If that process is certainly gone (a "
            f"crashed node), delete {lock_path(path)} and try again")


class WriterLock:
    """The writer's lock (and disk reserve) of one run file."""

    def __init__(self, path, reserve_bytes: int = 0):
        self.path = Path(path)
        self.file = lock_path(path)
        self.reserve_bytes = int(reserve_bytes)
        self.token = secrets.token_hex(8)
        self._fd: int | None = None
        self._head = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking and giving back
    def acquire(self) -> "WriterLock":
        line = (json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                            "start": _start_time(os.getpid()), "boot_id": _boot_id(),
                            "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "token": self.token}) + "\n").encode()
        for _ in range(5):
            try:
                fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
            except FileExistsError:
                holder = read_holder(self.path)
                if holder_alive(self.path, holder):
                    raise RunFileBusy(busy_message(self.path, holder)) from None
                self._break_stale()
                continue
            try:
                os.write(fd, line)
                self._head = len(line)
                self._reserve(fd)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                os.unlink(self.file)
                raise
            self._fd = fd
            self._thread = threading.Thread(target=self._heartbeat, daemon=True,
                                            name="spatialdtp-lock-heartbeat")
            self._thread.start()
            return self
        raise RunFileBusy(busy_message(self.path, read_holder(self.path)))

    def _break_stale(self):
        """Move a dead writer's lock aside (one taker wins the rename) and delete it."""
        aside = self.file.with_name(f"{self.file.name}.stale-{self.token}")
        try:
            os.rename(self.file, aside)
        except FileNotFoundError:
            return              # someone else took it over first
        os.unlink(aside)

    def _reserve(self, fd: int):
        if self.reserve_bytes <= 0:
            return
        try:
            os.posix_fallocate(fd, self._head, self.reserve_bytes)
        except OSError as exc:
            import errno

            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise OSError(exc.errno, f"cannot reserve {self.reserve_bytes / 2**20:.0f} MiB "
                              f"beside the run file ({exc.strerror}); the disk holding "
                              f"{self.path.parent} is full") from None
            block = bytes(1 << 20)   # no fallocate here (e.g. some NFS): write the zeros
            os.lseek(fd, self._head, os.SEEK_SET)
            for start in range(0, self.reserve_bytes, len(block)):
                os.write(fd, block[:min(len(block), self.reserve_bytes - start)])

    def release_reserve(self) -> None:
        """Give the disk reserve back (keep the lock): the file system has room again for
        HDF5 to finish its metadata and close the file."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._head)
            except OSError:
                pass

    def release(self) -> None:
        """Stop the heartbeat and delete the lock file, if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        holder = read_holder(self.path)
        if holder and holder.get("token") == self.token:
            try:
                os.unlink(self.file)
            except FileNotFoundError:
                pass

    def _heartbeat(self):
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.file)
            except OSError:
                pass

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def check_not_busy(path) -> None:
    """Raise RunFileBusy if a live process holds the lock of ``path``."""
    holder = read_holder(path)
    if holder is not None and holder_alive(path, holder):
        raise RunFileBusy(busy_message(path, holder))
