"""Launchers of the pointwise kernels: ``cell_kinetics.cu`` and ``substrate_coefficients.cu``."""
from __future__ import annotations

import numpy as np

from ..state import CELL_TYPES


# --------------------------------------------------------------------------- coefficients
def _substrate_params(ops, sub, blood: float):
    cfg = sub.cfg
    uptake = [(CELL_TYPES.index(j), r) for j, r in cfg.uptake.items() if r > 0]
    secretion = [(CELL_TYPES.index(j), r) for j, r in cfg.secretion.items() if r > 0]
    km = -1.0 if cfg.uptake_km is None else cfg.uptake_km
    perm = cfg.permeability if cfg.permeability > 0 else 0.0
    p = [cfg.decay, perm, blood, sub.phi, km, cfg.diffusion, cfg.hindrance, sub.capacity,
         len(uptake), len(secretion)]
    for pairs in (uptake, secretion):
        for j, r in pairs:
            p += [j, r]
    return p


def coefficients(ops, sub, state, c_lin, blood: float):
    """``(D, a, b)`` of one substrate by one kernel pass (D is the scalar D0 without CAF
    hindrance). The output arrays are reused from step to step."""
    xp, n = ops.xp, state.grid.size
    shape = state.grid.shape
    D, a, b = ops.cached(("coefficients", sub.name), lambda: (
        xp.empty(shape, ops.dtype) if sub.cfg.hindrance > 0 else None,
        xp.empty(shape, ops.dtype), xp.empty(shape, ops.dtype)))
    # blood changes with the drug schedule: the parameters travel each call (≈ 30 numbers)
    p = xp.asarray(np.asarray(_substrate_params(ops, sub, blood), dtype=ops.dtype))
    c_lin = xp.ascontiguousarray(c_lin, dtype=ops.dtype)
    ops.lib.launch("substrate_coefficients", n, state.cells, state.vessels, c_lin, p, D, a, b)
    return (D if D is not None else float(sub.cfg.diffusion)), a, b


# --------------------------------------------------------------------------- cell kinetics
def react_cells(ops, state, kinetics, treatment_cfg, tau: float) -> None:
    from .reference import ReferenceOps
    ReferenceOps(ops.xp).react_cells(state, kinetics, treatment_cfg, tau)   # TODO kernel
