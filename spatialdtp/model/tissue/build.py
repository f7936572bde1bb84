"""The initial tissue: vessel map and cell densities S, P, R, F, M (cells/voxel).

Built once on the host in NumPy (float64); the simulator converts and moves it to its
backend. ``kind`` chooses where it comes from: ``generated`` (the three steps below),
``files`` (steps 2 and 3 only, with a label image as step 1 if one is given: nothing is
generated, so a field no file sets starts at 0) or ``well_mixed`` (:func:`well_mixed`: one
voxel at the generators' densities, no files).

1. **Generators** (:class:`~spatialdtp.config.TissueConfig` ``vessels``, ``tumour``,
   ``stroma``, ``macrophages``; :mod:`.generators`), or, when ``labels.path`` is set, a
   **label image** that replaces all four generators (:mod:`.files`).
2. **Files** (``files``): arrays that overwrite single fields (a substrate, a cell type or
   ``vessels``) after step 1 (:mod:`.files`).
3. **Capacity**: wherever ``S + P + R + F + M > capacity`` all five are scaled down by the
   same factor, so the ratios between cell types are kept.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ...config import CELL_TYPES, ConfigError, TissueConfig
from ..grid import Grid
from .files import check_values, from_labels, load_array
from .generators import TAM_REACH, macrophages, soft_ball, stroma, tissue_work, vessels

#: bounds on the generators' work (:func:`generators.tissue_work`): each is at most a
#: minute or two of NumPy and a few GB; beyond them a value is refused, not run for hours
MAX_VESSEL_NODES = 2e7
MAX_VESSEL_PAIRS = 5e9
MAX_CLUSTERS = 1e6
MAX_CLUSTER_VOXELS = 5e9


def _check_choices(cfg: TissueConfig, grid: Grid, capacity: float):
    """The checks build_tissue relies on (config.validate repeats them for whole runs)."""
    for key, value, allowed in (("tissue.vessels.kind", cfg.vessels.kind,
                                 ("network", "points", "none")),
                                ("tissue.stroma.kind", cfg.stroma.kind,
                                 ("clusters", "bands", "none")),
                                ("tissue.macrophages.near", cfg.macrophages.near,
                                 ("stroma", "vessels", "uniform"))):
        if value not in allowed:
            raise ConfigError(f"{key}={value!r}: allowed values are {list(allowed)}")
    if not (math.isfinite(capacity) and capacity > 0):
        raise ConfigError(f"capacity={capacity!r}: must be a finite number > 0 (cells/voxel)")
    if len(cfg.tumour.center) < grid.ndim:
        raise ConfigError(f"tissue.tumour.center={list(cfg.tumour.center)}: needs "
                          f"{grid.ndim} fractions for a {grid.ndim}D grid")
    for key, value in (("tissue.vessels.spacing", cfg.vessels.spacing),
                       ("tissue.vessels.radius", cfg.vessels.radius),
                       ("tissue.stroma.band_spacing", cfg.stroma.band_spacing)):
        if not value > 0:
            raise ConfigError(f"{key}={value!r}: must be > 0 µm")
    if not cfg.labels.path:          # a label image replaces the generators
        _check_work(cfg, grid)


def _check_work(cfg: TissueConfig, grid: Grid):
    """Refuse generator inputs whose work (:func:`tissue_work`) is beyond the bounds."""
    work = tissue_work(cfg, grid)
    v, s = cfg.vessels, cfg.stroma
    over = [
        (work["vessel_nodes"] > MAX_VESSEL_NODES, "tissue.vessels.spacing", v.spacing,
         f"{work['vessel_nodes']:.3g} vessel nodes (at most {MAX_VESSEL_NODES:.0e})"),
        (work["vessel_pairs"] > MAX_VESSEL_PAIRS,
         "tissue.vessels.radius" if v.radius > v.spacing else "tissue.vessels.spacing",
         v.radius if v.radius > v.spacing else v.spacing,
         f"{work['vessel_pairs']:.3g} voxel tests to draw the vessels "
         f"(at most {MAX_VESSEL_PAIRS:.0e})"),
        (work["clusters"] > MAX_CLUSTERS, "tissue.stroma.n_clusters", s.n_clusters,
         f"more than {MAX_CLUSTERS:.0e} CAF clusters"),
        (work["cluster_voxels"] > MAX_CLUSTER_VOXELS, "tissue.stroma.n_clusters", s.n_clusters,
         f"{work['cluster_voxels']:.3g} voxel updates for the CAF clusters "
         f"(at most {MAX_CLUSTER_VOXELS:.0e})"),
        (work["tam_fft"] > max(8 * grid.size, 1e7), "grid.dx", grid.dx,
         f"a TAM reach of {TAM_REACH:g} µm spanning {TAM_REACH / grid.dx:.3g} voxels "
         f"({work['tam_fft']:.3g} voxels of FFT work; use tissue.macrophages.near=uniform "
         "or a coarser grid)"),
    ]
    for too_much, key, value, what in over:
        if too_much:
            raise ConfigError(f"{key}={value!r}: generating the tissue would take {what}")


def check_files(cfg: TissueConfig, grid: Grid, capacity: float) -> None:
    """Read and check the label image and every array of ``cfg.files`` (ConfigError naming
    the key and file), without building the tissue."""
    if cfg.labels.path:
        from_labels(cfg, grid, capacity)
    for name, path in cfg.files.items():
        key = f"tissue.files.{name}"
        check_values(load_array(path, grid.shape, key), key, path, name)


def _warn_if_tumour_leaves_grid(radius: float, centre, grid: Grid) -> None:
    """The tumour radius is in µm, not in voxels: on a grid smaller than the tumour the
    nest fills the grid, there is no stroma around it and the niche measure is meaningless,
    so say so (the geometry is kept as configured: scaling it would change the biology)."""
    cut = [i for i, (c, e) in enumerate(zip(centre, grid.extent))
           if c - radius < 0 or c + radius > e]
    if cut:
        extent = " x ".join(f"{e:g}" for e in grid.extent)
        warnings.warn(f"tissue.tumour.radius={radius:g} µm: the tumour reaches the edge of the "
                      f"grid ({extent} µm = grid.shape x grid.dx={grid.dx:g} µm) along axis "
                      f"{cut}, so it fills the grid up to its faces; lower tissue.tumour.radius "
                      f"below {min(min(c, e - c) for c, e in zip(centre, grid.extent)):g} µm "
                      "or enlarge grid.shape", stacklevel=3)


def build_tissue(cfg: TissueConfig, grid: Grid, capacity: float, substrates: dict[str, float],
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return {"vessels": 0..1 map, "S","P","R","F","M": densities, and any substrate
    named in cfg.files}. `substrates` maps every substrate name to its uniform initial
    value (the caller fills the rest); `capacity` is cells per voxel.

    All arrays are float64 with the grid's shape; densities in cells/voxel, at most
    ``capacity`` in total per voxel.
    """
    capacity = float(capacity)
    _check_choices(cfg, grid, capacity)
    known = set(substrates) | set(CELL_TYPES) | {"vessels"}
    for name, path in cfg.files.items():
        if name not in known:
            raise ConfigError(f"tissue.files.{name}={path!r}: fields that can be loaded "
                             f"are {sorted(known)}")

    if cfg.kind == "well_mixed":
        return well_mixed(cfg, grid, capacity)
    tumour_centre = [f * e for f, e in zip(cfg.tumour.center[:grid.ndim], grid.extent)]
    if cfg.labels.path:
        out = from_labels(cfg, grid, capacity)
    elif cfg.kind == "files":
        out = {name: np.zeros(grid.shape) for name in ("vessels",) + CELL_TYPES}
    else:
        out = {"vessels": vessels(cfg, grid, tumour_centre, rng)}
        t = cfg.tumour
        _warn_if_tumour_leaves_grid(t.radius, tumour_centre, grid)
        tumour = t.density * capacity * soft_ball(grid, tumour_centre, t.radius)
        out["S"] = (1.0 - t.persister_fraction - t.resistant_fraction) * tumour
        out["P"] = t.persister_fraction * tumour
        out["R"] = t.resistant_fraction * tumour
        out["F"] = stroma(cfg, grid, capacity, tumour_centre, rng)
        out["M"] = macrophages(cfg, grid, capacity, out["F"], out["vessels"])

    for name, path in cfg.files.items():
        key = f"tissue.files.{name}"
        out[name] = check_values(load_array(path, grid.shape, key), key, path, name)

    total = sum(out[c] for c in CELL_TYPES)
    over = total > capacity
    if over.any():
        scale = np.where(over, capacity / np.where(over, total, 1.0), 1.0)
        for c in CELL_TYPES:
            out[c] = out[c] * scale
        loaded = [c for c in CELL_TYPES if c in cfg.files]
        if loaded:
            warnings.warn(f"tissue.files ({', '.join(loaded)}): S+P+R+F+M exceeds the "
                          f"capacity {capacity:g} cells/voxel in {int(over.sum())} voxels "
                          f"(max {total.max():g}); cell densities there were scaled down "
                          "proportionally", stacklevel=2)
    return out



def well_mixed(cfg: TissueConfig, grid: Grid, capacity: float) -> dict[str, np.ndarray]:
    """The well-mixed tissue: every voxel (one) at the generators' densities.

    S + P + R = tumour.density · capacity split by persister_fraction and
    resistant_fraction; F = stroma.caf_density · capacity (0 with ``stroma.kind=none``);
    M = macrophages.density · capacity; vessels = ``well_mixed.vessel_fraction``.
    """
    t = cfg.tumour
    tumour = t.density * capacity
    caf = 0.0 if cfg.stroma.kind == "none" else cfg.stroma.caf_density * capacity
    level = {"vessels": cfg.well_mixed.vessel_fraction,
             "S": (1.0 - t.persister_fraction - t.resistant_fraction) * tumour,
             "P": t.persister_fraction * tumour, "R": t.resistant_fraction * tumour,
             "F": caf, "M": cfg.macrophages.density * capacity}
    total = sum(level[c] for c in CELL_TYPES)
    if total > capacity:
        raise ValueError(f"tissue.kind=well_mixed: S+P+R+F+M = {total:g} cells/voxel exceeds "
                         f"the capacity {capacity:g}; lower tissue.tumour.density, "
                         "tissue.stroma.caf_density or tissue.macrophages.density")
    return {name: np.full(grid.shape, value) for name, value in level.items()}
