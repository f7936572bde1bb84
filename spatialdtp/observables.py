"""Per-step observables of a run and the summary drawn from their time courses.

:class:`Observer` reduces the state to a few scalars every step: cell totals, tumour
burden, oxygenation, HGF, drug levels and the persister niche index. The reductions run
on the state's device (NumPy or CuPy, the ``xp`` namespace); the scalars are stacked into
one small vector there and cross to the host in a single transfer per step.

The niche index asks whether persisters gather near the CAF/TAM niches that shelter them::

    niche voxel:   F + M >= niche_threshold                       (cells/voxel)
    near voxel:    |x - x_niche| <= niche_distance for some niche voxel (µm, voxel centres)
    tumour voxel:  S + P + R >= 1e-3 · max(S + P + R)  (follows a shrinking tumour)
    niche_index  = mean P over near tumour voxels / mean P over far tumour voxels

It is 1 when persisters ignore the niches, > 1 when they crowd into them, and NaN when
either set of tumour voxels is empty or the far mean is 0.

:func:`summarize` turns the recorded time courses into the end points of a treatment
(time to progression, nadir, minimal residual disease); :func:`format_summary` prints
them. :func:`niche_profile` gives mean P density against distance to the nearest niche
(host side, for plots and the viewer).

Units: cells (totals), cells/voxel (densities), mmHg (oxygen), ng/mL (HGF), µM (drugs),
minutes (``times_min``), days (summary times).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .config import RunConfig
from .grid import Grid
from .state import FieldLayout

MINUTES_PER_DAY = 1440.0
# A voxel is tumour when S+P+R >= TUMOUR_FLOOR × the current peak of S+P+R. Relative to
# the peak, not to capacity: under drug the tumour shrinks 1000-fold within two weeks and a
# fixed floor would leave no tumour voxels (and a NaN niche index) while persisters remain.
TUMOUR_FLOOR = 1.0e-3


def _to_host(a) -> np.ndarray:
    """NumPy copy of an xp array (CuPy arrays have ``.get()``, NumPy arrays do not)."""
    return a.get() if hasattr(a, "get") else np.asarray(a)


# --------------------------------------------------------------------------- geometry
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


# --------------------------------------------------------------------------- observer
class Observer:
    """Scalars of one state, reduced on the device, one host transfer per call.

    ``names`` fixes the order: S, P, R, F, M totals (cells); ``burden`` = S+P+R;
    ``resistant_fraction`` = R/burden; ``persister_fraction`` = P/burden; ``mean_oxygen``
    (mmHg, over all voxels); ``hypoxic_fraction`` (share of tumour cells S+P+R in voxels
    with oxygen < hypoxic_threshold); ``mean_hgf`` (ng/mL); ``niche_index`` (see the
    module docstring); then per drug ``plasma_<drug>`` (µM), ``on_<drug>`` (1/0) and
    ``mean_<drug>`` (mean tissue concentration, µM). Fractions of an empty tumour are NaN.
    """

    def __init__(self, grid: Grid, layout: FieldLayout, run_cfg: RunConfig, capacity: float,
                 drugs: tuple[str, ...] = (), xp=np, ops=None):
        if not (isinstance(capacity, (int, float)) and math.isfinite(capacity) and capacity > 0):
            raise ValueError(f"capacity={capacity!r}: must be a finite number > 0 (cells/voxel)")
        for name in ("oxygen", "hgf"):
            if name not in layout.index:
                raise ValueError(f"layout has no field {name!r}; fields are {list(layout.names)}")
        drugs = tuple(drugs)
        for d in drugs:
            if d not in layout.drugs:
                raise ValueError(f"drugs: {d!r} is not a drug of the layout {list(layout.drugs)}")
        self.grid, self.layout, self.run_cfg, self.xp = grid, layout, run_cfg, xp
        if ops is None:
            from .backends.reference import ReferenceOps
            ops = ReferenceOps(xp)
        self.ops = ops
        self.capacity = float(capacity)
        self.drugs = drugs
        self.dilate = BallDilation(run_cfg.niche_distance, grid.dx, grid.ndim)
        self.names = ("S", "P", "R", "F", "M", "burden", "resistant_fraction",
                      "persister_fraction", "mean_oxygen", "hypoxic_fraction", "mean_hgf",
                      "niche_index") + tuple(f"{k}_{d}" for d in drugs
                                             for k in ("plasma", "on", "mean"))
        drug_units = {d: layout.units.get(d, "µM") for d in drugs}
        self.units = {**{c: "cells" for c in ("S", "P", "R", "F", "M", "burden")},
                      "resistant_fraction": "1", "persister_fraction": "1",
                      "mean_oxygen": layout.units.get("oxygen", "mmHg"),
                      "hypoxic_fraction": "1",
                      "mean_hgf": layout.units.get("hgf", "ng/mL"), "niche_index": "1"}
        for d in drugs:
            self.units.update({f"plasma_{d}": drug_units[d], f"on_{d}": "1",
                               f"mean_{d}": drug_units[d]})

    def niche_masks(self, state):
        """(near, tumour) boolean maps on the device, as used by the niche index."""
        near, floor = self.near_and_floor(state)
        tumour_cells = state["S"] + state["P"] + state["R"]
        return near, (tumour_cells >= floor) & (tumour_cells > 0)

    def near_and_floor(self, state):
        """Voxels within ``niche_distance`` of a niche, and the tumour-cell floor
        (``TUMOUR_FLOOR`` × the current peak of S+P+R) that makes a voxel tumour."""
        xp = self.xp
        niche = (state["F"] + state["M"]) >= self.run_cfg.niche_threshold
        peak = float(xp.max(state["S"] + state["P"] + state["R"]))
        return self.dilate(niche, xp), TUMOUR_FLOOR * peak

    def sums_reference(self, state, near, tumour_floor):
        """The float64 sums, as array expressions (the reference of
        ``kernels/observables.cu``): totals of S, P, R, F, M; then Σ oxygen, tumour cells
        in voxels below the hypoxic threshold, Σ HGF, the number of tumour voxels near a
        niche and their Σ P, the same far from niches, and Σ of each drug."""
        xp, f64 = self.xp, np.float64
        cells = state.cells.reshape(len(self.layout.cells), -1)
        totals = xp.sum(cells, axis=1, dtype=f64)            # S, P, R, F, M
        tumour_cells = state["S"] + state["P"] + state["R"]
        tumour = (tumour_cells >= tumour_floor) & (tumour_cells > 0)
        oxygen = state["oxygen"]
        near_t, far_t = near & tumour, tumour & ~near
        P = state["P"]
        sums = [
            xp.sum(oxygen, dtype=f64),
            xp.sum(xp.where(oxygen < self.run_cfg.hypoxic_threshold, tumour_cells, 0), dtype=f64),
            xp.sum(state["hgf"], dtype=f64),
            xp.sum(near_t, dtype=f64), xp.sum(xp.where(near_t, P, 0), dtype=f64),
            xp.sum(far_t, dtype=f64), xp.sum(xp.where(far_t, P, 0), dtype=f64),
        ] + [xp.sum(state[d], dtype=f64) for d in self.drugs]
        return _to_host(xp.concatenate([totals, xp.stack(sums)]))   # the one transfer

    def compute(self, state, plasma: dict[str, float], on: dict[str, bool]) -> dict[str, float]:
        for d in self.drugs:
            for arg, given in (("plasma", plasma), ("on", on)):
                if d not in given:
                    raise ValueError(f"{arg}={given!r}: needs an entry for drug {d!r}")
        near, floor = self.near_and_floor(state)
        host = self.ops.observable_sums(self, state, near, floor)

        S, P_, R, F, M = (float(v) for v in host[:5])
        o2, hyp, hgf, n_near, p_near, n_far, p_far = (float(v) for v in host[5:12])
        drug_sums = host[12:]
        size = float(self.grid.size)
        burden = S + P_ + R

        def ratio(a, b):
            return a / b if b > 0 else math.nan

        near_mean, far_mean = ratio(p_near, n_near), ratio(p_far, n_far)
        niche_index = near_mean / far_mean if (math.isfinite(near_mean) and far_mean > 0) else math.nan
        out = {"S": S, "P": P_, "R": R, "F": F, "M": M, "burden": burden,
               "resistant_fraction": ratio(R, burden), "persister_fraction": ratio(P_, burden),
               "mean_oxygen": o2 / size, # S+P+R summed in the field dtype can exceed the float64 burden by rounding
               "hypoxic_fraction": _at_most_one(ratio(hyp, burden)),
               "mean_hgf": hgf / size, "niche_index": niche_index}
        for d, s in zip(self.drugs, drug_sums):
            out[f"plasma_{d}"] = float(plasma[d])
            out[f"on_{d}"] = 1.0 if on[d] else 0.0
            out[f"mean_{d}"] = float(s) / size
        return {k: out[k] for k in self.names}


# --------------------------------------------------------------------------- niche profile
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
    fields = {c: _to_host(state[c]).astype(np.float64) for c in ("S", "P", "R", "F", "M")}
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


# --------------------------------------------------------------------------- summary
SUMMARY_UNITS = {
    "treatment_start_day": "days", "baseline_burden": "cells", "progression_threshold": "cells",
    "time_to_progression_days": "days", "nadir": "cells", "nadir_day": "days",
    "nadir_fraction": "of baseline", "mrd_reached": "1 = yes", "final_burden": "cells",
    "final_fraction": "of baseline", "final_resistant_fraction": "of burden",
    "final_persister_fraction": "of burden", "final_P": "cells", "final_R": "cells",
    "mean_niche_index": "P near / P far",
}


def summarize(times_min, obs: dict[str, np.ndarray], run_cfg: RunConfig,
              treatment_start_min: float = 0.0) -> dict[str, float]:
    """End points of a treatment from the per-step time courses (host side).

    ``times_min`` are the observation times (minutes, non-decreasing); ``obs`` maps names
    to arrays of the same length (``burden``, or S, P and R, are required). Let ``i0`` be
    the first sample with ``t >= treatment_start_min``; all times below are in days since
    treatment start.

    - ``baseline_burden`` B0 = burden[i0]; ``progression_threshold`` = progression_factor·B0.
    - ``time_to_progression_days``: the first sample after i0 where burden rises above the
      threshold from a sample at or below it (a crossing from <= to >). Usually the burden
      starts below the threshold, so this is the first time it exceeds it; if it starts
      above (a factor <= 1), progression is the first return above after it has dropped to
      or below. Step resolution: the sample time itself, no interpolation. NaN if never.
    - ``nadir`` = min burden from i0 on, ``nadir_day`` its time, ``nadir_fraction`` =
      nadir/B0, ``mrd_reached`` = 1.0 if nadir_fraction < mrd_threshold else 0.0.
    - ``final_burden``, ``final_fraction`` (final/B0), ``final_resistant_fraction``,
      ``final_persister_fraction``, ``final_P``, ``final_R``: the last sample.
    - ``mean_niche_index``: NaN-ignoring mean of niche_index from i0 on (NaN if none).
    - ``cumulative_on_days_<drug>`` for each ``on_<drug>`` in ``obs``: Σ on[i]·(t[i+1]-t[i])
      over the whole run (each flag holds until the next sample), in days.
    """
    t = np.asarray(times_min, dtype=np.float64).ravel()
    if t.size == 0:
        raise ValueError("times_min=[]: needs at least one observation time")
    if np.any(np.diff(t) < 0):
        raise ValueError("times_min: observation times must be non-decreasing (minutes)")
    if "burden" in obs:
        burden = np.asarray(obs["burden"], dtype=np.float64)
    elif all(k in obs for k in ("S", "P", "R")):
        burden = sum(np.asarray(obs[k], dtype=np.float64) for k in ("S", "P", "R"))
    else:
        raise ValueError(f"obs has {sorted(obs)}: needs 'burden' or 'S', 'P' and 'R'")
    for k, v in obs.items():
        if np.shape(v) != t.shape:
            raise ValueError(f"obs[{k!r}] has shape {np.shape(v)}, times_min has {t.shape}")
    after = np.nonzero(t >= treatment_start_min)[0]
    if after.size == 0:
        raise ValueError(f"treatment_start_min={treatment_start_min}: after the last "
                         f"observation time ({t[-1]} min)")
    i0 = int(after[0])

    def days(i):
        return (t[i] - treatment_start_min) / MINUTES_PER_DAY

    def frac(a, b):
        return a / b if b > 0 else math.nan

    b0 = float(burden[i0])
    threshold = run_cfg.progression_factor * b0
    course = burden[i0:]
    above = course > threshold
    crossing = np.nonzero(above[1:] & ~above[:-1])[0]
    ttp = days(i0 + 1 + int(crossing[0])) if crossing.size else math.nan
    k_nadir = i0 + int(np.argmin(course))
    nadir = float(burden[k_nadir])
    nadir_fraction = frac(nadir, b0)
    final = float(burden[-1])

    def last(name):
        return float(np.asarray(obs[name])[-1]) if name in obs else math.nan

    niche = np.asarray(obs.get("niche_index", np.full(t.shape, np.nan)), dtype=np.float64)[i0:]
    niche = niche[np.isfinite(niche)]
    out = {
        "treatment_start_day": treatment_start_min / MINUTES_PER_DAY,
        "baseline_burden": b0,
        "progression_threshold": threshold,
        "time_to_progression_days": ttp,
        "nadir": nadir,
        "nadir_day": days(k_nadir),
        "nadir_fraction": nadir_fraction,
        "mrd_reached": 1.0 if nadir_fraction < run_cfg.mrd_threshold else 0.0,
        "final_burden": final,
        "final_fraction": frac(final, b0),
        "final_resistant_fraction": frac(last("R"), final),
        "final_persister_fraction": frac(last("P"), final),
        "final_P": last("P"),
        "final_R": last("R"),
        "mean_niche_index": float(niche.mean()) if niche.size else math.nan,
    }
    for key in sorted(k for k in obs if k.startswith("on_")):
        on = np.asarray(obs[key], dtype=np.float64)
        out[f"cumulative_on_days_{key[3:]}"] = float(np.sum(on[:-1] * np.diff(t)) / MINUTES_PER_DAY)
    return out


def format_summary(summary: dict[str, float]) -> str:
    """A short aligned table: name, value (4 significant digits), unit."""
    width = max((len(k) for k in summary), default=0)
    lines = []
    for k, v in summary.items():
        unit = "days" if k.startswith("cumulative_on_days_") else SUMMARY_UNITS.get(k, "")
        value = "never" if k == "time_to_progression_days" and math.isnan(v) else f"{v:.4g}"
        lines.append(f"{k:<{width}}  {value:>10}  {unit}".rstrip())
    return "\n".join(lines)
