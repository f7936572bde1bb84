"""Writing a run file (the layout is in :mod:`.format`): :class:`RunWriter`.

Crash safety: the writer calls ``flush()`` after every frame, every checkpoint and every
``flush_every`` observable rows, so a killed process loses at most the frame being written
and the unflushed observables. A checkpoint is written to ``/checkpoint_new`` and flushed
before the old ``/checkpoint`` is deleted and the new one moved into its place, so a crash
during a checkpoint keeps the previous one.
"""
from __future__ import annotations

import json
import math
import os
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
    require_run_file,
)


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
                 flush_every: int = 100, overwrite: bool = False):
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
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"run file {os.fspath(path)!r} exists: pass overwrite=True "
                                  "to replace it, or resume it with RunWriter.reopen")
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)

        f = h5py.File(path, "w", track_order=True)
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

            time = f.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64,
                                    chunks=(1024,))
            time.attrs["units"] = "min"
            group = f.create_group("fields", track_order=True)
            for name, spec in specs.items():
                ds = group.create_dataset(name, shape=(0, *grid.shape),
                                          maxshape=(None, *grid.shape), dtype=dtype,
                                          chunks=(1, *grid.shape), **GZIP)
                for key in ("units", "long_name", "kind"):
                    ds.attrs[key] = spec[key]
            obs = f.create_group("observables", track_order=True)
            otime = obs.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64,
                                       chunks=(1024,))
            otime.attrs["units"] = "min"
            f.create_group("static", track_order=True)
            f.flush()
        except BaseException:
            f.close()
            raise
        self._setup(f, grid, dtype, flush_every)

    # -- construction helpers
    def _setup(self, f: h5py.File, grid: Grid, dtype, flush_every: int):
        self._file = f
        self.path = f.filename
        self.grid = grid
        self.dtype = np.dtype(dtype)
        self.flush_every = int(flush_every)
        self.field_names = tuple(f["fields"])
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
        continues after the checkpoint."""
        _check_flush_every(flush_every)
        require_run_file(path)
        f = h5py.File(path, "r+")
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

            n_frames = int(np.searchsorted(f["time"][:], limit, side="right"))
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
            raise
        writer = cls.__new__(cls)
        writer._setup(f, grid, dtype, flush_every)
        return writer

    # -- writing
    @property
    def closed(self) -> bool:
        return self._file is None

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise ValueError(f"run file {self.path!r} is closed")
        return self._file

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
        group = f["static"]
        if name in group:
            del group[name]
        ds = group.create_dataset(name, data=array, chunks=self.grid.shape, **GZIP)
        ds.attrs["units"] = units
        f.flush()

    def write_frame(self, t: float, arrays: dict[str, np.ndarray]):
        """One frame (time ``t`` minutes) of every field; then flush everything."""
        f = self._require_open()
        t = _check_time("frame", t, self._last_frame_t)
        if set(arrays) != set(self.field_names):
            missing = sorted(set(self.field_names) - set(arrays))
            extra = sorted(set(arrays) - set(self.field_names))
            raise ValueError(f"frame at t={t}: missing fields {missing}, unknown fields {extra}; "
                             f"a frame holds every field of {list(self.field_names)}")
        frames = {n: self._check_array(f"field {n!r}", a).astype(self.dtype, copy=False)
                  for n, a in arrays.items()}
        i = f["time"].shape[0]
        for name in self.field_names:  # fields first: /time's length counts finished frames
            ds = f["fields"][name]
            ds.resize(i + 1, axis=0)
            ds[i] = frames[name]
        f["time"].resize(i + 1, axis=0)
        f["time"][i] = t
        self._last_frame_t = t
        self._flush_observables()
        f.flush()

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
            self._file.flush()

    def _flush_observables(self):
        if not self._obs_rows:
            return
        group = self._file["observables"]
        n = group["time"].shape[0]
        m = len(self._obs_rows)
        for name, unit in self._obs_units.items():
            if name not in group:  # a new observable: earlier rows read NaN
                group.create_dataset(name, shape=(n,), maxshape=(None,), dtype=np.float64,
                                     chunks=(1024,), fillvalue=np.nan)
            ds = group[name]
            if unit and ds.attrs.get("units", "") != unit:
                ds.attrs["units"] = unit
            ds.resize(n + m, axis=0)
            ds[n:] = [row.get(name, np.nan) for _, row in self._obs_rows]
        group["time"].resize(n + m, axis=0)  # last: its length counts finished rows
        group["time"][n:] = [t for t, _ in self._obs_rows]
        self._obs_rows.clear()

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
        if CHECKPOINT_NEW in f:
            del f[CHECKPOINT_NEW]
        group = f.create_group(CHECKPOINT_NEW, track_order=True)
        for name, array in arrays.items():
            group.create_dataset(check_name("checkpoint array", name), data=host_array(array))
        for key, text in texts.items():
            group.attrs[key] = text
        group.attrs["time"] = np.float64(t)
        group.attrs["step"] = np.int64(step)  # last: marks the new checkpoint finished
        f.flush()
        if CHECKPOINT in f:
            del f[CHECKPOINT]
        f.move(CHECKPOINT_NEW, CHECKPOINT)
        f.flush()

    def write_failure(self, step: int, t: float, arrays: dict[str, np.ndarray], message: str):
        """Keep the state that went wrong in /failure for post-mortem; /checkpoint (the last
        good state) is left as it was, so the run can be resumed from before the failure."""
        f = self._require_open()
        if "failure" in f:
            del f["failure"]
        group = f.create_group("failure")
        for name, array in arrays.items():
            group.create_dataset(check_name("failure array", name), data=host_array(array))
        group.attrs["step"] = np.int64(step)
        group.attrs["time"] = np.float64(_check_time("failure", t, None))
        group.attrs["message"] = str(message)
        self._flush_observables()
        f.flush()

    def write_summary(self, values: dict):
        """End-of-run scalars as attributes of /summary (merged with earlier calls)."""
        f = self._require_open()
        group = f.require_group("summary")
        for key, value in values.items():
            group.attrs[check_name("summary", key)] = attr_value(key, value)
        f.flush()

    def close(self, status: str = "complete"):
        """Write buffered observables, record ``status`` and close. Idempotent."""
        if self._file is None:
            return
        if status not in ("running", "complete", "interrupted") and \
                not (isinstance(status, str) and status.startswith("failed: ")):
            raise ValueError(f"status={status!r}: allowed are {list(STATUSES)}")
        f = self._file
        try:
            self._flush_observables()
            f.attrs["status"] = status
            f.flush()
        finally:
            self._file = None
            f.close()

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
