"""Where the niches are: Euclidean distances and dilations on the grid, and the persister
density against distance to the nearest CAF/TAM niche.

    niche voxel:   F + M >= run.niche_threshold                    (cells/voxel)
    tumour voxel:  S + P + R >= TUMOUR_FLOOR · max(S + P + R)      (follows a shrinking tumour)

:class:`BallDilation` marks the voxels within a distance of a mask (for the per-step
niche index of :mod:`.observables`); :func:`distance_to_mask` is the exact Euclidean
distance map; :func:`niche_profile` bins P against it (host side, for plots and the
viewer). Distances in µm between voxel centres.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..backends import host_array
from ..config import RunConfig
from ..model.grid import Grid

# A voxel is tumour when S+P+R >= TUMOUR_FLOOR × the current peak of S+P+R. Relative to
# the peak, not to capacity: under drug the tumour shrinks 1000-fold within two weeks and a
# fixed floor would leave no tumour voxels (and a NaN niche index) while persisters remain.
TUMOUR_FLOOR = 1.0e-3



def _at_most_one(x: float) -> float:
    """Clip rounding overshoot above 1 (NaN stays NaN, unlike min(1.0, x))."""
    return 1.0 if x > 1.0 else x


def ball_offsets(radius: float, dx: float, ndim: int) -> np.ndarray:
    """Integer voxel offsets ``d`` (shape ``(k, ndim)``) with ``dx·|d| <= radius``.

    The ball is taken between voxel centres, with a relative tolerance of 1e-9 so that a
    radius of exactly ``dx`` includes the face neighbours. A radius below ``dx`` leaves
    only the centre ``(0, …, 0)``.
    """
    if not (math.isfinite(radius) and radius >= 0):
        raise ValueError(f"radius={radius!r}: must be a finite distance >= 0 µm")
    if not dx > 0:
        raise ValueError(f"dx={dx!r}: the voxel edge must be > 0 µm")
    r2 = (radius / dx) ** 2 * (1.0 + 1e-9)
    reach = int(math.floor(math.sqrt(r2)))
    axes = np.arange(-reach, reach + 1)
    d = np.stack(np.meshgrid(*([axes] * ndim), indexing="ij"), axis=-1).reshape(-1, ndim)
    return d[(d**2).sum(axis=1) <= r2]


def _or_shifted(out, src, offset) -> None:
    """``out[p] |= src[p - offset]`` wherever both indices lie inside the grid.

    Slicing instead of rolling keeps the domain edges apart: a niche at x = 0 never
    reaches x = nx - 1.
    """
    dst, take = [], []
    for d, n in zip(offset, out.shape):
        d = int(d)
        if abs(d) >= n:
            return
        dst.append(slice(d, n) if d >= 0 else slice(0, n + d))
        take.append(slice(0, n - d) if d >= 0 else slice(-d, n))
    out[tuple(dst)] |= src[tuple(take)]


class BallDilation:
    """Dilate a boolean mask by the Euclidean ball of ``radius`` µm (no wrap-around).

    A ball is convex and symmetric, so each of its rows along x is an interval
    ``[-w, w]``. The mask is first dilated along x by every half-width ``w`` it needs
    (each width builds on the previous one), then each row is applied as one shift in the
    leading axes: ``O(r^(ndim-1) + r)`` whole-grid operations instead of ``O(r^ndim)``.
    """

    def __init__(self, radius: float, dx: float, ndim: int):
        self.offsets = ball_offsets(radius, dx, ndim)
        rows: dict[tuple[int, ...], int] = {}
        for d in self.offsets:
            lead = tuple(int(v) for v in d[:-1])
            rows[lead] = max(rows.get(lead, 0), abs(int(d[-1])))
        self.rows = tuple(rows.items())        # ((leading offset), half-width along x)
        self.max_width = max(rows.values())

    def __call__(self, mask, xp=np):
        x_dilated = [mask]
        for w in range(1, self.max_width + 1):
            nxt = x_dilated[-1].copy()
            _or_shifted(nxt, mask, (0,) * (mask.ndim - 1) + (w,))
            _or_shifted(nxt, mask, (0,) * (mask.ndim - 1) + (-w,))
            x_dilated.append(nxt)
        out = xp.zeros(mask.shape, dtype=bool)
        for lead, w in self.rows:
            _or_shifted(out, x_dilated[w], lead + (0,))
        return out


def distance_to_mask(mask, dx: float, xp=np):
    """Euclidean distance (µm) from every voxel centre to the nearest True voxel centre.

    Exact: the squared distance ``min_j Σ_k dx²(i_k - j_k)²`` separates into one min-plus
    pass with a parabola per axis, each done as ``2n - 1`` shifted minima over the whole
    grid (vectorised, no loop over voxels). Voxels with no True voxel anywhere get inf.
    A pass stops early once a shift's parabola ``(s·dx)²`` exceeds every distance that is
    still open (finite, or infinite on a line that holds a finite value).
    """
    d2 = xp.where(mask, 0.0, xp.inf)
    for axis, n in enumerate(mask.shape):
        def along(sl):
            return tuple(sl if k == axis else slice(None) for k in range(mask.ndim))

        reachable = xp.isfinite(d2).any(axis=axis, keepdims=True)
        best = d2.copy()
        for s in range(1, n):
            step = (s * dx) ** 2
            if float(xp.max(xp.where(reachable, best, 0.0))) <= step:
                break          # no larger shift can lower any distance on this axis
            hi, lo = along(slice(s, None)), along(slice(None, n - s))
            xp.minimum(best[hi], d2[lo] + step, out=best[hi])
            xp.minimum(best[lo], d2[hi] + step, out=best[lo])
        d2 = best
    return xp.sqrt(d2)


class NicheProfile(NamedTuple):
    edges: np.ndarray      # µm, bin edges of distance to the nearest niche voxel
    centres: np.ndarray    # µm
    mean_P: np.ndarray     # cells/voxel, mean P over the tumour voxels in each bin (NaN if none)
    counts: np.ndarray     # tumour voxels in each bin


def niche_profile(state, run_cfg: RunConfig, grid: Grid, bins=10,
                  capacity: float | None = None) -> NicheProfile:
    """Mean persister density of tumour voxels against distance to the nearest niche voxel.

    Niche voxels: F + M >= ``run_cfg.niche_threshold``. Tumour voxels: S+P+R >= 1e-3 × the
    peak of S+P+R (as in :class:`Observer`); ``capacity`` is accepted for compatibility.
    ``bins`` is a number of equal bins from 0 to the farthest tumour voxel, or an array of
    edges in µm (a voxel at distance exactly ``edges[-1]`` falls in the last bin).
    Runs on the host with the exact distance of :func:`distance_to_mask`.
    """
    fields = {c: host_array(state[c]).astype(np.float64) for c in ("S", "P", "R", "F", "M")}
    niche = (fields["F"] + fields["M"]) >= run_cfg.niche_threshold
    tumour_cells = fields["S"] + fields["P"] + fields["R"]
    tumour = (tumour_cells >= TUMOUR_FLOOR * tumour_cells.max()) & (tumour_cells > 0)
    dist = distance_to_mask(niche, grid.dx)[tumour]
    p = fields["P"][tumour]
    finite = np.isfinite(dist)
    dist, p = dist[finite], p[finite]
    if np.ndim(bins) == 0:
        if not (isinstance(bins, (int, np.integer)) and bins >= 1):
            raise ValueError(f"bins={bins!r}: a number of bins >= 1 or an array of edges (µm)")
        top = float(dist.max()) if dist.size else grid.dx
        edges = np.linspace(0.0, max(top, grid.dx), int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bins={bins!r}: edges must be at least two increasing distances (µm)")
    counts, _ = np.histogram(dist, bins=edges)
    p_sum, _ = np.histogram(dist, bins=edges, weights=p)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_P = np.where(counts > 0, p_sum / np.maximum(counts, 1), np.nan)
    return NicheProfile(edges, 0.5 * (edges[1:] + edges[:-1]), mean_P, counts)
