"""Launchers of the pointwise kernels: ``cell_kinetics.cu`` and ``substrate_coefficients.cu``."""
from __future__ import annotations

import numpy as np

from ..config import CELL_TYPES
from ..model.treatment import EC50_FLOOR


# --------------------------------------------------------------------------- coefficients
_SC_PAIRS = 10                      # SC_PAIRS of kernels/substrate_coefficients.cu
_SC_FLAGS = 10 + 2 * _SC_PAIRS      # SC_FLAGS: active, write D, write a, write b
_SC_STRIDE = _SC_FLAGS + 4
_VESSELS_BIT = 1 << len(CELL_TYPES)


def _substrate_params(sub, blood: float, writes) -> tuple[list, int]:
    """One substrate's row of the kernel's ``p`` (padded to SC_STRIDE) and the bits of the
    planes it reads (cell types, vessels); ``writes``: (D, a, b) to write, or None for a
    substrate left out of the batch."""
    if writes is None:
        return [0.0] * _SC_STRIDE, 0
    cfg = sub.cfg
    uptake = [(CELL_TYPES.index(j), r) for j, r in cfg.uptake.items() if r > 0]
    secretion = [(CELL_TYPES.index(j), r) for j, r in cfg.secretion.items() if r > 0]
    km = -1.0 if cfg.uptake_km is None else cfg.uptake_km
    perm = sub.permeability if cfg.permeability > 0 else 0.0
    # the constants of the free-level equation (divided by the binding retardation R)
    p = [sub.decay, perm, blood, sub.phi, km, sub.diffusion, cfg.hindrance, sub.capacity,
         len(uptake), len(secretion)]
    for pairs in (uptake, secretion):
        for j, r in pairs:
            p += [j, r]
    p += [0.0] * (_SC_FLAGS - len(p))
    p += [1.0, *(float(bool(w)) for w in writes)]
    reads = 0
    for j, _r in uptake + secretion:
        reads |= 1 << j
    if writes[0]:
        reads |= 1 << CELL_TYPES.index("F")
    if perm > 0:
        reads |= _VESSELS_BIT
    return p, reads


def _launch(ops, subs, state, c_lin, levels, writes, D, a, b) -> None:
    rows, reads = [], 0
    for sub, level, w in zip(subs, levels, writes):
        row, bits = _substrate_params(sub, level, w)
        rows.append(row)
        reads |= bits
    # blood changes with the drug schedule: the parameters travel each call (one array)
    p = ops.xp.asarray(np.asarray(rows, dtype=ops.dtype).reshape(-1))
    ops.lib.launch("substrate_coefficients", state.grid.size, len(subs), state.cells,
                   state.vessels, reads, c_lin, p, D, a, b)


def coefficients(ops, sub, state, c_lin, blood: float, out=None):
    """``(D, a, b)`` of one substrate by one kernel pass, all three maps written (D is the
    scalar D0 without CAF hindrance). The output arrays are reused from step to step, or
    ``out`` (D or None, a, b: C-contiguous arrays of the grid)."""
    xp = ops.xp
    shape = state.grid.shape
    if out is not None:
        D, a, b = out
        D = D if sub.cfg.hindrance > 0 else None
    else:
        D, a, b = ops.cached(("coefficients", sub.name, shape, sub.cfg.hindrance > 0),
                             lambda: (xp.empty(shape, ops.dtype) if sub.cfg.hindrance > 0
                                      else None,
                                      xp.empty(shape, ops.dtype), xp.empty(shape, ops.dtype)))
    c_lin = xp.ascontiguousarray(c_lin, dtype=ops.dtype)
    _launch(ops, [sub], state, c_lin, [blood], [(D is not None, True, True)], D, a, b)
    return (D if D is not None else float(sub.diffusion)), a, b


def coefficients_batch(ops, subs, state, c_lin, levels, blocks, active):
    """Every active substrate's ``(D, a, b)`` in one kernel pass (the cell planes and the
    vessel map read once for all): the maps (:meth:`Substrate.varying`) written into its
    rows of ``blocks`` (D, a, b: (B, *grid) arrays), a uniform coefficient None (the caller
    puts its number); None for a substrate not active."""
    writes = [sub.varying() if on else None for sub, on in zip(subs, active)]
    c_lin = ops.xp.ascontiguousarray(c_lin, dtype=ops.dtype)
    _launch(ops, subs, state, c_lin, levels, writes, *blocks)
    return [None if w is None else tuple(blk[s] if m else None for blk, m in zip(blocks, w))
            for s, w in enumerate(writes)]


# --------------------------------------------------------------------------- cell kinetics
#: class codes of kernels/cell_kinetics.cu (CK_TARGETED ... CK_FAO)
_DRUG_CLASS_CODES = {"targeted": 0, "epigenetic": 1, "met": 2, "oxphos": 3, "gpx4": 4, "fao": 5}


def _kinetics_params(state, kinetics, treatment_cfg):
    """The ``p`` (reals) and ``q`` (indices) lists of ``cell_kinetics``, in the order of the
    kernel's ``CkParam``/``CkIndex`` enums. Constants that the reference combines in Python
    (double) before they meet an array are combined here too, so that rounding matches."""
    from ..config import COMBINATION_RULES
    from ..config.checks import choice

    choice("treatment.combination", treatment_cfg.combination, COMBINATION_RULES)
    c = kinetics.cfg
    e, sw, m = c.environment, c.switching, c.macrophage
    p = [e.o2_proliferation_threshold,
         e.o2_proliferation_saturation - e.o2_proliferation_threshold,
         e.glucose_k, e.o2_hypoxic, e.o2_hypoxic - e.o2_hypoxic_full,
         e.necrosis_rate, e.o2_necrosis_onset, e.o2_necrosis_onset - e.o2_necrosis_max,
         e.starvation_rate, e.glucose_starvation, sw.hgf_k, m.recruitment, m.chemokine_k,
         kinetics.crowding_capacity,
         c.sensitive.growth, c.sensitive.kill, c.sensitive.death,
         c.persister.growth, c.persister.kill, c.persister.death,
         c.sensitive.growth * (1.0 - c.resistant.fitness_cost), c.resistant.kill,
         c.resistant.death,
         c.fibroblast.growth, c.fibroblast.death,
         c.fibroblast.carrying_density * kinetics.capacity, c.macrophage.death,
         sw.alpha0, sw.alpha_drug, sw.beta_hgf, sw.beta_hypoxia, sw.rho0, sw.mu, sw.theta,
         sw.theta_sensitive, m.baseline_recruitment]
    index = state.layout.index
    drugs = list(treatment_cfg.drugs.items())
    q = [index["oxygen"], index["glucose"], index["hgf"], index["chemokine"],
         *(index[name] for name in CELL_TYPES),
         len(drugs), int(e.glucose_k > 0), int(e.glucose_starvation > 0),
         int(bool(kinetics.norton_simon)), int(treatment_cfg.combination == "hsa")]
    for name, d in drugs:
        if name not in state.layout.drugs:
            raise KeyError(f"conc has no concentration for drug {name!r}; "
                           f"drug_effects needs one for each of {list(treatment_cfg.drugs)}")
        if d.drug_class not in _DRUG_CLASS_CODES:
            raise ValueError(f"treatment.drugs.{name}.drug_class={d.drug_class!r}: allowed "
                             f"values are {list(_DRUG_CLASS_CODES)}")
        q += [index[name], _DRUG_CLASS_CODES[d.drug_class]]
        p += [max(d.ec50, EC50_FLOOR), d.hill, d.emax, d.kill_rate,
              1.0e30 ** (1.0 / max(d.hill, 1.0))]
    return p, q


def react_cells(ops, state, kinetics, treatment_cfg, tau: float) -> None:
    """Advance the five cell densities of ``state`` by ``tau`` minutes in place, substrates
    frozen: one pass of ``cell_kinetics`` (reference: :func:`spatialdtp.numerics.cell_kinetics.react_state`).

    The packed parameters depend on the kinetics, the treatment config and the field layout
    only, not on τ: built once per run. The cache entry keeps those objects alive, so that
    their ids cannot be reused by other objects while it exists.
    """
    xp = ops.xp

    def build():
        p, q = _kinetics_params(state, kinetics, treatment_cfg)
        # the CK_* list travels by value (the kernel's CkParams, whose length the kernel
        # source states), the drugs' in an array
        count = next(prm.pointee for prm in ops.lib.signatures["cell_kinetics"]
                     if prm.kind == "reals")
        if len(p) != count + 5 * len(treatment_cfg.drugs):
            raise RuntimeError(f"cell_kinetics: {len(p)} parameters packed for CkParams of "
                               f"{count} and {len(treatment_cfg.drugs)} drugs of 5: the "
                               "packing and kernels/cell_kinetics.cu disagree")
        fixed = np.asarray(p[:count], dtype=ops.dtype)
        drugs = (xp.asarray(np.asarray(p[count:], dtype=ops.dtype))
                 if len(p) > count else None)
        return (kinetics, treatment_cfg, state.layout, fixed, drugs,
                xp.asarray(np.asarray(q, dtype=np.int64)))
    key = ("cell_kinetics", id(kinetics), id(treatment_cfg), id(state.layout))
    fixed, drugs, q = ops.cached(key, build)[3:]
    vessels = xp.ascontiguousarray(kinetics.vessels, dtype=ops.dtype)
    ops.lib.launch("cell_kinetics", state.grid.size, state.data, vessels, fixed, drugs, q, tau)
