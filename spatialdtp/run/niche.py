"""The niche measure: are persisters enriched near the CAF/TAM niches, once the tumour edge
is accounted for? One definition, used by the per-step observable (:mod:`.observables`),
the experiments' read-outs and the viewer's niche widget.

    niche voxel   F + M >= niche_threshold · capacity                  (CAF/TAM-dense voxels)
    tumour bed    T0 >= TUMOUR_FLOOR · capacity, T0 = S + P + R at treatment start
    d_niche(x)    Euclidean distance (µm, voxel centres) to the nearest niche voxel
    near, far     bed voxels with d_niche <= niche_distance, and > niche_far_distance
    stratum s(x)  floor(d_edge(x) / niche_edge_bin), capped at MAX_STRATA − 1, with d_edge
                  the distance from a bed voxel to the nearest voxel outside the bed
    rate          P / T0 pooled over a set: persisters per initial tumour cell
    contrast      the Mantel–Haenszel rate ratio of near against far across the strata,

                      Σ_s P_near,s T0_far,s / T0_s   ÷   Σ_s P_far,s T0_near,s / T0_s

                  (T0_s = T0_near,s + T0_far,s; a stratum without both near and far
                  voxels carries no comparison and drops out)

Persisters per *initial* tumour cell compare survival: a niche voxel that CAFs half fill
starts with fewer tumour cells, and per initial cell that does not count as fewer
persisters. Comparing near with far only within strata of distance to the tumour edge
keeps rim effects (oxygen and vessels at the rim, necrosis in the core) from passing for
niche effects; > 1 means persisters are enriched near niches. The contrast is NaN, with a
reason, when there is no reference yet (before treatment start), no niche voxel, no near
or no far bed voxel, no stratum holding both, or no persister far from niches.

Distances are exact (:func:`distance_to_mask`): separable min-plus passes with one
parabola per axis, vectorised on NumPy or CuPy, cut at ``limit`` when only the distances
up to it matter (the per-step observable needs them up to the far distance only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..backends import host_array
from ..config import RunConfig
from ..numerics import distance, niche_labels

#: the tumour bed: voxels whose tumour at treatment start reached this fraction of capacity
TUMOUR_FLOOR = 1.0e-3
#: at most this many strata of distance to the tumour edge (the last one is open-ended)
MAX_STRATA = 16
#: per-voxel labels (uint8): bits 0–6 the near/far stratum label (NO_LABEL: neither, or not
#: in the bed); bit 7 set on niche voxels (defined with their pointwise twin)
NO_LABEL = niche_labels.NO_LABEL
NICHE_BIT = niche_labels.NICHE_BIT


#: integers up to this are exact in float32 (2**24): squared distances in voxel units that
#: stay below it are computed in float32, half the bytes of float64 and the same values
FLOAT32_EXACT_INTEGERS = 2**24


def _shift_limit(n: int, unit: float, limit: float | None) -> int:
    """The largest shift along an axis of ``n`` voxels a distance up to ``limit`` needs."""
    return n - 1 if limit is None else min(n - 1, int(math.floor(limit / unit * (1.0 + 1e-9))))


def _squared_distance(mask, unit: float, xp, limit: float | None, dtype, ops=None):
    """``min_j Σ_k (unit·(i_k − j_k))²`` to the True voxels of ``mask`` (inf where none),
    in ``dtype``: one :func:`~spatialdtp.numerics.distance.min_plus_pass` per axis
    (through ``ops.min_plus_pass``, voxel units only, when ``ops`` is given)."""
    dtype = np.dtype(dtype)
    beyond = dtype.type(distance.BEYOND if dtype == np.uint8 else np.inf)
    d2 = xp.where(mask, dtype.type(0), beyond)
    for axis, n in enumerate(mask.shape):
        top = _shift_limit(n, unit, limit)
        if ops is not None:
            d2 = ops.min_plus_pass(d2, axis, top)
            continue
        reachable = None if limit is not None else xp.isfinite(d2).any(axis=axis, keepdims=True)
        d2 = distance.min_plus_pass(d2, axis, top, xp, unit, reachable=reachable)
    return d2


def distance_to_mask(mask, dx: float, xp=np, limit: float | None = None):
    """Euclidean distance (µm) from every voxel centre to the nearest True voxel centre.

    Exact: the squared distance ``min_j Σ_k dx²(i_k − j_k)²`` separates into one min-plus
    pass with a parabola per axis, each done as ``2n − 1`` shifted minima over the whole
    grid (vectorised, no loop over voxels). Voxels with no True voxel anywhere get inf.
    Without ``limit`` a pass stops once a shift's parabola ``(s·dx)²`` exceeds every
    distance still open. With ``limit`` (µm) only shifts up to it are taken (no host
    synchronisation): every distance <= limit is still exact, since its offset along each
    axis is <= limit, and every other one comes out > limit (or inf).
    """
    return xp.sqrt(_squared_distance(mask, float(dx), xp, limit, np.float64))


def distance_dtype(ndim: int, top: int):
    """The dtype :func:`squared_voxel_distance` works in when its largest shift is ``top``."""
    return np.float32 if ndim * top * top < FLOAT32_EXACT_INTEGERS else np.float64


def label_distance_dtype(ndim: int, top: int):
    """The dtype of the niche labels' distance: one byte where every squared distance
    within the reach is below 255 (255 then stands for everything beyond, past every cut
    the labels compare with), else :func:`distance_dtype`'s."""
    return np.uint8 if ndim * top * top < distance.BEYOND else distance_dtype(ndim, top)


def squared_voxel_distance(mask, xp=np, limit_voxels: float | None = None, ops=None,
                           dtype=None):
    """:func:`distance_to_mask` squared, in voxel² units: integers (Σ of squared integer
    offsets), so exact in float32 while they stay below 2**24 — then in float32, which
    moves half the bytes of the float64 distance for the same numbers (the per-step niche
    labels compare it with thresholds only); float64 on grids where the bound (ndim times
    the largest shift squared, or a value of inf) could reach 2**24. ``ops``: the backend's
    (its ``min_plus_pass``: ``kernels/niche_distance.cu`` on the compiled backends)."""
    top = max((_shift_limit(n, 1.0, limit_voxels) for n in mask.shape), default=0)
    if dtype is None:
        dtype = distance_dtype(mask.ndim, top)
    return _squared_distance(mask, 1.0, xp, limit_voxels, dtype, ops)


# --------------------------------------------------------------------------- definition
@dataclass(frozen=True)
class NicheGeometry:
    """The measure's settings in the grid's units (from :class:`~spatialdtp.config.RunConfig`)."""

    threshold: float      # cells/voxel of F + M that make a niche voxel
    near: float           # µm
    far: float            # µm
    edge_bin: float       # µm, width of a stratum of distance to the tumour edge
    dx: float             # µm
    capacity: float       # cells/voxel

    @classmethod
    def of(cls, run: RunConfig, capacity: float, dx: float) -> "NicheGeometry":
        return cls(threshold=run.niche_threshold * capacity, near=run.niche_distance,
                   far=run.niche_far_distance, edge_bin=run.niche_edge_bin, dx=float(dx),
                   capacity=float(capacity))

    def is_near(self, d):
        return d <= self.near * (1.0 + 1e-9)

    def is_far(self, d):
        return d > self.far * (1.0 + 1e-9)

    @property
    def label_reach(self) -> float:
        """How far (in voxels) the labels need the niche distance: one voxel past the far
        distance, so that every far voxel is told from a near or middle one."""
        return self.far / self.dx + 1.0

    def label_shifts(self, shape) -> list[int]:
        """The shifts per axis the labels' niche distance takes on a grid of ``shape``."""
        return [_shift_limit(n, 1.0, self.label_reach) for n in shape]

    def _voxel2_cut(self, length: float) -> float:
        """The largest squared voxel distance k (an integer) with dx·√k <= ``length`` (µm),
        with :meth:`is_near`'s relative slack: comparing the integers k with it in any
        precision gives what comparing dx·√k with the length gives."""
        return float(math.floor((length * (1.0 + 1e-9) / self.dx) ** 2))

    def voxel2_cuts(self) -> tuple[float, float]:
        """(near, far): the integer cuts of the squared voxel distance (see
        :meth:`is_near_voxel2`, :meth:`is_far_voxel2`)."""
        return self._voxel2_cut(self.near), self._voxel2_cut(self.far)

    def is_near_voxel2(self, k):
        """:meth:`is_near` of the squared voxel distances ``k`` (:func:`squared_voxel_distance`)."""
        return k <= self._voxel2_cut(self.near)

    def is_far_voxel2(self, k):
        """:meth:`is_far` of the squared voxel distances ``k``."""
        return k > self._voxel2_cut(self.far)


class NicheReference(NamedTuple):
    """The tumour at treatment start: what the rates are per, and the edge strata."""

    T0: object            # cells/voxel, S + P + R at treatment start (device array)
    bed: object           # bool, T0 >= TUMOUR_FLOOR · capacity
    stratum: object       # int32, stratum of distance to the bed's edge; −1 outside the bed
    n_strata: int
    #: the strata as bytes, 255 outside the bed (what the labels read; :func:`reference_of`
    #: makes them once)
    code: object = None

    def codes(self, xp=np):
        """:attr:`stratum` as one byte a voxel (255 outside the bed)."""
        return self.code if self.code is not None else niche_labels.stratum_codes(
            self.stratum, xp)


def reference_of(T0, geometry: NicheGeometry, xp=np) -> NicheReference:
    """The reference of a tumour ``T0`` (S + P + R at treatment start, cells/voxel)."""
    bed = T0 >= TUMOUR_FLOOR * geometry.capacity
    if not bool(xp.any(bed)):
        return NicheReference(T0, bed, xp.full(T0.shape, -1, dtype=xp.int32), 0)
    edge = distance_to_mask(~bed, geometry.dx, xp)          # inf if the bed fills the grid
    top = float(xp.max(xp.where(bed & xp.isfinite(edge), edge, 0.0)))
    n_strata = int(min(MAX_STRATA, math.floor(top / geometry.edge_bin) + 1))
    s = xp.floor(xp.where(xp.isfinite(edge), edge, top) / geometry.edge_bin)
    stratum = xp.where(bed, xp.minimum(s, n_strata - 1), -1).astype(xp.int32)
    return NicheReference(T0, bed, stratum, n_strata,
                          niche_labels.stratum_codes(stratum, xp))


def niche_voxels(F, M, geometry: NicheGeometry):
    return niche_labels.niche_mask(F, M, geometry.threshold)


def labels(F, M, reference: NicheReference | None, geometry: NicheGeometry, xp=np, ops=None):
    """uint8 label of every voxel (see NO_LABEL, NICHE_BIT): near voxels of stratum s get
    s, far ones n_strata + s. The niche distance is needed only up to the far distance."""
    return labels_of_mask(niche_voxels(F, M, geometry), reference, geometry, xp, ops)


def labels_of_mask(niche, reference: NicheReference | None, geometry: NicheGeometry, xp=np,
                   ops=None):
    """:func:`labels` from the niche voxels (:func:`niche_voxels`): the labels depend on the
    stroma only through them. ``ops``: the backend's, for the distance passes (default the
    array twin), for the distance passes and the labels (``ops.label_voxels``: one pass
    of ``kernels/niche_labels.cu`` on the compiled backends)."""
    if reference is None or reference.n_strata == 0:
        out = xp.full(niche.shape, NO_LABEL, dtype=xp.uint8)
        return xp.where(niche, out | NICHE_BIT, out).astype(xp.uint8)
    # no niche voxel: no distance, every bed voxel is far
    reach = geometry.label_reach
    top = max(_shift_limit(n, 1.0, reach) for n in niche.shape)
    k = (squared_voxel_distance(niche, xp, limit_voxels=reach, ops=ops,
                                dtype=label_distance_dtype(niche.ndim, top))
         if bool(xp.any(niche)) else None)
    code = reference.codes(xp)
    cuts = geometry.voxel2_cuts()
    if ops is not None:
        return ops.label_voxels(niche, k, code, reference.n_strata, *cuts)
    return niche_labels.label_voxels(niche, k, code, reference.n_strata, *cuts, xp)


def label_sums(lab, P, T0, n_labels: int, xp=np):
    """(count, Σ P, Σ T0) of every label 0..n_labels−1, float64, shape (3, n_labels), and
    the number of niche voxels (the reference of that part of ``kernels/observables.cu``)."""
    f64 = np.float64
    niche = xp.sum((lab & NICHE_BIT) > 0, dtype=f64)
    if n_labels == 0:
        return xp.zeros((3, 0), dtype=f64), niche
    # one histogram per quantity over every label value (NO_LABEL included, then dropped):
    # three passes instead of three per label (bincount sums its weights in float64)
    low = (lab & NO_LABEL).ravel()
    bins = max(n_labels, NO_LABEL + 1)
    table = xp.stack([xp.bincount(low, minlength=bins).astype(f64),
                      xp.bincount(low, weights=P.ravel(), minlength=bins),
                      xp.bincount(low, weights=T0.ravel(), minlength=bins)])[:, :n_labels]
    return table, niche


class NicheContrast(NamedTuple):
    value: float          # Mantel–Haenszel rate ratio near/far (NaN: see reason)
    near_voxels: int      # bed voxels near niches
    far_voxels: int       # bed voxels far from niches
    niche_voxels: int
    reason: str           # "" when value is defined


def contrast_from_sums(table, n_niche: float, n_strata: int, geometry: NicheGeometry,
                       started: bool = True) -> NicheContrast:
    """The contrast from the per-label (count, ΣP, ΣT0) table of :func:`label_sums`."""
    t = np.asarray(table, dtype=np.float64).reshape(3, 2 * n_strata)
    count_near, P_near, T_near = t[:, :n_strata]          # per stratum s
    count_far, P_far, T_far = t[:, n_strata:]
    n_near, n_far, n_niche = int(count_near.sum()), int(count_far.sum()), int(n_niche)

    def out(value, reason=""):
        return NicheContrast(value, n_near, n_far, n_niche, reason)

    if not started:
        return out(math.nan, "treatment has not started: no reference tumour yet")
    if n_strata == 0:
        return out(math.nan, "no tumour bed at treatment start")
    if n_niche == 0:
        return out(math.nan, "no niche voxel (F + M >= niche_threshold · capacity)")
    if n_near == 0:
        return out(math.nan, f"no tumour-bed voxel within {geometry.near:g} µm of a niche")
    if n_far == 0:
        return out(math.nan, f"no tumour-bed voxel beyond {geometry.far:g} µm of a niche")
    both = (count_near > 0) & (count_far > 0)
    if not both.any():
        return out(math.nan, "no stratum of distance to the tumour edge holds both near "
                             "and far voxels")
    total = T_near + T_far
    with np.errstate(invalid="ignore", divide="ignore"):
        num = float(np.sum(np.where(both, P_near * T_far / total, 0.0)))
        den = float(np.sum(np.where(both, P_far * T_near / total, 0.0)))
    if not den > 0:
        return out(math.nan, "no persisters far from niches (in the strata holding both)")
    return out(num / den)


def reason_of(value: float, niche_voxels: float, near_voxels: float, far_voxels: float,
              geometry: NicheGeometry) -> str:
    """Why a per-step ``niche_contrast`` is NaN, from the counts recorded beside it."""
    if math.isfinite(value):
        return ""
    if not math.isfinite(near_voxels):
        return "treatment has not started: no reference tumour yet"
    if niche_voxels == 0:
        return "no niche voxel (F + M >= niche_threshold · capacity)"
    if near_voxels == 0:
        return f"no tumour-bed voxel within {geometry.near:g} µm of a niche"
    if far_voxels == 0:
        return f"no tumour-bed voxel beyond {geometry.far:g} µm of a niche"
    return ("no edge stratum holds both near and far voxels, or no persisters far from "
            "niches")


def niche_contrast(P, F, M, reference: NicheReference | None, geometry: NicheGeometry,
                   xp=np) -> NicheContrast:
    """The niche contrast of one frame (P, F, M in cells/voxel), with its counts and
    reason: the same computation as the per-step observable, as array expressions."""
    if reference is None:
        return contrast_from_sums(np.zeros((3, 0)), 0, 0, geometry, started=False)
    lab = labels(F, M, reference, geometry, xp)
    table, n_niche = label_sums(lab, P, reference.T0, 2 * reference.n_strata, xp)
    return contrast_from_sums(host_array(table), float(n_niche), reference.n_strata, geometry)


# --------------------------------------------------------------------------- profile
class NicheProfile(NamedTuple):
    edges: np.ndarray      # µm, bin edges of distance to the nearest niche voxel
    centres: np.ndarray    # µm
    rate: np.ndarray       # ΣP/ΣT0 of the bed voxels in each bin: persisters per initial
                           # tumour cell (NaN where empty)
    counts: np.ndarray     # bed voxels in each bin


def niche_distance(F, M, geometry: NicheGeometry) -> np.ndarray:
    """Exact distance (µm) from every voxel to the nearest niche voxel (host; inf without
    niches)."""
    F, M = (np.asarray(host_array(a), dtype=np.float64) for a in (F, M))
    niche = niche_voxels(F, M, geometry)
    if not niche.any():
        return np.full(niche.shape, np.inf)
    return distance_to_mask(niche, geometry.dx)


def niche_profile(P, F, M, reference: NicheReference, geometry: NicheGeometry,
                  bins=10) -> NicheProfile:
    """Persisters per initial tumour cell of the tumour bed against distance to the nearest
    niche voxel (host side, for plots and the viewer). ``bins``: a number of equal bins from
    0 to the farthest bed voxel, or an array of edges in µm (a voxel at exactly
    ``edges[-1]`` falls in the last bin)."""
    bed = np.asarray(host_array(reference.bed), dtype=bool)
    dist = niche_distance(F, M, geometry)[bed]
    p = np.asarray(host_array(P), dtype=np.float64)[bed]
    t0 = np.asarray(host_array(reference.T0), dtype=np.float64)[bed]
    finite = np.isfinite(dist)
    dist, p, t0 = dist[finite], p[finite], t0[finite]
    if np.ndim(bins) == 0:
        if not (isinstance(bins, (int, np.integer)) and bins >= 1):
            raise ValueError(f"bins={bins!r}: a number of bins >= 1 or an array of edges (µm)")
        top = float(dist.max()) if dist.size else geometry.dx
        edges = np.linspace(0.0, max(top, geometry.dx), int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bins={bins!r}: edges must be at least two increasing distances (µm)")
    counts, _ = np.histogram(dist, bins=edges)
    p_sum, _ = np.histogram(dist, bins=edges, weights=p)
    t_sum, _ = np.histogram(dist, bins=edges, weights=t0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(t_sum > 0, p_sum / np.where(t_sum > 0, t_sum, 1.0), np.nan)
    return NicheProfile(edges, 0.5 * (edges[1:] + edges[:-1]), rate, counts)


class EdgeProfile(NamedTuple):
    """Persisters per initial tumour cell against distance to the tumour edge, in the
    measure's own strata: the comparison the contrast pools, one stratum at a time. A rim
    effect moves all three rates with the distance to the edge; a niche effect sets the
    near rate above the far one within a stratum."""

    edges: np.ndarray       # µm, stratum edges k·edge_bin (the last stratum is open-ended:
                            # its upper edge is the deepest bed voxel's distance)
    centres: np.ndarray     # µm
    rate: np.ndarray        # ΣP/ΣT0 of all bed voxels of each stratum (NaN where empty)
    near_rate: np.ndarray   # of its voxels near niches
    far_rate: np.ndarray    # of its voxels far from niches
    counts: np.ndarray      # bed voxels of each stratum
    near_counts: np.ndarray
    far_counts: np.ndarray


def _rates(p_sum, t_sum):
    p_sum, t_sum = np.asarray(p_sum, dtype=np.float64), np.asarray(t_sum, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(t_sum > 0, p_sum / np.where(t_sum > 0, t_sum, 1.0), np.nan)


def edge_profile(P, F, M, reference: NicheReference, geometry: NicheGeometry) -> EdgeProfile:
    """The rates of :class:`EdgeProfile` for one frame (host side). Near and far are the
    labels the contrast counts (:func:`labels`, :func:`label_sums`), so the per-stratum
    near and far rates here are exactly the ones its Mantel–Haenszel ratio weighs."""
    n = reference.n_strata
    T0 = np.asarray(host_array(reference.T0), dtype=np.float64)
    P = np.asarray(host_array(P), dtype=np.float64)
    stratum = np.asarray(host_array(reference.stratum))
    lab = labels(np.asarray(host_array(F), dtype=np.float64),
                 np.asarray(host_array(M), dtype=np.float64), reference, geometry)
    table, _ = label_sums(lab, P, T0, 2 * n)
    table = np.asarray(table, dtype=np.float64).reshape(3, 2 * n)
    counts = np.bincount(stratum[stratum >= 0], minlength=n)[:n]
    p_all = np.bincount(stratum[stratum >= 0], weights=P[stratum >= 0], minlength=n)[:n]
    t_all = np.bincount(stratum[stratum >= 0], weights=T0[stratum >= 0], minlength=n)[:n]
    edges = geometry.edge_bin * np.arange(n + 1, dtype=np.float64)
    if n:
        bed = np.asarray(host_array(reference.bed), dtype=bool)
        deepest = float(np.max(np.where(bed, distance_to_mask(~bed, geometry.dx), 0.0)))
        if np.isfinite(deepest):
            edges[-1] = max(edges[-1], deepest)
    return EdgeProfile(edges, 0.5 * (edges[1:] + edges[:-1]), _rates(p_all, t_all),
                       _rates(table[1, :n], table[2, :n]), _rates(table[1, n:], table[2, n:]),
                       counts.astype(np.int64), table[0, :n].astype(np.int64),
                       table[0, n:].astype(np.int64))
