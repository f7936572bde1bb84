"""Per-step observables of a run: what every step reports, reduced on the device.

:class:`Observer` reduces the state to a few scalars every step: cell totals, tumour
burden, oxygenation, HGF, drug levels and the niche contrast. The reductions run on the
state's device (NumPy or CuPy, the ``xp`` namespace); the scalars are stacked into one
small vector there and cross to the host in a single transfer per step.

The niche contrast is the measure of :mod:`.niche`: persisters per initial tumour cell
within ``run.niche_distance`` of a CAF/TAM niche voxel over those beyond
``run.niche_far_distance``, a Mantel–Haenszel ratio across strata of distance to the
tumour edge. It needs the tumour at treatment start (the reference), which the observer
captures at the first observation at or after ``treatment_start`` and which the run file
keeps (``/static/tumour_start`` and the checkpoint). Beside the contrast every step records
the number of niche voxels and of near and far tumour-bed voxels, from which
:func:`.niche.reason_of` tells why a contrast is NaN.

The end-of-run summary is :mod:`.summary`.

Units: cells (totals), cells/voxel (densities), mmHg (oxygen), ng/mL (HGF), µM (drugs).
The per-step sums are the NumPy twin of ``kernels/observables.cu``
(:meth:`Observer.sums_reference`).
"""
from __future__ import annotations

import math

import numpy as np

from ..backends import host_array
from ..config import CELL_TYPES, RunConfig
from ..model.grid import Grid
from ..model.state import FieldLayout
from . import niche


def _at_most_one(x: float) -> float:
    """Clip rounding overshoot above 1 (NaN stays NaN, unlike min(1.0, x))."""
    return 1.0 if x > 1.0 else x


#: the sums before the niche labels' (see kernels/observables.cu)
FIXED_SUMS = 9
NICHE_NAMES = ("niche_contrast", "niche_voxels", "niche_near_voxels", "niche_far_voxels")


class Observer:
    """Scalars of one state, reduced on the device, one host transfer per call.

    ``names`` fixes the order: S, P, R, F, M totals (cells); ``burden`` = S+P+R;
    ``resistant_fraction`` = R/burden; ``persister_fraction`` = P/burden; ``mean_oxygen``
    (mmHg, over all voxels); ``hypoxic_fraction`` (share of tumour cells S+P+R in voxels
    with oxygen < hypoxic_threshold); ``mean_hgf`` (free HGF, ng/mL); ``niche_contrast``
    and its counts ``niche_voxels``, ``niche_near_voxels``, ``niche_far_voxels`` (see the
    module docstring; the counts are NaN before the reference exists); then per drug
    ``plasma_<drug>`` (µM), ``on_<drug>`` (1/0) and ``mean_<drug>`` (mean tissue
    concentration, µM). Fractions of an empty tumour are NaN.
    """

    def __init__(self, grid: Grid, layout: FieldLayout, run_cfg: RunConfig, capacity: float,
                 drugs: tuple[str, ...] = (), xp=np, ops=None, treatment_start: float = 0.0):
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
        self.geometry = niche.NicheGeometry.of(run_cfg, capacity, grid.dx)
        self.treatment_start = float(treatment_start)
        self.reference: niche.NicheReference | None = None
        #: the fields whose plain totals follow the drugs' in the sums: every field of the
        #: state not summed otherwise, so that one pass gives every field's total and the
        #: run's finiteness check needs no pass of its own (:attr:`field_sums`)
        summed = set(CELL_TYPES) | {"oxygen", "hgf"} | set(drugs)
        self.also_totalled = tuple(f for f in layout.names if f not in summed)
        #: Σ of every field of the state at the last :meth:`compute` (float64), by name
        self.field_sums: dict[str, float] = {}
        self._kept_labels = None   # (reference, niche mask, labels) of the last labels made
        self.label_updates = 0     # how often they were made (counted for the benchmarks)
        self.labels_made_last = True   # whether the last observation made them anew
        self.names = ("S", "P", "R", "F", "M", "burden", "resistant_fraction",
                      "persister_fraction", "mean_oxygen", "hypoxic_fraction", "mean_hgf"
                      ) + NICHE_NAMES + tuple(f"{k}_{d}" for d in drugs
                                              for k in ("plasma", "on", "mean"))
        drug_units = {d: layout.units.get(d, "µM") for d in drugs}
        self.units = {**{c: "cells" for c in ("S", "P", "R", "F", "M", "burden")},
                      "resistant_fraction": "1", "persister_fraction": "1",
                      "mean_oxygen": layout.units.get("oxygen", "mmHg"),
                      "hypoxic_fraction": "1",
                      "mean_hgf": layout.units.get("hgf", "ng/mL"), "niche_contrast": "1",
                      "niche_voxels": "voxels", "niche_near_voxels": "voxels",
                      "niche_far_voxels": "voxels"}
        for d in drugs:
            self.units.update({f"plasma_{d}": drug_units[d], f"on_{d}": "1",
                               f"mean_{d}": drug_units[d]})

    # -- the reference tumour of the niche contrast
    def set_reference(self, T0) -> None:
        """Use ``T0`` (S + P + R at treatment start, cells/voxel, the grid's shape) as the
        niche contrast's reference (a resumed run passes the stored one)."""
        T0 = self.xp.asarray(T0)
        if T0.shape != self.grid.shape:
            raise ValueError(f"T0 has shape {T0.shape}; the grid is {self.grid.shape}")
        self.reference = niche.reference_of(T0, self.geometry, self.xp)

    def capture_reference(self, state) -> None:
        self.set_reference(state["S"] + state["P"] + state["R"])

    def niche_labels(self, state):
        """Per-voxel labels of the niche contrast (:func:`.niche.labels`), on the device.

        The labels are a function of the niche voxels and the reference alone, and the
        niche voxels rarely change from one step to the next (quiescent CAFs: in 21 of the
        first 600 steps of the default job, by one voxel each), while the distance to them
        is most of what the observables cost. So the labels are kept and made again only
        when the niche voxels or the reference changed: the same labels, bit for bit, for
        the price of the mask and one comparison (the one sync the distance's own
        any-niche test made before)."""
        xp, ref = self.xp, self.reference
        mask = self.ops.niche_mask(state["F"], state["M"], self.geometry.threshold)
        self.labels_made_last = True
        if ref is None or ref.n_strata == 0:   # no distance needed: nothing worth keeping
            return niche.labels_of_mask(mask, ref, self.geometry, xp, self.ops)
        kept = self._kept_labels
        if kept is not None and kept[0] is ref and bool(xp.array_equal(kept[1], mask)):
            self.labels_made_last = False
            return kept[2]
        out = niche.labels_of_mask(mask, ref, self.geometry, xp, self.ops)
        self._kept_labels = (ref, mask, out)
        self.label_updates += 1
        return out

    # -- the sums
    def sums_reference(self, state, labels, T0, n_labels: int):
        """The float64 sums, as array expressions (the reference of
        ``kernels/observables.cu``): totals of S, P, R, F, M; Σ oxygen; tumour cells in
        voxels below the hypoxic threshold; Σ HGF; the number of niche voxels; for each of
        the ``n_labels`` niche labels its voxel count, Σ P and Σ T0; Σ of each drug; Σ of
        each field of :attr:`also_totalled`."""
        xp, f64 = self.xp, np.float64
        cells = state.cells.reshape(len(self.layout.cells), -1)
        totals = xp.sum(cells, axis=1, dtype=f64)            # S, P, R, F, M
        tumour_cells = state["S"] + state["P"] + state["R"]
        oxygen = state["oxygen"]
        table, n_niche = niche.label_sums(labels, state["P"], T0, n_labels, xp)
        sums = [
            xp.sum(oxygen, dtype=f64),
            xp.sum(xp.where(oxygen < self.run_cfg.hypoxic_threshold, tumour_cells, 0), dtype=f64),
            xp.sum(state["hgf"], dtype=f64),
            n_niche,
        ]
        plain = [xp.sum(state[f], dtype=f64) for f in self.drugs + self.also_totalled]
        parts = [totals, xp.stack(sums), table.T.reshape(-1)]
        if plain:
            parts.append(xp.stack(plain))
        return host_array(xp.concatenate(parts))   # the one transfer

    def compute(self, state, plasma: dict[str, float], on: dict[str, bool],
                t: float | None = None) -> dict[str, float]:
        """The observables of ``state`` at time ``t`` (minutes): the niche reference is
        taken at the first call with t >= treatment_start (or at once when t is None)."""
        for d in self.drugs:
            for arg, given in (("plasma", plasma), ("on", on)):
                if d not in given:
                    raise ValueError(f"{arg}={given!r}: needs an entry for drug {d!r}")
        if self.reference is None and (t is None or t >= self.treatment_start - 1e-9):
            self.capture_reference(state)
        ref = self.reference
        n_strata = ref.n_strata if ref is not None else 0
        labels = self.niche_labels(state)
        T0 = ref.T0 if ref is not None else None
        host = self.ops.observable_sums(self, state, labels, T0, 2 * n_strata)

        S, P_, R, F, M = (float(v) for v in host[:5])
        o2, hyp, hgf, n_niche = (float(v) for v in host[5:FIXED_SUMS])
        n_label_sums = 3 * 2 * n_strata
        table = np.asarray(host[FIXED_SUMS:FIXED_SUMS + n_label_sums]).reshape(-1, 3).T
        plain = host[FIXED_SUMS + n_label_sums:]
        drug_sums = plain[:len(self.drugs)]
        self.field_sums = {**dict(zip(CELL_TYPES, (S, P_, R, F, M))),
                           "oxygen": o2, "hgf": hgf,
                           **{f: float(v) for f, v in zip(self.drugs + self.also_totalled,
                                                          plain)}}
        size = float(self.grid.size)
        burden = S + P_ + R

        def ratio(a, b):
            return a / b if b > 0 else math.nan

        contrast = niche.contrast_from_sums(table, n_niche, n_strata, self.geometry,
                                            started=ref is not None)
        counted = ref is not None
        out = {"S": S, "P": P_, "R": R, "F": F, "M": M, "burden": burden,
               "resistant_fraction": ratio(R, burden), "persister_fraction": ratio(P_, burden),
               "mean_oxygen": o2 / size,
               # S+P+R summed in the field dtype can exceed the float64 burden by rounding
               "hypoxic_fraction": _at_most_one(ratio(hyp, burden)),
               "mean_hgf": hgf / size, "niche_contrast": contrast.value,
               "niche_voxels": n_niche,
               "niche_near_voxels": float(contrast.near_voxels) if counted else math.nan,
               "niche_far_voxels": float(contrast.far_voxels) if counted else math.nan}
        for d, s in zip(self.drugs, drug_sums):
            out[f"plasma_{d}"] = float(plasma[d])
            out[f"on_{d}"] = 1.0 if on[d] else 0.0
            out[f"mean_{d}"] = float(s) / size
        return {k: out[k] for k in self.names}
