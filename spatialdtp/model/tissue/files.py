"""Tissue from files: arrays of initial values for any field, and label images.

Arrays are ``.npy`` (``numpy.load``) or ``.tif``/``.tiff`` (``tifffile.imread``) with the
grid's shape; initial values must be finite and >= 0, a vessel map in [0, 1].

Label image (``labels.path``, integer values, the grid's shape; ``labels.mapping`` maps
label value → role): ``vessel`` sets vessels = 1, ``tumour`` sets S/P/R as the tumour
generator does (full density), ``caf`` sets F = caf_density · capacity, ``tam`` sets
M = macrophages.density · capacity, ``background`` leaves the voxel empty. Label 0 is
background unless mapped; any other unmapped value is background too, with one warning
listing them.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ...config import CELL_TYPES, ConfigError, TissueConfig
from ..grid import Grid

ROLES = ("vessel", "tumour", "caf", "tam", "background")


def load_array(path: str, shape: tuple, key: str) -> np.ndarray:
    """Read a ``.npy`` (numpy.load) or ``.tif``/``.tiff`` (tifffile.imread) array.

    ``key`` names the config entry (e.g. ``"tissue.files.oxygen"``) in every error; the
    array's shape must equal ``shape`` (the grid's). Every problem with the file (missing,
    a directory, unreadable, not an array of that type, another shape) is one ConfigError.
    """
    shape = tuple(int(n) for n in shape)
    where = f"{key}={path!r}"
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in (".npy", ".tif", ".tiff"):
        raise ConfigError(f"{where}: unsupported file type {ext or '(none)'!r}; "
                          "allowed are .npy, .tif, .tiff")
    if os.path.isdir(path):
        raise ConfigError(f"{where}: is a directory, not a {ext} file")
    if not os.path.isfile(path):
        raise ConfigError(f"{where}: no such file")
    if ext == ".npy":
        try:
            with open(path, "rb") as f:
                magic = f.read(6)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot be read ({exc.strerror})") from None
        if magic != b"\x93NUMPY":
            raise ConfigError(f"{where}: not a NumPy .npy file (it does not start with the "
                              ".npy header; save arrays with numpy.save)")
    try:
        if ext == ".npy":
            # mmap: the header (dtype, shape) is checked before the data is read
            array = np.load(path, allow_pickle=False, mmap_mode="r")
        else:
            import tifffile  # only needed when a TIFF is actually given

            array = tifffile.imread(path)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the file's problem
        what = "NumPy .npy" if ext == ".npy" else "TIFF"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{where}: cannot be read as a {what} array "
                          f"({type(exc).__name__}: {reason})") from None
    if array.shape != shape:
        raise ConfigError(f"{where}: array has shape {array.shape} but the grid "
                          f"shape is {shape}")
    return np.asarray(array)


def check_values(array: np.ndarray, key: str, path: str, name: str) -> np.ndarray:
    """Initial values must be real, finite and >= 0; a vessel map must lie in [0, 1]."""
    where = f"{key}={path!r}"
    if array.dtype.kind not in "biuf":   # complex would lose its imaginary part silently
        raise ConfigError(f"{where}: dtype {array.dtype} is not a real number type "
                          "(allowed: bool, integer or float arrays)")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ConfigError(f"{where}: {int(bad.sum())} values are NaN or infinite; "
                          "initial values must be finite")
    if array.min() < 0:
        raise ConfigError(f"{where}: {int((array < 0).sum())} values are negative "
                          f"(min {array.min():g}); initial values must be >= 0")
    if name == "vessels" and array.max() > 1:
        raise ConfigError(f"{where}: vessel map values must lie in [0, 1] "
                          f"(max {array.max():g})")
    return array


def from_labels(cfg: TissueConfig, grid: Grid, capacity: float) -> dict:
    key = "tissue.labels.path"
    labels = load_array(cfg.labels.path, grid.shape, key)
    if labels.dtype == bool:
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "biuf":
        raise ConfigError(f"{key}={cfg.labels.path!r}: dtype {labels.dtype} is not a label "
                          "type (allowed: integer arrays, or floats holding integers)")
    if not np.issubdtype(labels.dtype, np.integer):
        if not (np.issubdtype(labels.dtype, np.floating) and np.isfinite(labels).all()
                and np.array_equal(labels, np.rint(labels))):
            raise ConfigError(f"{key}={cfg.labels.path!r}: a label image holds integer "
                              f"values, found dtype {labels.dtype} with non-integer values")
        labels = labels.astype(np.int64)
    out = {name: np.zeros(grid.shape) for name in ("vessels",) + CELL_TYPES}
    t = cfg.tumour
    tumour_level = t.density * capacity
    fill = {"vessel": {"vessels": 1.0},
            "tumour": {"S": tumour_level * (1 - t.persister_fraction - t.resistant_fraction),
                       "P": tumour_level * t.persister_fraction,
                       "R": tumour_level * t.resistant_fraction},
            "caf": {"F": cfg.stroma.caf_density * capacity},
            "tam": {"M": cfg.macrophages.density * capacity},
            "background": {}}
    mapped = set()
    for label, role in cfg.labels.mapping.items():
        where = f"tissue.labels.mapping.{label}"
        try:
            value = int(str(label))
        except ValueError:
            raise ConfigError(f"{where}={role!r}: keys are integer label values") from None
        if role not in ROLES:
            raise ConfigError(f"{where}={role!r}: allowed roles are {list(ROLES)}")
        mapped.add(value)
        region = labels == value
        for name, level in fill[role].items():
            out[name][region] = level
    unknown = sorted(set(np.unique(labels).tolist()) - mapped - {0})
    if unknown:
        warnings.warn(f"{key}={cfg.labels.path!r}: label values {unknown} are not in "
                      "tissue.labels.mapping; treated as background", stacklevel=3)
    return out



def load_coefficient_maps(substrates: dict, grid: Grid,
                          drugs=()) -> dict[str, dict[str, np.ndarray]]:
    """The per-voxel coefficient maps of every substrate (``substrates``: name -> its
    config, the ``transport`` of each of ``drugs`` included): ``{name: {kind: float64
    array}}``, checked as the tissue's arrays are (the grid's shape, finite, >= 0; a
    ``fixed`` map NaN where the field is free)."""
    from ...config import MAP_KINDS

    out = {}
    for name, s in substrates.items():
        prefix = f"treatment.drugs.{name}.transport" if name in drugs else f"substrates.{name}"
        for kind in MAP_KINDS:
            path = getattr(s.maps, kind)
            if path is not None:
                key = f"{prefix}.maps.{kind}"
                check = check_fixed if kind == "fixed" else check_values
                out.setdefault(name, {})[kind] = check(
                    load_array(path, grid.shape, key), key, path, kind)
    return out


def check_fixed(array: np.ndarray, key: str, path: str, name: str) -> np.ndarray:
    """A fixed-value map holds the value of each fixed voxel (finite, >= 0) and NaN in the
    free ones; infinity is neither."""
    if array.dtype.kind not in "biuf":
        raise ConfigError(f"{key}={path!r}: dtype {array.dtype} is not a real number type "
                          "(allowed: float arrays, NaN where the field is free)")
    array = array.astype(np.float64)
    held = ~np.isnan(array)
    if np.isinf(array).any():
        raise ConfigError(f"{key}={path!r}: {int(np.isinf(array).sum())} values are "
                          "infinite; a fixed value must be finite (NaN marks a free voxel)")
    if (array[held] < 0).any():
        raise ConfigError(f"{key}={path!r}: {int((array[held] < 0).sum())} fixed values "
                          f"are negative (min {array[held].min():g}); they must be >= 0")
    return array
