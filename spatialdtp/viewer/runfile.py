"""A run file opened for viewing: metadata at once, frames lazily, damaged files tolerated.

:class:`RunFile` reads what a viewer needs up front (attributes, the stored config, frame
times, field names and units, the per-step observables) and leaves the frames on disk:
:meth:`RunFile.frames` is a dask array over the HDF5 dataset with one chunk per frame, so
a run larger than memory opens at once and a frame is read only when it is shown.

Files that did not end normally open with what they hold, and a :class:`RunFileWarning`
says what is missing:

- status ``running`` (the writer was killed, or is still writing), ``interrupted`` or
  ``failed: …``: the ``len(/time)`` frames the writer finished;
- a file cut short on disk (a crash while copying, a full disk): HDF5 refuses to open it
  ("truncated file"); it is opened through a view that reads zeros past the end, and
  only frames whose every chunk lies inside the file are shown.

The layout read here is the contract in :mod:`spatialdtp.io`.
"""
from __future__ import annotations

import atexit
import io
import math
import os
import re
import threading
import warnings
import weakref

import h5py
import numpy as np

from ..model.grid import Grid
from ..run import runfile as runio

MINUTES_PER_DAY = 1440.0
_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


class RunFileWarning(UserWarning):
    """The run file did not end normally; it is shown as far as it goes."""


# --------------------------------------------------------------------------- opening
class _ZeroPadded(io.RawIOBase):
    """A file cut short on disk, read as if it had its recorded length: bytes past the
    real end read as zeros. HDF5 checks the length before anything else, so this is what
    lets it read the (intact) start of a truncated file."""

    def __init__(self, path: str, size: int):
        super().__init__()
        self._raw = open(path, "rb")
        self.real_size = os.fstat(self._raw.fileno()).st_size
        self.size = int(size)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        want = min(len(buffer), max(0, self.size - self._pos))
        if self._pos + want > self.real_size:
            # Not all of it is on disk. Zeros in its place can send HDF5 round a metadata
            # structure for ever (a root attribute cut through hung the reader): fail the
            # read, so that HDF5 reports the object unreadable instead.
            raise OSError(f"bytes {self._pos}–{self._pos + want} are past the end of the "
                          f"file cut short at {self.real_size}")
        self._raw.seek(self._pos)
        data = self._raw.read(max(0, min(want, self.real_size - self._pos)))
        buffer[:len(data)] = data
        if want > len(data):
            buffer[len(data):want] = bytes(want - len(data))
        self._pos += want
        return want

    def close(self):
        self._raw.close()
        super().close()


# h5py's Python file-object driver must be closed before the interpreter tears down the
# file object, or HDF5 reads through a dead object at exit (a segfault): close them first.
_OPEN_PADDED: "weakref.WeakSet[RunFile]" = weakref.WeakSet()


@atexit.register
def _close_padded_files():
    for run in list(_OPEN_PADDED):
        run.close()


def _open(path: str) -> tuple[h5py.File, _ZeroPadded | None]:
    """(file, padding) for a run file: a file another process is writing is opened without
    HDF5's lock; a file cut short on disk through :class:`_ZeroPadded`."""
    try:
        return h5py.File(path, "r"), None
    except OSError as exc:
        message = str(exc)
        if "unable to lock file" in message.lower():
            return h5py.File(path, "r", locking=False), None
        match = _TRUNCATED.search(message)
        if match is None:
            raise
        padded = _ZeroPadded(path, int(match.group(2)))
        try:
            return h5py.File(padded, "r"), padded
        except BaseException:
            padded.close()
            raise


def _readable_prefix(ds) -> np.ndarray:
    """The leading entries of a 1-D dataset that can be read, chunk by chunk: a file cut
    short on disk can lose the chunks of ``/time`` written last."""
    n = len(ds)
    step = ds.chunks[0] if ds.chunks else max(n, 1)
    parts = []
    for start in range(0, n, step):
        try:
            parts.append(ds[start:min(start + step, n)])
        except OSError:
            break
    return np.concatenate(parts) if parts else np.zeros(0, dtype=ds.dtype)


def looks_like_run_file(path) -> bool:
    """True for an HDF5 file whose root attribute ``format`` is "spatialdtp-run", also when
    it is still being written or was cut short on disk; False for anything else."""
    try:
        path = os.fspath(path)
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as f:  # HDF5's signature, without asking HDF5
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                return False
        f, padded = _open(path)
        try:
            return runio.attribute_value(f.attrs.get("format")) == runio.FORMAT
        finally:
            f.close()
            if padded is not None:
                padded.close()
    except (OSError, ValueError, TypeError, KeyError):
        return False


# --------------------------------------------------------------------------- the run
class _Frames:
    """The first ``n`` frames of one field, as an array-like that dask slices frame by frame."""

    def __init__(self, run: "RunFile", name: str, n: int):
        ds = run._h5["fields"][name]
        self.run, self.name = run, name
        self.shape = (n, *ds.shape[1:])
        self.dtype = ds.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        return self.run._read(self.name, key)


class RunFile:
    """A spatialdtp run file opened read-only for viewing (see the module docstring).

    ``times`` (minutes) counts the whole frames; ``cfg`` is the stored configuration as
    :class:`~spatialdtp.config.SpatialDTPConfig`; ``fields`` maps each field to its
    ``units``, ``long_name`` and ``kind``; ``problems`` lists what is missing (each also
    issued as a :class:`RunFileWarning`). Keep the RunFile open while its dask arrays are
    in use; ``close()`` (or garbage collection) releases the file.
    """

    def __init__(self, path):
        import yaml

        from ..config import from_dict

        self.path = os.fspath(path)
        if not looks_like_run_file(self.path):
            raise ValueError(f"{self.path!r} is not a spatialdtp run file (an HDF5 file with "
                             f"root attribute format={runio.FORMAT!r})")
        self._lock = threading.RLock()
        self._h5, self._padded = _open(self.path)
        if self._padded is not None:
            _OPEN_PADDED.add(self)
        weakref.finalize(self, _release, self._h5, self._padded)
        f = self._h5
        self.attrs, unreadable = {}, []
        for key in f.attrs:
            try:
                self.attrs[key] = runio.attribute_value(f.attrs[key])
            except OSError:      # a truncated file: an attribute written last (the status)
                unreadable.append(key)
        self.name = os.path.basename(self.path)
        self.grid = Grid(tuple(int(n) for n in self.attrs["shape"]), float(self.attrs["dx"]))
        self.cfg = from_dict(yaml.safe_load(self.attrs["config"]))
        self.capacity = float(self.attrs.get("capacity", math.nan))
        if not math.isfinite(self.capacity):
            from ..run.simulation import capacity_of

            self.capacity = capacity_of(self.cfg)
        self.drugs = tuple(self.attrs.get("drugs") or self.cfg.treatment.drugs)
        self.fields = {name: {key: str(runio.attribute_value(ds.attrs.get(key, ""))) for key in
                              ("units", "long_name", "kind")}
                       for name, ds in f["fields"].items()}
        self.static_maps = tuple(f["static"]) if "static" in f else ()
        self.status = str(self.attrs.get("status", "unknown"))
        self.problems: list[str] = [f"root attribute {k!r} unreadable (the file is cut short)"
                                    for k in unreadable]

        times = _readable_prefix(f["time"])
        if len(times) < len(f["time"]):
            self.problems.append(f"frame times {len(times)}–{len(f['time'])} are past the "
                                 "end of the file")
        n = self._whole_frames(len(times))
        self.times = np.asarray(times[:n], dtype=np.float64)
        try:
            self._observables = runio.observables_of(f)
        except (OSError, KeyError, ValueError) as exc:  # lost with a truncated file's end
            self._observables = {"time": np.zeros(0)}
            self.problems.append(f"its per-step observables cannot be read ({exc})")
        self._report(n, len(f["time"]))
        if n == 0:
            self.close()
            raise ValueError(f"{self.path!r} holds no whole frame to show "
                             f"(status {self.status!r}" + "".join(
                                 f"; {p}" for p in self.problems) + ")")

    # -- what is missing
    def _whole_frames(self, n: int) -> int:
        """Frames whose every chunk is inside the file (all ``n`` unless it is truncated)."""
        if self._padded is None:
            return n
        end = self._padded.real_size
        for i in range(n):
            for ds in self._h5["fields"].values():
                try:
                    chunk = ds.id.get_chunk_info_by_coord((i,) + (0,) * (ds.ndim - 1))
                except Exception:  # the chunk index itself was cut off
                    return i
                if chunk.byte_offset is None or chunk.byte_offset + chunk.size > end:
                    return i
        return n

    def _report(self, n: int, n_recorded: int):
        last = f"day {self.times[-1] / MINUTES_PER_DAY:.3g}" if n else "no frame"
        if self._padded is not None:
            self.problems.insert(0, (
                f"the file is cut short on disk ({self._padded.real_size} of "
                f"{self._padded.size} bytes); {n} of its {n_recorded} frames are whole"))
        if self.status == "running":
            self.problems.append("its status is still 'running': the run was killed, or is "
                                 "still being written (reopen to see newer frames)")
        elif self.status == "interrupted":
            self.problems.append("the run was interrupted; resume it with "
                                 f"`spatialdtp-run +resume={self.path}`")
        elif self.status.startswith("failed"):
            self.problems.append(f"the run {self.status}")
        if self.problems:
            warnings.warn(f"run file {self.name}: " + "; ".join(self.problems)
                          + f". Showing the {n} frames it holds, up to {last}.",
                          RunFileWarning, stacklevel=3)

    # -- reading
    def _read(self, name: str, key):
        with self._lock:
            if self._h5 is None:
                raise ValueError(f"run file {self.path!r} is closed")
            return self._h5["fields"][name][key]

    def frames(self, name: str):
        """Field ``name`` over the whole frames, a lazy dask array ``(T, *grid)`` with one
        chunk per frame (nothing is read until a frame is computed)."""
        import dask.array as da

        if name not in self.fields:
            raise KeyError(f"no field {name!r}; the run's fields are {list(self.fields)}")
        frames = _Frames(self, name, len(self.times))
        return da.from_array(frames, chunks=(1, *self.grid.shape), asarray=True,
                             name=f"spatialdtp-{name}-{id(self):x}-{len(self.times)}",
                             meta=np.empty((0,) * frames.ndim, dtype=frames.dtype))

    def frame(self, name: str, i: int) -> np.ndarray:
        """Frame ``i`` of field ``name`` (negative counts from the end)."""
        n = len(self.times)
        if not -n <= i < n:
            raise IndexError(f"frame {i}: the run has {n} whole frames")
        return self._read(name, i % n)

    def vessels(self):
        """The vessel map (vessel fraction per voxel), lazy; zeros when the file has none."""
        import dask.array as da

        if "vessels" not in self.static_maps:
            return da.zeros(self.grid.shape, dtype=np.float32, chunks=self.grid.shape)
        with self._lock:
            ds = self._h5["static"]["vessels"]
            return da.from_array(ds, chunks=self.grid.shape, lock=self._lock,
                                 name=f"spatialdtp-vessels-{id(self):x}")

    def tumour_start(self) -> np.ndarray:
        """S + P + R at treatment start, the niche measure's reference (cells/voxel): the
        ``/static/tumour_start`` map, or the first frame for a file written without it."""
        if "tumour_start" in self.static_maps:
            with self._lock:
                return np.asarray(self._h5["static"]["tumour_start"][()], dtype=np.float64)
        return sum(np.asarray(self.frame(c, 0), dtype=np.float64) for c in ("S", "P", "R"))

    def observables(self) -> dict[str, np.ndarray]:
        """The per-step observables (``time`` in minutes), as read when the file was opened."""
        return dict(self._observables)

    def close(self):
        with self._lock:
            if self._h5 is not None:
                _release(self._h5, self._padded)
                self._h5 = None

    def __enter__(self) -> "RunFile":
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        g = self.grid
        return (f"RunFile({self.path!r}: {'×'.join(map(str, g.shape))} at {g.dx:g} µm, "
                f"{len(self.times)} frames, status {self.status!r})")


def _release(h5: h5py.File, padded: _ZeroPadded | None):
    try:
        if h5.id.valid:
            h5.close()
    finally:
        if padded is not None:
            padded.close()
