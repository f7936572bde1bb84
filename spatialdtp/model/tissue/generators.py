"""Tissue generators: vessels, the tumour nest, CAF stroma and TAMs on the grid.

Built on the host in NumPy (float64); every random choice comes from the ``rng`` the
caller passes, so a seed fixes the tissue.

Geometry (µm, voxel centres at ``(i + 1/2) dx``; axes ``(y, x)`` or ``(z, y, x)``):

- *Tumour*: a disc/ball of ``radius`` at ``center`` (fractions of the extent, in axis
  order; a 2D grid uses ``center[:2]``) with a one-voxel soft edge
  ``w = clip((radius - d)/dx + 1/2, 0, 1)``. Tumour cells ``T = density · capacity · w``
  split into ``P = f_P T``, ``R = f_R T``, ``S = (1 - f_P - f_R) T``.
- *Vessels*, ``spacing`` s is the mean intercapillary distance, defined through the vessel
  length per tissue volume as in a square lattice of parallel vessels s apart:
  ``L_V = 1/s²`` (3D) and ``L_A = 1/s`` (2D).

  - ``network``: persistent random walks (length ``3 s``, turning a little every
    ``s/4``) started uniformly in the grid padded by one vessel length, their number
    Poisson with mean ``L · padded volume / vessel length``, rasterised as tubes of
    ``radius``. For such a fibre process a voxel's distance to the nearest vessel axis
    has mean ≈ 0.38 s in 2D (Boolean model of straight segments) and ≈ s/2 in 3D.
  - ``points``: vessel cross-sections, ``round(A/s²)`` discs of ``radius`` placed
    uniformly in the (y, x) plane of area A. In 3D they are straight tubes along z (the
    Krogh cylinder picture of parallel capillaries), so a 3D stack and its 2D sections
    share one density and a mean nearest-vessel distance ≈ s/2.
  - ``none``: no vessels.

  No vessel voxel lies within ``margin`` of the tumour centre (a hypoxic core). A
  network or points map always has at least one vessel voxel: if none survived, one is
  placed at a random voxel outside the margin.
- *Stroma* (CAFs, ``F = caf_density · capacity`` inside a patch):

  - ``clusters``: ``n_clusters`` discs/balls of ``cluster_radius`` whose centres lie at
    a random direction from the tumour centre, at ``U(0.7, 1.1) · tumour radius``: CAFs
    surround the tumour and reach into its rim.
  - ``bands``: stromal septa, slabs of ``band_width`` every ``band_spacing`` µm, normal to
    the x axis (running along y, and z) with a random phase; they cross the tumour. Edge
    voxels hold the fraction of their x-width that a band covers.
  - ``none``: no CAFs.
- *TAMs*: ``M = density · capacity`` in every voxel within :data:`TAM_REACH` µm of a CAF
  voxel (``near="stroma"``) or a vessel voxel (``"vessels"``), or everywhere
  (``"uniform"``).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ...config import TissueConfig
from ..grid import Grid

TAM_REACH = 50.0          # µm: "near" a CAF patch or vessel for TAM seeding
VESSEL_LENGTH = 3.0       # network vessel length, in units of spacing
NODE_STEP = 0.25          # network walk node spacing, in units of spacing
TURN = 0.35               # network walk: direction noise per node (std of the kick)
CLUSTER_DISTANCE = (0.7, 1.1)  # CAF cluster centres, in units of the tumour radius
_CHUNK_PAIRS = 500_000    # (sample point, stamp offset) pairs rasterised at once (memory)


def _centre_distance(grid: Grid, point) -> np.ndarray:
    """Distance (µm) from every voxel centre to ``point`` (µm, axis order)."""
    coords = grid.coordinates()
    d2 = np.zeros(grid.shape)
    for axis, (c, p) in enumerate(zip(coords, point)):
        shape = [1] * grid.ndim
        shape[axis] = -1
        d2 = d2 + ((c - p) ** 2).reshape(shape)
    return np.sqrt(d2)


def soft_ball(grid: Grid, centre, radius: float, out=None) -> np.ndarray:
    """Occupancy in [0, 1] of a disc/ball with a one-voxel linear edge,
    ``w = clip((radius - d)/dx + 1/2, 0, 1)``, max-combined into ``out`` if given.

    Only the ball's bounding box is evaluated, so many small balls stay cheap.
    """
    if out is None:
        out = np.zeros(grid.shape)
    box, coords = [], []
    for c, p, n in zip(grid.coordinates(), centre, grid.shape):
        lo = int(np.clip(math.floor((p - radius) / grid.dx) - 1, 0, n))
        hi = int(np.clip(math.ceil((p + radius) / grid.dx) + 1, 0, n))
        box.append(slice(lo, hi))
        coords.append(c[lo:hi] - p)
    if any(s.stop <= s.start for s in box):
        return out
    d = np.sqrt(sum(x**2 for x in np.ix_(*coords)))
    w = np.clip((radius - d) / grid.dx + 0.5, 0.0, 1.0)
    np.maximum(out[tuple(box)], w, out=out[tuple(box)])
    return out


def _stamp(points: np.ndarray, shape: tuple, dx: float, radius: float) -> np.ndarray:
    """Mark every voxel whose centre lies within ``radius`` µm of one of ``points``
    (``(n, ndim)``, µm), and the voxel containing each point, so thin vessels stay visible.
    """
    ndim = len(shape)
    mask = np.zeros(shape, dtype=bool)
    h = int(math.ceil(radius / dx + 0.5))
    offsets = np.stack(np.meshgrid(*[np.arange(-h, h + 1)] * ndim, indexing="ij"),
                       axis=-1).reshape(-1, ndim)
    # A point inside voxel i is at least (|o| - 1/2) dx per axis from the centre of i + o.
    gap = np.maximum(np.abs(offsets) - 0.5, 0.0) * dx
    offsets = offsets[(gap**2).sum(axis=1) <= radius**2]
    is_own = ~offsets.any(axis=1)
    upper = np.array(shape)
    chunk = max(1, _CHUNK_PAIRS // len(offsets))   # a wide vessel: fewer points at once
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk]
        j = np.floor(p / dx).astype(np.int64)[:, None, :] + offsets[None]
        d2 = (((j + 0.5) * dx - p[:, None, :]) ** 2).sum(axis=-1)
        keep = (d2 <= radius**2) | is_own[None]
        keep &= ((j >= 0) & (j < upper)).all(axis=-1)
        mask[tuple(j[keep].T)] = True
    return mask


def _fast_len(n: int) -> int:
    """Smallest 5-smooth integer >= n (FFT lengths with small prime factors are fast)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _within(mask: np.ndarray, reach: float, dx: float) -> np.ndarray:
    """Voxels whose centre lies within ``reach`` µm of a True voxel's centre.

    A binary dilation by a ball, done as an FFT convolution of the mask with the ball
    (zero padded, so nothing wraps around): cost independent of the reach.
    """
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    h = int(math.floor(reach / dx))
    if h == 0:
        return mask.copy()
    ax = np.arange(-h, h + 1) * dx
    r2 = sum(np.meshgrid(*[ax**2] * mask.ndim, indexing="ij"))
    ball = (r2 <= reach**2 * (1 + 1e-12)).astype(np.float64)
    size = [_fast_len(n + 2 * h) for n in mask.shape]
    axes = tuple(range(mask.ndim))
    conv = np.fft.irfftn(np.fft.rfftn(mask.astype(np.float64), size, axes)
                         * np.fft.rfftn(ball, size, axes), size, axes)
    # The full convolution is shifted by h voxels per axis; counts are integers.
    core = tuple(slice(h, h + n) for n in mask.shape)
    return conv[core] > 0.5


# --------------------------------------------------------------------------- vessels
def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-300)


def _network_points(spacing: float, radius: float, grid: Grid,
                    rng: np.random.Generator) -> np.ndarray:
    """Sample points (µm) along persistent random walks with length density 1/s^(ndim-1)."""
    ndim, dx = grid.ndim, grid.dx
    extent = np.array(grid.extent)
    length = VESSEL_LENGTH * spacing
    node_step = NODE_STEP * spacing
    n_seg = int(round(VESSEL_LENGTH / NODE_STEP))
    # Any vessel that can reach the grid starts within one vessel length of it, so
    # uniform starts in the padded box give a stationary length density inside.
    lo, hi = -length, extent + length
    padded = float(np.prod(hi - lo))
    n_vessels = max(1, int(rng.poisson(padded / spacing ** (ndim - 1) / length)))
    start = lo + rng.random((n_vessels, ndim)) * (hi - lo)
    direction = _unit(rng.standard_normal((n_vessels, ndim)))
    nodes = [start]
    for _ in range(n_seg):
        direction = _unit(direction + TURN * rng.standard_normal((n_vessels, ndim)))
        nodes.append(nodes[-1] + node_step * direction)
    nodes = np.stack(nodes, axis=1)                       # (vessel, node, axis)
    a, b = nodes[:, :-1].reshape(-1, ndim), nodes[:, 1:].reshape(-1, ndim)
    # Only segments whose bounding box comes within reach of the grid can mark a voxel.
    reach = radius + dx
    near = ((np.minimum(a, b) < extent + reach) & (np.maximum(a, b) > -reach)).all(axis=1)
    a, b = a[near], b[near]
    step = max(min(dx, radius) / 2, dx / 4)
    m = max(1, int(math.ceil(node_step / step)))
    t = np.arange(m + 1)[None, :, None] / m
    return (a[:, None, :] + t * (b - a)[:, None, :]).reshape(-1, ndim)


def vessels(cfg: TissueConfig, grid: Grid, tumour_centre, rng) -> np.ndarray:
    v = cfg.vessels
    if v.kind == "none":
        return np.zeros(grid.shape)
    if v.kind == "network":
        mask = _stamp(_network_points(v.spacing, v.radius, grid, rng), grid.shape,
                      grid.dx, v.radius)
    else:  # points: cross-sections in the (y, x) plane, tubes along z in 3D
        plane = np.array(grid.extent[-2:])
        n = max(1, int(round(float(np.prod(plane)) / v.spacing**2)))
        centres = rng.random((n, 2)) * plane
        mask = np.broadcast_to(_stamp(centres, grid.shape[-2:], grid.dx, v.radius),
                               grid.shape).copy()
    if v.margin > 0:
        distance = _centre_distance(grid, tumour_centre)
        allowed = distance >= v.margin
        mask &= allowed
    else:
        allowed = np.ones(grid.shape, dtype=bool)
    if not mask.any():
        if allowed.any():
            mask.flat[rng.choice(np.flatnonzero(allowed))] = True
        else:
            mask.flat[int(np.argmax(distance))] = True
            warnings.warn(f"tissue.vessels.margin={v.margin}: the margin covers the whole "
                          "grid; one vessel voxel was placed at the farthest corner",
                          stacklevel=3)
    return mask.astype(np.float64)


# --------------------------------------------------------------------------- stroma, TAMs
def stroma(cfg: TissueConfig, grid: Grid, capacity: float, tumour_centre,
            rng) -> np.ndarray:
    s = cfg.stroma
    if s.kind == "none" or (s.kind == "clusters" and s.n_clusters <= 0):
        return np.zeros(grid.shape)
    if s.kind == "clusters":
        weight = np.zeros(grid.shape)
        for _ in range(int(s.n_clusters)):
            direction = _unit(rng.standard_normal(grid.ndim))
            distance = rng.uniform(*CLUSTER_DISTANCE) * cfg.tumour.radius
            centre = np.asarray(tumour_centre) + distance * direction
            soft_ball(grid, centre, s.cluster_radius, out=weight)
    else:  # bands normal to x; exact covered fraction of each voxel's x-interval
        period, width = s.band_spacing, min(s.band_width, s.band_spacing)
        phase = rng.uniform(0.0, period)

        def covered(u):  # band length in [0, u) of the periodic pattern
            return np.floor(u / period) * width + np.minimum(np.mod(u, period), width)

        x = grid.coordinates()[-1] - phase
        half = grid.dx / 2
        frac = (covered(x + half) - covered(x - half)) / grid.dx
        weight = np.broadcast_to(frac, grid.shape).copy()
    return s.caf_density * capacity * weight


def macrophages(cfg: TissueConfig, grid: Grid, capacity: float, F: np.ndarray,
                 vessels: np.ndarray) -> np.ndarray:
    m = cfg.macrophages
    if m.density <= 0:
        return np.zeros(grid.shape)
    if m.near == "uniform":
        return np.full(grid.shape, m.density * capacity)
    source = F > 0 if m.near == "stroma" else vessels > 0
    if not source.any():
        warnings.warn(f"tissue.macrophages.near={m.near!r}: the tissue has no "
                      f"{'CAFs' if m.near == 'stroma' else 'vessels'}, so no TAMs are seeded",
                      stacklevel=3)
    return m.density * capacity * _within(source, TAM_REACH, grid.dx)


# --------------------------------------------------------------------------- work bounds
def tissue_work(cfg: TissueConfig, grid: Grid) -> dict[str, float]:
    """What the generators above would compute for ``cfg`` on ``grid``, counted before any
    of it runs (expected values, as floats so that absurd inputs give inf, not overflow):

    - ``vessel_nodes``: nodes of the network walks, ``n_vessels·(n_seg + 1)``;
    - ``vessel_pairs``: (sample point, stamp offset) pairs :func:`_stamp` tests;
    - ``cluster_voxels``: voxels the CAF clusters' bounding boxes cover, and
      ``clusters``: the clusters themselves (one Python iteration each);
    - ``tam_fft``: voxels of the padded FFT grid of the TAM dilation.
    """
    ndim, dx = grid.ndim, grid.dx
    extent = np.array(grid.extent, dtype=float)
    v, s = cfg.vessels, cfg.stroma
    out = {"vessel_nodes": 0.0, "vessel_pairs": 0.0, "clusters": 0.0, "cluster_voxels": 0.0,
           "tam_fft": 0.0}
    with np.errstate(all="ignore"):
        h = math.ceil(min(v.radius / dx + 0.5, 1e15))
        offsets = min(float(2 * h + 1) ** ndim, math.pi * (h + 1) ** ndim * 2)
        if v.kind == "network":
            length = VESSEL_LENGTH * v.spacing
            padded = float(np.prod(extent + 2 * length))
            n_vessels = padded / v.spacing ** (ndim - 1) / length
            n_seg = round(VESSEL_LENGTH / NODE_STEP)
            out["vessel_nodes"] = n_vessels * (n_seg + 1)
            step = max(min(dx, v.radius) / 2, dx / 4)
            per_segment = math.ceil(min(NODE_STEP * v.spacing / step, 1e15)) + 1
            # segments near the grid: the vessel length inside the grid ± one vessel length
            near = float(np.prod(extent + 2 * (v.radius + dx))) / v.spacing ** (ndim - 1)
            out["vessel_pairs"] = near / (NODE_STEP * v.spacing) * per_segment * offsets
        elif v.kind == "points":
            plane = float(np.prod(extent[-2:]))
            out["vessel_pairs"] = max(1.0, plane / v.spacing**2) * min(
                float(2 * h + 1) ** 2, offsets)
        if s.kind == "clusters" and s.n_clusters > 0:
            box = min(float(grid.size),
                      float(np.prod(np.minimum(2 * s.cluster_radius / dx + 3, grid.shape))))
            out["clusters"] = float(s.n_clusters)
            out["cluster_voxels"] = s.n_clusters * box
        if cfg.macrophages.density > 0 and cfg.macrophages.near != "uniform":
            reach = math.floor(min(TAM_REACH / dx, 1e15))
            out["tam_fft"] = float(np.prod([n + 2.0 * reach for n in grid.shape]))
    return {k: (float(x) if math.isfinite(x) else math.inf) for k, x in out.items()}
