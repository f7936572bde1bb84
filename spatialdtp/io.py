"""The run file: one HDF5 file per run, self-describing, readable with plain h5py.

This layout is a public contract (the napari plugin and users' own scripts read it);
``format_version`` changes whenever it changes incompatibly.

Layout (``T`` frames, ``N`` observable rows, ``grid`` = ``(y, x)`` or ``(z, y, x)``)::

    /                         root attributes
        format              "spatialdtp-run"
        format_version      1
        spatialdtp_version  version of the package that wrote the file
        config              the resolved configuration, as YAML text
        backend             "numpy" | "cpu" | "cupy" (the one that ran; auto resolved)
        device              e.g. "cpu" or "NVIDIA H100 80GB HBM3"
        precision           "float32" | "float64"
        seed                integer
        created             ISO 8601 UTC, e.g. "2025-01-31T12:00:00Z"
        status              "running" while written, then "complete" | "interrupted" |
                            "failed: <reason>"; a file still "running" after its process
                            ended was killed (every frame it flushed is readable)
        ndim                2 or 3
        shape               grid shape, e.g. [128, 128]
        dx                  voxel edge, µm
        axes                ["y", "x"] or ["z", "y", "x"]
        time_units          "min"
        (any further root attributes the runner passes)
    /time                     (T,) float64, minutes of the written frames; attr units="min"
    /fields/<name>            (T, *grid) float32 or float64, one dataset per field, in state
                              order; one frame per chunk (chunks=(1, *grid)), gzip level 4
                              + shuffle, maxshape (None, *grid);
                              attrs units, long_name, kind ("substrate" | "cell" | "exposure")
    /observables/time         (N,) float64, minutes, one row per step; attr units="min"
    /observables/<name>       (N,) float64, NaN where a step did not report it; attr units
                              where given
    /static/<name>            (*grid) static maps, e.g. "vessels"; attr units
    /checkpoint               the latest restart point, replaced at each checkpoint:
        attrs step, time (min), and one JSON text attribute per key of the small
        structured state (e.g. treatment schedule state, RNG state);
        datasets: arrays, e.g. state (n_fields, *grid), stored bit-exactly
    /summary                  attrs: end-of-run scalars (time_to_progression_days is NaN
                              when the tumour did not progress, ...)

Reading rules: the number of frames is ``len(/time)`` and the number of observable rows
is ``len(/observables/time)``; a dataset may hold one more (incomplete) entry than that
if the writer was killed mid-write, so slice with those lengths. Frame ``i`` of field
``name`` is ``f["fields"][name][i]`` (one chunk, one read).

Crash safety: the writer calls ``flush()`` after every frame, every checkpoint and every
``flush_every`` observable rows, so a killed process loses at most the frame being written
and the unflushed observables. The file is opened with HDF5's default (oldest) format: with
``libver="latest"`` HDF5 marks the file "open for write" and refuses to open it after a
crash until ``h5clear -s`` is run. A checkpoint is written to ``/checkpoint_new`` and
flushed before the old ``/checkpoint`` is deleted and the new one moved into its place, so a
crash during a checkpoint keeps the previous one (``read_checkpoint`` and ``reopen`` pick up
a finished ``/checkpoint_new`` whose move did not happen).

Reading a run that is still being written: the writer holds HDF5's file lock, so a plain
``h5py.File(path, "r")`` from another process fails with "unable to lock file"; open it
with ``locking=False`` (this module's readers fall back to that by themselves). What the
writer flushed is consistent; reopen the file to see newer frames.

With plain h5py::

    with h5py.File("run.h5", "r") as f:
        t = f["time"][:]                           # minutes
        oxygen_last = f["fields/oxygen"][len(t) - 1]
        burden = f["observables/burden"][:len(f["observables/time"])]
        config = yaml.safe_load(f.attrs["config"])

HDF5 does not return the space of deleted objects to the file system: a file holds at most
two checkpoints' worth of space while written, plus one more for each resume
(``h5repack`` compacts it).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, is_dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import h5py
import numpy as np

from . import __version__
from .grid import Grid

FORMAT = "spatialdtp-run"
FORMAT_VERSION = 1
FIELD_KINDS = ("substrate", "cell", "exposure")
STATUSES = ("running", "complete", "interrupted", "failed: <reason>")
REQUIRED_ATTRS = ("config", "backend", "device", "seed")
# Root attributes the writer owns; a caller may not set them through ``attrs``.
WRITER_ATTRS = ("format", "format_version", "spatialdtp_version", "created", "status",
                "ndim", "shape", "dx", "axes", "time_units")
CHECKPOINT = "checkpoint"
CHECKPOINT_NEW = "checkpoint_new"
_GZIP = dict(compression="gzip", compression_opts=4, shuffle=True)
_MAX_CHUNK_BYTES = 2**32 - 1  # HDF5's limit on one chunk
# Times are compared with this slack (minutes) when truncating at a checkpoint, so a time
# recomputed as step * dt instead of accumulated still counts as "at the checkpoint".
_TIME_SLACK = 1e-6


# --------------------------------------------------------------------------- helpers
def _host(array) -> np.ndarray:
    """A NumPy array from a NumPy or CuPy array (CuPy refuses implicit conversion)."""
    if type(array).__module__.split(".")[0] == "cupy":
        array = array.get()
    return np.asarray(array)


def _check_name(what: str, name) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{what} name {name!r}: must be a non-empty string without '/'")
    return name


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


def _attr_value(key: str, value):
    """A Python value as an HDF5 attribute (strings stay variable-length UTF-8)."""
    if value is None:
        raise ValueError(f"attribute {key!r} is None: HDF5 cannot store None; "
                         "use NaN for a missing number or '' for a missing text")
    if isinstance(value, (str, bool, np.bool_)):
        return value
    if isinstance(value, (int, np.integer)):
        return np.int64(value)
    if isinstance(value, (float, np.floating)):
        return np.float64(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value) and value:
        return list(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            return array
    raise ValueError(f"attribute {key!r}={value!r}: allowed are str, bool, int, float or a "
                     "list of them")


def attribute_value(value):
    """An attribute as read by h5py, as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [attribute_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_default(obj):
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-able; pass arrays as checkpoint arrays")


def _config_text(config) -> str:
    if isinstance(config, str):
        return config
    import yaml

    if is_dataclass(config):
        from .config import to_dict

        config = to_dict(config)
    if isinstance(config, Mapping):
        return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)
    raise ValueError(f"attrs['config'] of type {type(config).__name__}: "
                     "must be YAML text, a dict or the config dataclass")


def _open_read(path) -> h5py.File:
    """Open read-only; a file another process is still writing is opened without HDF5's
    file lock (the writer flushes after every frame, so what it flushed is consistent)."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "lock" not in str(exc).lower():
            raise
        return h5py.File(path, "r", locking=False)


def _checkpoint_group(f: h5py.File) -> h5py.Group | None:
    """The valid checkpoint: /checkpoint, or a finished /checkpoint_new whose move did not
    happen (it was flushed before the old one was deleted)."""
    if CHECKPOINT in f:
        return f[CHECKPOINT]
    if CHECKPOINT_NEW in f and "step" in f[CHECKPOINT_NEW].attrs:
        return f[CHECKPOINT_NEW]
    return None


def fields_from_layout(layout, long_names: Mapping[str, str] | None = None) -> dict[str, dict]:
    """The ``fields`` argument of RunWriter for a ``state.FieldLayout``: substrates are
    "substrate", S/P/R/F/M "cell", ``auc_<drug>`` "exposure"; units from the layout."""
    from .state import CELL_LONG_NAMES

    long_names = {**CELL_LONG_NAMES, **(long_names or {})}
    kinds = {**{n: "substrate" for n in layout.substrates},
             **{n: "cell" for n in layout.cells},
             **{n: "exposure" for n in layout.accumulators}}
    for drug in layout.drugs:
        long_names.setdefault(f"auc_{drug}", f"local {drug} exposure (time integral)")
    return {name: {"units": layout.units.get(name, ""), "long_name": long_names.get(name, name),
                   "kind": kinds[name]} for name in layout.names}


# --------------------------------------------------------------------------- writer
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
        if frame_bytes > _MAX_CHUNK_BYTES:
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
                                          chunks=(1, *grid.shape), **_GZIP)
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
            _check_name("field", name)
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
        return {str(k): _attr_value(str(k), v) for k, v in attrs.items()}

    @classmethod
    def reopen(cls, path, flush_every: int = 100) -> "RunWriter":
        """Reopen a run file to resume it from its checkpoint: frames and observables later
        than the checkpoint time are removed, status goes back to "running", and writing
        continues after the checkpoint."""
        _check_flush_every(flush_every)
        _require_run_file(path)
        f = h5py.File(path, "r+")
        try:
            group = _checkpoint_group(f)
            if group is None:
                raise ValueError(f"{os.fspath(path)!r} has no checkpoint to resume from")
            if group.name.lstrip("/") == CHECKPOINT_NEW:  # finish the interrupted swap
                f.move(CHECKPOINT_NEW, CHECKPOINT)
            elif CHECKPOINT_NEW in f:  # a checkpoint write that never finished
                del f[CHECKPOINT_NEW]
            t_ckpt = float(f[CHECKPOINT].attrs["time"])
            limit = t_ckpt + _TIME_SLACK

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
        array = _host(array)
        if array.shape != self.grid.shape:
            raise ValueError(f"{what} has shape {array.shape}; the grid is {self.grid.shape}")
        return array

    def write_static(self, name: str, array, units: str = ""):
        """A map that does not change over the run (vessels, labels), shape = grid."""
        f = self._require_open()
        _check_name("static map", name)
        array = self._check_array(f"static map {name!r}", array)
        group = f["static"]
        if name in group:
            del group[name]
        ds = group.create_dataset(name, data=array, chunks=self.grid.shape, **_GZIP)
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
            _check_name("observable", name)
            if name == "time":
                raise ValueError("observable name 'time' is reserved for the row times")
            row[name] = float(value)
            self._obs_units.setdefault(name, "")
        for name, unit in (units or {}).items():
            if unit:
                self._obs_units[_check_name("observable", name)] = str(unit)
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
            group.create_dataset(_check_name("checkpoint array", name), data=_host(array))
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
            group.create_dataset(_check_name("failure array", name), data=_host(array))
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
            group.attrs[_check_name("summary", key)] = _attr_value(key, value)
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


# --------------------------------------------------------------------------- readers
def is_run_file(path) -> bool:
    """True only for an HDF5 file whose root attribute format is "spatialdtp-run"."""
    try:
        if not os.path.isfile(path) or not h5py.is_hdf5(path):
            return False
        with _open_read(path) as f:
            return attribute_value(f.attrs.get("format")) == FORMAT
    except (OSError, ValueError, TypeError):
        return False


def _require_run_file(path):
    if not is_run_file(path):
        raise ValueError(f"{os.fspath(path)!r} is not a spatialdtp run file "
                         f"(an HDF5 file with root attribute format={FORMAT!r})")


def read_checkpoint(path) -> tuple[int, float, dict[str, np.ndarray], dict]:
    """(step, time in minutes, arrays, info) of the run file's checkpoint."""
    _require_run_file(path)
    with _open_read(path) as f:
        group = _checkpoint_group(f)
        if group is None:
            raise ValueError(f"{os.fspath(path)!r} has no checkpoint")
        step = int(group.attrs["step"])
        t = float(group.attrs["time"])
        arrays = {name: ds[()] for name, ds in group.items()}
        info = {key: json.loads(attribute_value(value)) for key, value in group.attrs.items()
                if key not in ("step", "time")}
    return step, t, arrays, info


def _read_observables(f: h5py.File) -> dict[str, np.ndarray]:
    group = f["observables"]
    n = group["time"].shape[0]
    out = {"time": group["time"][:n]}
    for name, ds in group.items():
        if name != "time":
            column = np.full(n, np.nan)
            k = min(n, ds.shape[0])
            column[:k] = ds[:k]
            out[name] = column
    return out


def read_observables(path) -> dict[str, np.ndarray]:
    """Every observable column (float64, one row per step), including "time" (minutes)."""
    _require_run_file(path)
    with _open_read(path) as f:
        return _read_observables(f)


@dataclass
class RunData:
    """What a run file holds, read without its frames; frames are read on demand.

    ``run.frame("oxygen", -1)`` reads one frame (opening the file briefly); for many reads
    or lazy slicing, ``with run: ds = run.dataset("oxygen")`` gives the h5py dataset
    (valid until the ``with`` block ends; only its first ``run.n_frames`` frames are whole).
    """

    path: str
    attrs: dict[str, Any]
    time: np.ndarray                       # minutes, one per frame
    fields: dict[str, dict[str, str]]      # name -> {"units", "long_name", "kind"}, state order
    static: dict[str, str]                 # name -> units
    observables: tuple[str, ...]           # names, "time" included
    summary: dict[str, Any]
    _file: h5py.File | None = field(default=None, repr=False)

    @property
    def config(self) -> str:
        """The resolved configuration as YAML text."""
        return self.attrs["config"]

    def config_dict(self) -> dict:
        import yaml

        return yaml.safe_load(self.config)

    @property
    def status(self) -> str:
        return self.attrs["status"]

    @property
    def grid(self) -> Grid:
        return Grid(tuple(self.attrs["shape"]), self.attrs["dx"])

    @property
    def n_frames(self) -> int:
        return len(self.time)

    def open(self) -> "RunData":
        if self._file is None:
            self._file = _open_read(self.path)
        return self

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "RunData":
        return self.open()

    def __exit__(self, *exc):
        self.close()
        return False

    def dataset(self, name: str) -> h5py.Dataset:
        """The h5py dataset of field ``name`` (the RunData must be open)."""
        if self._file is None:
            raise ValueError("RunData is closed: use `with run:` or run.open() first")
        if name not in self.fields:
            raise KeyError(f"no field {name!r}; fields are {list(self.fields)}")
        return self._file["fields"][name]

    def frame(self, name: str, i: int) -> np.ndarray:
        """Frame ``i`` (negative counts from the end) of field ``name``."""
        if not -self.n_frames <= i < self.n_frames:
            raise IndexError(f"frame {i}: the run has {self.n_frames} frames")
        i %= self.n_frames
        if self._file is not None:
            return self.dataset(name)[i]
        with self:
            return self.dataset(name)[i]

    def static_map(self, name: str) -> np.ndarray:
        if name not in self.static:
            raise KeyError(f"no static map {name!r}; static maps are {list(self.static)}")
        if self._file is not None:
            return self._file["static"][name][()]
        with _open_read(self.path) as f:
            return f["static"][name][()]

    def read_observables(self) -> dict[str, np.ndarray]:
        if self._file is not None:
            return _read_observables(self._file)
        return read_observables(self.path)


def read_run(path) -> RunData:
    """The run file's metadata (attributes, config, frame times, field names and units);
    frames stay on disk until asked for."""
    _require_run_file(path)
    with _open_read(path) as f:
        attrs = {key: attribute_value(value) for key, value in f.attrs.items()}
        time = f["time"][:]
        fields = {name: {key: attribute_value(ds.attrs.get(key, "")) for key in
                         ("units", "long_name", "kind")} for name, ds in f["fields"].items()}
        static = {name: attribute_value(ds.attrs.get("units", "")) for name, ds in f["static"].items()}
        observables = tuple(f["observables"])
        summary = {key: attribute_value(v) for key, v in f["summary"].attrs.items()} \
            if "summary" in f else {}
    return RunData(os.fspath(path), attrs, time, fields, static, observables, summary)


class WriteBehind:
    """Runs a writer's calls in order on one background thread, so a step computes while
    the previous frame is compressed and written.

    Only calls made through :meth:`submit` run in the background; before anything else
    touches the file (checkpoints, the failure record, closing), :meth:`drain` waits until
    every submitted call has finished, so that h5py is never used from two threads at once.
    An error in a background call is raised again by the next ``submit`` or ``drain``.
    """

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spatialdtp-writer")
        self._pending = []

    def submit(self, fn, *args) -> None:
        self._raise_failed()
        self._pending.append(self._pool.submit(fn, *args))
        # keep the queue short: a frame held in memory per queued call is enough
        while len(self._pending) > 2 and self._pending[0].done():
            self._pending.pop(0).result()

    def _raise_failed(self):
        while self._pending and self._pending[0].done():
            self._pending.pop(0).result()

    def drain(self) -> None:
        """Wait for every submitted call; raise the first error one of them had."""
        pending, self._pending = self._pending, []
        first = None
        for fut in pending:
            try:
                fut.result()
            except BaseException as err:    # keep waiting for the rest, then raise
                first = first or err
        if first is not None:
            raise first

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)
