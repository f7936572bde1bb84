"""The run file: one HDF5 file per run, self-describing, readable with plain h5py.

This module holds the format (the layout below, its constants and the helpers the writer
and the readers share); :mod:`.writer` writes it, :mod:`.reader` reads it and
:mod:`.write_behind` lets a run compute while its frames are written.

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
``name`` is ``f["fields"][name][i]`` (one chunk, one read). Field chunks carry a Fletcher-32
checksum and a NaN fill value, so a damaged frame raises an error on read and a frame
that was never written reads NaN, never plausible zeros; :func:`whole_frames` checks
the counted frames (this package's readers, the viewer and resume use it).

Crash safety (what a killed, crashed or out-of-space writer can lose):

- the frame and the observable rows being written: the writer writes a frame's chunks
  (and the buffered observable columns), flushes and ``fsync``-s the file, and only then
  extends ``/time`` (and ``/observables/time``) and syncs again. HDF5 writes metadata in
  no particular order during a flush, so without that order a kill during a flush could
  leave ``/time`` counting a frame whose chunks never reached the disk;
- observable rows still buffered in memory (at most ``flush_every``; they are written
  with every frame and checkpoint);
- nothing before the last checkpoint: it is written to ``/checkpoint_new`` and synced
  before the old ``/checkpoint`` is deleted and the new one moved into its place, so a
  crash during a checkpoint keeps the previous one (``read_checkpoint`` and ``reopen`` pick
  up a finished ``/checkpoint_new`` whose move did not happen).

A full disk ends the writer with :class:`~.writer.RunFileWriteError`; the disk reserve kept
in the lock file is given back first, so the file is closed whole (status ``failed: …``),
readable and resumable. The file is opened with HDF5's default (oldest) format: with
``libver="latest"`` HDF5 marks the file "open for write" and refuses to open it after a
crash until ``h5clear -s`` is run.

One writer: a run file is created exclusively (never truncating an existing file) by a
process holding ``<run file>.lock`` (:mod:`.lock`), which also refuses a second writer
where HDF5's own locking is off (``HDF5_USE_FILE_LOCKING=FALSE``). A root attribute
``lost_frames`` (minutes), present only after a resume found frames that were not whole,
lists the frames it dropped.

Reading a run that is still being written: the writer holds HDF5's file lock, so a plain
``h5py.File(path, "r")`` from another process fails with "unable to lock file"; open it
with ``locking=False`` (this module's readers fall back to that by themselves). What the
writer synced is consistent; reopen the file to see newer frames.

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

import os
from typing import Mapping

import h5py
import numpy as np

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
GZIP = dict(compression="gzip", compression_opts=4, shuffle=True)
MAX_CHUNK_BYTES = 2**32 - 1  # HDF5's limit on one chunk
# Times are compared with this slack (minutes) when truncating at a checkpoint, so a time
# recomputed as step * dt instead of accumulated still counts as "at the checkpoint".
TIME_SLACK = 1e-6


def check_name(what: str, name) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{what} name {name!r}: must be a non-empty string without '/'")
    return name


def attr_value(key: str, value):
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


def open_read(path) -> h5py.File:
    """Open read-only; a file another process is still writing is opened without HDF5's
    file lock (the writer flushes after every frame, so what it flushed is consistent)."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "lock" not in str(exc).lower():
            raise
        return h5py.File(path, "r", locking=False)


def checkpoint_group(f: h5py.File) -> h5py.Group | None:
    """The valid checkpoint: /checkpoint, or a finished /checkpoint_new whose move did not
    happen (it was flushed before the old one was deleted)."""
    if CHECKPOINT in f:
        return f[CHECKPOINT]
    if CHECKPOINT_NEW in f and "step" in f[CHECKPOINT_NEW].attrs:
        return f[CHECKPOINT_NEW]
    return None


def is_run_file(path) -> bool:
    """True only for an HDF5 file whose root attribute format is "spatialdtp-run"."""
    try:
        if not os.path.isfile(path) or not h5py.is_hdf5(path):
            return False
        with open_read(path) as f:
            return attribute_value(f.attrs.get("format")) == FORMAT
    except (OSError, ValueError, TypeError):
        return False


def require_run_file(path):
    if not is_run_file(path):
        raise ValueError(f"{os.fspath(path)!r} is not a spatialdtp run file "
                         f"(an HDF5 file with root attribute format={FORMAT!r})")


def fields_from_layout(layout, long_names: Mapping[str, str] | None = None) -> dict[str, dict]:
    """The ``fields`` argument of RunWriter for a ``state.FieldLayout``: substrates are
    "substrate", S/P/R/F/M "cell", ``auc_<drug>`` "exposure"; units from the layout."""
    from ...model.state import CELL_LONG_NAMES

    long_names = {**CELL_LONG_NAMES, **(long_names or {})}
    kinds = {**{n: "substrate" for n in layout.substrates},
             **{n: "cell" for n in layout.cells},
             **{n: "exposure" for n in layout.accumulators}}
    for drug in layout.drugs:
        long_names.setdefault(f"auc_{drug}", f"local {drug} exposure (time integral)")
    return {name: {"units": layout.units.get(name, ""), "long_name": long_names.get(name, name),
                   "kind": kinds[name]} for name in layout.names}


def _allocated_frames(ds: h5py.Dataset, n: int) -> np.ndarray:
    """Which of the first ``n`` frames of a one-frame-per-chunk dataset have a chunk on
    disk (a chunk never written reads the fill value: NaN, or zeros in old files)."""
    have = np.zeros(n, dtype=bool)
    if n == 0:
        return have
    try:
        def seen(info):
            i = info.chunk_offset[0]
            if i < n and info.byte_offset is not None:
                have[i] = True
        ds.id.chunk_iter(seen)
    except AttributeError:  # HDF5 < 1.12.3: one look-up per frame
        for i in range(n):
            info = ds.id.get_chunk_info_by_coord((i,) + (0,) * (ds.ndim - 1))
            have[i] = info.byte_offset is not None
    return have


def whole_frames(f: h5py.File, n: int | None = None, read_last: bool = True) -> tuple[int, str]:
    """(k, problem): the first ``k`` of the ``n`` frames (default ``len(/time)``) are whole:
    every field has that frame's chunk on disk, and (``read_last``) the last of them reads
    back (decompression and checksum). ``problem`` says why frame ``k`` is not ('' if all
    ``n`` are whole). Reads the chunk index, and the data of the last frame only."""
    n = f["time"].shape[0] if n is None else int(n)
    problem = ""
    k = n
    fields = list(f["fields"].values())
    for ds in fields:
        if ds.shape[0] < k:
            k, problem = ds.shape[0], f"field {ds.name.split('/')[-1]!r} has {ds.shape[0]} frames"
    for ds in fields:
        try:
            have = _allocated_frames(ds, k)
        except Exception as exc:  # noqa: BLE001 - a damaged chunk index
            return 0, f"the chunk index of {ds.name} cannot be read ({exc})"
        missing = np.flatnonzero(~have)
        if missing.size and missing[0] < k:
            k = int(missing[0])
            problem = f"frame {k} of {ds.name.split('/')[-1]!r} was never written"
    while read_last and k > 0:
        for ds in fields:
            try:
                ds[k - 1]
            except Exception as exc:  # noqa: BLE001 - unreadable chunk: checksum, filter
                problem = f"frame {k - 1} of {ds.name.split('/')[-1]!r} cannot be read ({exc})"
                break
        else:
            break
        k -= 1
    return k, problem
