"""Writing a run file (the layout is in :mod:`.format`): :class:`RunWriter`.

What a crash can lose is set by the order of writes (the full contract is in
:mod:`.format`):

- **one writer**: a run file is created exclusively and written under its
  :mod:`lock <.lock>` (``run.h5.lock``), whatever HDF5's own file locking does;
- **ordered, durable frames**: a frame's chunks (and the observable columns) are written,
  flushed and ``fsync``-ed before ``/time`` (``/observables/time``) is extended and synced
  in turn, so a frame counted by ``/time`` is on disk whole even if the process dies in the
  middle of the second flush (HDF5 writes its metadata in no particular order);
- **checkpoints**: written to ``/checkpoint_new`` and synced before the old ``/checkpoint``
  is deleted and the new one moved into its place;
- **a full disk**: the first write that fails (ENOSPC, EDQUOT, EIO, ...) marks the writer
  broken and raises :class:`RunFileWriteError`; the disk reserve held in the lock file is
  given back so that the file can still be closed whole, with its last frames and
  checkpoint readable and resumable.
"""
from __future__ import annotations

import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import is_dataclass
from datetime import datetime, timezone
from typing import Mapping

import h5py
import numpy as np

from ... import __version__
from ...backends import host_array
from ...model.grid import Grid
from .format import (
    CHECKPOINT,
    CHECKPOINT_NEW,
    FIELD_KINDS,
    FORMAT,
    FORMAT_VERSION,
    GZIP,
    MAX_CHUNK_BYTES,
    REQUIRED_ATTRS,
    STATUSES,
    TIME_SLACK,
    WRITER_ATTRS,
    attr_value,
    attribute_value,
    check_name,
    checkpoint_group,
    open_read,
    require_run_file,
    whole_frames,
)
from .lock import WriterLock

#: space kept in the lock file for the last metadata writes on a full disk: HDF5's dirty
#: metadata (a few hundred kB here) and each dataset's chunk cache (1 MiB, h5py's default)
RESERVE_BASE_BYTES = 8 * 2**20
CHUNK_CACHE_BYTES = 2**20


class RunFileExists(FileExistsError):
    """A run file exists where a new one would be created."""


class RunFileWriteError(OSError):
    """Writing the run file failed (a full disk, a quota, an I/O error); what it held
    before that write is readable and resumable."""


_ERRNO = re.compile(r"errno = (\d+), error message = '([^']*)'")


def _io_reason(exc: BaseException) -> str:
    """'No space left on device (errno 28)' out of HDF5's long message, else the message."""
    text = str(exc)
    m = _ERRNO.search(text)
    if m:
        return f"{m.group(2)} (errno {m.group(1)})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})"
    return text.splitlines()[0] if text else type(exc).__name__


def _check_time(what: str, t, after: float | None) -> float:
    t = float(t)
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"{what} t={t}: must be a finite time >= 0 minutes")
    if after is not None and not t > after:
        raise ValueError(f"{what} t={t}: must be later than the last one written ({after} min)")
    return t


def _check_flush_every(flush_every):
    if isinstance(flush_every, bool) or not isinstance(flush_every, (int, np.integer)) \
            or flush_every < 1:
        raise ValueError(f"flush_every={flush_every!r}: must be an integer >= 1")


def _json_default(obj):
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-able; pass arrays as checkpoint arrays")


def _config_text(config) -> str:
    if isinstance(config, str):
        return config
    import yaml

    if is_dataclass(config):
        from ...config import to_dict

        config = to_dict(config)
    if isinstance(config, Mapping):
        return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)
    raise ValueError(f"attrs['config'] of type {type(config).__name__}: "
                     "must be YAML text, a dict or the config dataclass")


class RunWriter:
    """Writes one run file; use as a context manager so the final status is recorded.

    ``fields``: name -> {"units", "long_name" (default: the name), "kind"}, in state order.
    ``attrs``: root attributes; "config" (YAML text, dict or config dataclass), "backend",
    "device" and "seed" are required, "precision" defaults to ``dtype``; more are allowed.
    ``dtype``: float32 or float64, the dtype of the field frames.
    ``flush_every``: observable rows kept in memory before they are written and flushed.
    ``overwrite``: replace an existing file at ``path`` (otherwise FileExistsError).
    """

    def __init__(self, path, *, grid: Grid, fields: dict[str, dict], attrs: dict, dtype,
                 flush_every: int = 100, overwrite: bool = False, expected_frames: int = 1024,
                 expected_rows: int = 1024):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype={dtype}: frames are float32 or float64")
        _check_flush_every(flush_every)
        specs = self._check_fields(fields)
        root = self._check_attrs(attrs, dtype)
        frame_bytes = grid.size * dtype.itemsize
        if frame_bytes > MAX_CHUNK_BYTES:
            raise ValueError(f"grid.shape={list(grid.shape)} at {dtype}: one frame is "
                             f"{frame_bytes / 2**30:.1f} GiB, over HDF5's 4 GiB chunk limit")
        path = os.path.abspath(os.fspath(path))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            lock = WriterLock(path, reserve_bytes(len(specs))).acquire()  # RunFileBusy if live
        except OSError as exc:   # no room for the disk reserve
            raise RunFileWriteError(f"creating {path} failed: {exc}") from None
        # Written under a temporary name and linked into place once it holds a checkpoint
        # (publish): a run file is never seen half-created.
        part = os.path.join(os.path.dirname(path),
                            f".{os.path.basename(path)}.{lock.token}.part")
        try:
            if os.path.lexists(path) and not overwrite:
                raise RunFileExists(
                    f"run file {path!r} exists: pass overwrite=True to replace it, or resume "
                    "it with RunWriter.reopen")
            f = h5py.File(part, "x", track_order=True)   # exclusive: never truncates
        except BaseException:
            lock.release()
            raise
        try:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["spatialdtp_version"] = __version__
            for key, value in root.items():
                f.attrs[key] = value
            f.attrs["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            f.attrs["status"] = "running"
            f.attrs["ndim"] = np.int64(grid.ndim)
            f.attrs["shape"] = np.asarray(grid.shape, dtype=np.int64)
            f.attrs["dx"] = np.float64(grid.dx)
            f.attrs["axes"] = list(grid.axes)
            f.attrs["time_units"] = "min"

            # The two counting datasets get one chunk for the whole run, allocated with the
            # first frame: a new chunk would move the file's end in the same flush that
            # extends the count (a kill then leaves the count unreadable).
            time = f.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64,
                                    chunks=(_count_chunk(expected_frames),),
                                    fillvalue=np.nan)
            time.attrs["units"] = "min"
            group = f.create_group("fields", track_order=True)
            for name, spec in specs.items():
                # a chunk never written reads NaN, not zeros; Fletcher-32 makes a damaged
                # one an error on read
                ds = group.create_dataset(name, shape=(0, *grid.shape),
                                          maxshape=(None, *grid.shape), dtype=dtype,
                                          chunks=(1, *grid.shape), fillvalue=np.nan,
                                          fletcher32=True, **GZIP)
                for key in ("units", "long_name", "kind"):
                    ds.attrs[key] = spec[key]
            obs = f.create_group("observables", track_order=True)
            otime = obs.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64,
                                       chunks=(_count_chunk(expected_rows),), fillvalue=np.nan)
            otime.attrs["units"] = "min"
            f.create_group("static", track_order=True)
            f.flush()
        except BaseException:
            f.close()
            os.unlink(part)
            lock.release()
            raise
        self._setup(f, grid, dtype, flush_every, lock)
        self.path = path
        self._part, self._overwrite = part, overwrite

    # -- construction helpers
    def _setup(self, f: h5py.File, grid: Grid, dtype, flush_every: int, lock: WriterLock):
        self._file = f
        self._lock = lock
        self._broken: BaseException | None = None
        try:
            self._fd = f.id.get_vfd_handle()   # the sec2 driver's descriptor, for fsync
        except Exception:  # noqa: BLE001 - another driver: flush only
            self._fd = None
        self.path = f.filename
        self._part = None          # the temporary name until published (new files only)
        self.grid = grid
        self.dtype = np.dtype(dtype)
        self.flush_every = int(flush_every)
        self.field_names = tuple(f["fields"])
        # Every dataset stays open while the writer lives. h5py closes a dataset when its
        # last Python handle goes, and HDF5 then writes that dataset's cached chunks: on a
        # full disk that write fails inside a destructor, where no one sees the error and
        # HDF5 is left half-closed (it crashed at exit). Kept open, every write to disk
        # happens in a flush this class makes and checks.
        self._ds = {name: f["fields"][name] for name in self.field_names}
        self._time = f["time"]
        self._obs = {name: ds for name, ds in f["observables"].items()}
        self._obs_rows: list[tuple[float, dict[str, float]]] = []
        self._obs_units: dict[str, str] = {
            n: str(attribute_value(f["observables"][n].attrs.get("units", "")))
            for n in f["observables"] if n != "time"}
        n_frames = f["time"].shape[0]
        self._last_frame_t = float(f["time"][n_frames - 1]) if n_frames else None
        n_obs = f["observables/time"].shape[0]
        self._last_obs_t = float(f["observables/time"][n_obs - 1]) if n_obs else None

    @staticmethod
    def _check_fields(fields) -> dict[str, dict]:
        if not isinstance(fields, Mapping) or not fields:
            raise ValueError(f"fields={fields!r}: must be a non-empty dict name -> "
                             "{'units', 'long_name', 'kind'}")
        specs = {}
        for name, spec in fields.items():
            check_name("field", name)
            extra = set(spec) - {"units", "long_name", "kind"}
            if extra:
                raise ValueError(f"fields[{name!r}] has unknown keys {sorted(extra)}; "
                                 "allowed are 'units', 'long_name', 'kind'")
            if spec.get("kind") not in FIELD_KINDS:
                raise ValueError(f"fields[{name!r}]['kind']={spec.get('kind')!r}: must be one "
                                 f"of {list(FIELD_KINDS)}")
            if not isinstance(spec.get("units"), str):
                raise ValueError(f"fields[{name!r}]['units']={spec.get('units')!r}: every field "
                                 "needs its units as text ('' if dimensionless)")
            specs[name] = {"units": spec["units"], "long_name": str(spec.get("long_name", name)),
                           "kind": spec["kind"]}
        return specs

    @staticmethod
    def _check_attrs(attrs, dtype) -> dict:
        attrs = dict(attrs)
        missing = [k for k in REQUIRED_ATTRS if k not in attrs]
        if missing:
            raise ValueError(f"attrs lacks {missing}: a run file records "
                             f"{list(REQUIRED_ATTRS)} (and precision)")
        owned = [k for k in attrs if k in WRITER_ATTRS]
        if owned:
            raise ValueError(f"attrs {owned} are set by the writer; do not pass them")
        attrs["config"] = _config_text(attrs["config"])
        attrs.setdefault("precision", dtype.name)
        if attrs["precision"] != dtype.name:
            raise ValueError(f"attrs['precision']={attrs['precision']!r} but dtype={dtype.name}")
        return {str(k): attr_value(str(k), v) for k, v in attrs.items()}

    @classmethod
    def reopen(cls, path, flush_every: int = 100) -> "RunWriter":
        """Reopen a run file to resume it from its checkpoint: frames and observables later
        than the checkpoint time are removed, status goes back to "running", and writing
        continues after the checkpoint.

        Refused (:class:`~.lock.RunFileBusy`) while another process writes the file. Frames
        that are not whole (:func:`~.format.whole_frames`: a chunk never written or
        unreadable) are removed with everything after them; their times are added to the
        root attribute ``lost_frames`` and a warning names them.
        """
        _check_flush_every(flush_every)
        require_run_file(path)
        with open_read(path) as f:
            n_datasets = len(f["fields"])
        try:
            lock = WriterLock(path, reserve_bytes(n_datasets)).acquire()
        except OSError as exc:   # no room for the disk reserve
            raise RunFileWriteError(f"resuming {os.fspath(path)} failed: {exc}") from None
        try:
            f = h5py.File(path, "r+")
        except BaseException:
            lock.release()
            raise
        try:
            group = checkpoint_group(f)
            if group is None:
                raise ValueError(f"{os.fspath(path)!r} has no checkpoint to resume from")
            if group.name.lstrip("/") == CHECKPOINT_NEW:  # finish the interrupted swap
                f.move(CHECKPOINT_NEW, CHECKPOINT)
            elif CHECKPOINT_NEW in f:  # a checkpoint write that never finished
                del f[CHECKPOINT_NEW]
            t_ckpt = float(f[CHECKPOINT].attrs["time"])
            limit = t_ckpt + TIME_SLACK

            times = f["time"][:]
            n_frames = int(np.searchsorted(times, limit, side="right"))
            whole, problem = whole_frames(f, n_frames)
            if whole < n_frames:
                import warnings

                lost = [float(x) for x in times[whole:n_frames]]
                old = [float(x) for x in np.atleast_1d(f.attrs.get("lost_frames", []))]
                f.attrs["lost_frames"] = np.asarray(old + lost, dtype=np.float64)
                warnings.warn(f"{os.fspath(path)}: frames at t = {lost} min are not whole "
                              f"({problem}); resuming drops them", stacklevel=2)
                n_frames = whole
            f["time"].resize(n_frames, axis=0)
            for ds in f["fields"].values():
                ds.resize(n_frames, axis=0)
            n_obs = int(np.searchsorted(f["observables/time"][:], limit, side="right"))
            for ds in f["observables"].values():
                ds.resize(n_obs, axis=0)
            f.attrs["status"] = "running"
            f.flush()
            grid = Grid(tuple(int(n) for n in f.attrs["shape"]), float(f.attrs["dx"]))
            names = list(f["fields"])
            dtype = f["fields"][names[0]].dtype
        except BaseException:
            f.close()
            lock.release()
            raise
        writer = cls.__new__(cls)
        writer._setup(f, grid, dtype, flush_every, lock)
        writer._sync()
        return writer

    # -- writing
    @property
    def closed(self) -> bool:
        return self._file is None

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise ValueError(f"run file {self.path!r} is closed")
        if self._broken is not None:
            raise RunFileWriteError(f"run file {self.path!r} takes no more writes: an earlier "
                                    f"write failed ({_io_reason(self._broken)})")
        return self._file

    @contextmanager
    def _writing(self, what: str):
        """Turn a failed HDF5 write into one RunFileWriteError, and keep the file closable:
        the disk reserve is given back at once."""
        try:
            yield
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, RunFileWriteError):
                raise
            self._broken = exc
            self._lock.release_reserve()
            raise RunFileWriteError(f"writing {what} to {self.path} failed: "
                                    f"{_io_reason(exc)}") from None

    def _sync(self):
        """Flush HDF5's caches to the file and the file to the disk."""
        self._file.flush()
        if self._fd is not None:
            os.fsync(self._fd)

    @property
    def published(self) -> bool:
        """Whether the file is at ``path`` yet (a new file is, from its first checkpoint)."""
        return self._part is None

    def publish(self):
        """Give the new file its name: link it into place (or replace the old file with
        ``overwrite``), with everything written so far synced first."""
        if self._part is None:
            return
        with self._writing("the new run file's name"):
            self._sync()
            if self._overwrite:
                os.replace(self._part, self.path)
            else:
                os.link(self._part, self.path)     # fails if the name was taken meanwhile
                os.unlink(self._part)
            self._part = None
            try:
                dir_fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            except OSError:
                pass

    def _check_array(self, what: str, array) -> np.ndarray:
        array = host_array(array)
        if array.shape != self.grid.shape:
            raise ValueError(f"{what} has shape {array.shape}; the grid is {self.grid.shape}")
        return array

    def write_static(self, name: str, array, units: str = ""):
        """A map that does not change over the run (vessels, labels), shape = grid."""
        f = self._require_open()
        check_name("static map", name)
        array = self._check_array(f"static map {name!r}", array)
        with self._writing(f"static map {name!r}"):
            group = f["static"]
            if name in group:
                del group[name]
            ds = group.create_dataset(name, data=array, chunks=self.grid.shape, **GZIP)
            ds.attrs["units"] = units
            self._sync()
            del ds

    def write_frame(self, t: float, arrays: dict[str, np.ndarray]):
        """One frame (time ``t`` minutes) of every field, durable before ``/time`` counts it."""
        f = self._require_open()
        t = _check_time("frame", t, self._last_frame_t)
        if set(arrays) != set(self.field_names):
            missing = sorted(set(self.field_names) - set(arrays))
            extra = sorted(set(arrays) - set(self.field_names))
            raise ValueError(f"frame at t={t}: missing fields {missing}, unknown fields {extra}; "
                             f"a frame holds every field of {list(self.field_names)}")
        frames = {n: self._check_array(f"field {n!r}", a).astype(self.dtype, copy=False)
                  for n, a in arrays.items()}
        with self._writing(f"the frame at t = {t:g} min"):
            i = self._time.shape[0]
            for name in self.field_names:
                self._ds[name].resize(i + 1, axis=0)
                self._ds[name][i] = frames[name]
            rows = self._write_observable_columns()
            self._sync()                    # the frame's data and chunk index are on disk
            self._time.resize(i + 1, axis=0)
            self._time[i] = t
            self._count_observable_rows(rows)
            self._sync()                    # only now does /time count the frame
        self._last_frame_t = t

    def append_observables(self, t: float, values: dict[str, float],
                           units: dict[str, str] | None = None):
        """One row of per-step scalars at time ``t`` minutes (kept in memory; written every
        ``flush_every`` rows, at every frame and checkpoint, and on close)."""
        self._require_open()
        t = _check_time("observables", t, self._last_obs_t)
        row = {}
        for name, value in values.items():
            check_name("observable", name)
            if name == "time":
                raise ValueError("observable name 'time' is reserved for the row times")
            row[name] = float(value)
            self._obs_units.setdefault(name, "")
        for name, unit in (units or {}).items():
            if unit:
                self._obs_units[check_name("observable", name)] = str(unit)
        self._obs_rows.append((t, row))
        self._last_obs_t = t
        if len(self._obs_rows) >= self.flush_every:
            self._flush_observables()

    def _flush_observables(self):
        """Buffered rows to disk: columns first, synced, then ``/observables/time``."""
        if not self._obs_rows:
            return
        with self._writing("the observables"):
            rows = self._write_observable_columns()
            self._sync()
            self._count_observable_rows(rows)
            self._sync()

    def _write_observable_columns(self) -> list[float]:
        """Append the buffered rows to every column (not yet counted); their times."""
        if not self._obs_rows:
            return []
        n = self._obs["time"].shape[0]
        m = len(self._obs_rows)
        for name, unit in self._obs_units.items():
            if name not in self._obs:  # a new observable: earlier rows read NaN
                self._obs[name] = self._file["observables"].create_dataset(
                    name, shape=(n,), maxshape=(None,), dtype=np.float64, chunks=(1024,),
                    fillvalue=np.nan)
            ds = self._obs[name]
            if unit and ds.attrs.get("units", "") != unit:
                ds.attrs["units"] = unit
            ds.resize(n + m, axis=0)
            ds[n:] = [row.get(name, np.nan) for _, row in self._obs_rows]
        times = [t for t, _ in self._obs_rows]
        self._obs_rows.clear()
        return times

    def _count_observable_rows(self, times: list[float]):
        if times:
            otime = self._obs["time"]
            n = otime.shape[0]
            otime.resize(n + len(times), axis=0)  # its length counts finished rows
            otime[n:] = times

    def write_checkpoint(self, step: int, t: float, arrays: dict[str, np.ndarray], info: dict):
        """Replace /checkpoint: ``arrays`` stored bit-exactly, ``info`` (JSON-able) as one
        JSON text attribute per key. The previous checkpoint survives a crash meanwhile."""
        f = self._require_open()
        t = _check_time("checkpoint", t, None)
        for key in info:
            if key in ("step", "time") or not isinstance(key, str):
                raise ValueError(f"checkpoint info key {key!r}: must be a string other than "
                                 "'step' and 'time'")
        texts = {key: json.dumps(value, default=_json_default) for key, value in info.items()}
        self._flush_observables()
        with self._writing(f"the checkpoint at t = {t:g} min"):
            if CHECKPOINT_NEW in f:
                del f[CHECKPOINT_NEW]
            group = f.create_group(CHECKPOINT_NEW, track_order=True)
            # handles kept until synced: closing a dataset writes its buffers (see _setup)
            kept = [group.create_dataset(check_name("checkpoint array", name),
                                         data=host_array(array))
                    for name, array in arrays.items()]
            for key, text in texts.items():
                group.attrs[key] = text
            group.attrs["time"] = np.float64(t)
            group.attrs["step"] = np.int64(step)  # last: marks the new checkpoint finished
            self._sync()
            del kept
            if CHECKPOINT in f:
                del f[CHECKPOINT]
            f.move(CHECKPOINT_NEW, CHECKPOINT)
            self._sync()
        self.publish()   # a new file gets its name with its first checkpoint

    def write_failure(self, step: int, t: float, arrays: dict[str, np.ndarray], message: str):
        """Keep the state that went wrong in /failure for post-mortem; /checkpoint (the last
        good state) is left as it was, so the run can be resumed from before the failure."""
        f = self._require_open()
        with self._writing("the failure record"):
            if "failure" in f:
                del f["failure"]
            group = f.create_group("failure")
            kept = [group.create_dataset(check_name("failure array", name),
                                         data=host_array(array))
                    for name, array in arrays.items()]
            group.attrs["step"] = np.int64(step)
            group.attrs["time"] = np.float64(_check_time("failure", t, None))
            group.attrs["message"] = str(message)
            self._sync()
            del kept
        self._flush_observables()

    def write_summary(self, values: dict):
        """End-of-run scalars as attributes of /summary (merged with earlier calls)."""
        f = self._require_open()
        with self._writing("the summary"):
            group = f.require_group("summary")
            for key, value in values.items():
                group.attrs[check_name("summary", key)] = attr_value(key, value)
            self._sync()

    @property
    def broken(self) -> bool:
        """True once a write failed: the file takes no more data, only its status."""
        return self._broken is not None

    def close(self, status: str = "complete"):
        """Write buffered observables, record ``status`` and close; then release the lock.
        Idempotent. After a failed write the buffered rows are dropped and only the status
        is recorded (with the disk reserve given back, there is room for it)."""
        if self._file is None:
            return
        if status not in ("running", "complete", "interrupted") and \
                not (isinstance(status, str) and status.startswith("failed: ")):
            raise ValueError(f"status={status!r}: allowed are {list(STATUSES)}")
        f = self._file
        try:
            if self._broken is None:
                try:
                    self._flush_observables()
                except RunFileWriteError as err:
                    if not status.startswith("failed"):
                        status = f"failed: {err}"[:1000]
            try:
                f.attrs["status"] = status
                f.flush()
            except (OSError, RuntimeError):
                self._lock.release_reserve()   # the disk filled meanwhile: make room, retry
                f.attrs["status"] = status
                f.flush()
            if self._fd is not None:
                os.fsync(self._fd)
            if self._part is not None:    # even a failed run's file gets its name
                self.publish()
        finally:
            self._file = None
            self._ds, self._obs, self._time = {}, {}, None
            try:
                f.close()
            finally:
                self._lock.release()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            status = "complete"
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            status = "interrupted"
        else:
            status = f"failed: {exc_type.__name__}: {exc}"[:1000]
        self.close(status)
        return False


def reserve_bytes(n_datasets: int) -> int:
    """The disk reserve kept in the lock file for a run file of ``n_datasets`` fields (see
    RESERVE_BASE_BYTES)."""
    return RESERVE_BASE_BYTES + n_datasets * CHUNK_CACHE_BYTES


def _count_chunk(expected: int) -> int:
    """Chunk length of a counting dataset (/time, /observables/time): the expected count,
    within [1024, 2**20] (8 KiB to 8 MiB)."""
    return int(min(max(int(expected), 1024), 2**20))
