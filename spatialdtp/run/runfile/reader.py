"""Reading a run file (the layout is in :mod:`.format`): the checkpoint, the observables,
and :class:`RunData` (attributes, config, frames on demand).

A file another process is still writing is opened without HDF5's file lock; what the
writer synced is consistent, and ``len(/time)`` counts the frames to read. Frames that are
not whole (a chunk never written or unreadable: :func:`~.format.whole_frames`) are left
out, with a warning.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from ...model.grid import Grid
from .format import attribute_value, checkpoint_group, open_read, require_run_file, whole_frames


def read_checkpoint(path) -> tuple[int, float, dict[str, np.ndarray], dict]:
    """(step, time in minutes, arrays, info) of the run file's checkpoint."""
    require_run_file(path)
    with open_read(path) as f:
        group = checkpoint_group(f)
        if group is None:
            raise ValueError(f"{os.fspath(path)!r} has no checkpoint")
        try:
            step = int(group.attrs["step"])
            t = float(group.attrs["time"])
            arrays = {name: ds[()] for name, ds in group.items()}
            info = {key: json.loads(attribute_value(value)) for key, value in group.attrs.items()
                    if key not in ("step", "time")}
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise ValueError(f"{os.fspath(path)!r}: its checkpoint cannot be read "
                             f"({type(exc).__name__}: {exc})") from None
    return step, t, arrays, info


def observables_of(f: h5py.File) -> dict[str, np.ndarray]:
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
    require_run_file(path)
    with open_read(path) as f:
        return observables_of(f)


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
            self._file = open_read(self.path)
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
        with open_read(self.path) as f:
            return f["static"][name][()]

    def read_observables(self) -> dict[str, np.ndarray]:
        if self._file is not None:
            return observables_of(self._file)
        return read_observables(self.path)


def read_run(path) -> RunData:
    """The run file's metadata (attributes, config, frame times, field names and units);
    frames stay on disk until asked for."""
    require_run_file(path)
    with open_read(path) as f:
        attrs = {key: attribute_value(value) for key, value in f.attrs.items()}
        time = f["time"][:]
        n, problem = whole_frames(f, len(time))
        if n < len(time):
            warnings.warn(f"{os.fspath(path)}: {len(time) - n} of its {len(time)} frames are "
                          f"not whole ({problem}); reading the first {n}", stacklevel=2)
            time = time[:n]
        fields = {name: {key: attribute_value(ds.attrs.get(key, "")) for key in
                         ("units", "long_name", "kind")} for name, ds in f["fields"].items()}
        static = {name: attribute_value(ds.attrs.get("units", "")) for name, ds in f["static"].items()}
        observables = tuple(f["observables"])
        summary = {key: attribute_value(v) for key, v in f["summary"].attrs.items()} \
            if "summary" in f else {}
    return RunData(os.fspath(path), attrs, time, fields, static, observables, summary)
