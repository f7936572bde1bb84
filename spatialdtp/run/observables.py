"""Per-step observables of a run: what every step reports, reduced on the device.

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

The end-of-run summary is :mod:`.summary`; the niche geometry is :mod:`.niche`.

Units: cells (totals), cells/voxel (densities), mmHg (oxygen), ng/mL (HGF), µM (drugs).
The per-step sums are the NumPy twin of ``kernels/observables.cu``
(:meth:`Observer.sums_reference`).
"""
from __future__ import annotations

import math

import numpy as np

from ..backends import host_array
from ..config import RunConfig
from ..model.grid import Grid
from ..model.state import FieldLayout
from .niche import TUMOUR_FLOOR, BallDilation


def _at_most_one(x: float) -> float:
    """Clip rounding overshoot above 1 (NaN stays NaN, unlike min(1.0, x))."""
    return 1.0 if x > 1.0 else x



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
            from ..backends.reference import ReferenceOps
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
        peak = float(self.ops.read(xp.max(state["S"] + state["P"] + state["R"]),
                                   "niche: tumour peak"))
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
        return host_array(xp.concatenate([totals, xp.stack(sums)]))   # the one transfer

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
