"""The bytes each operation must move: a minimum-traffic model of one coupled step.

The roofline fraction of an operation is its *effective bandwidth* (the bytes below over
the measured time) divided by the copy bandwidth of the same device, measured in the same
run. The bytes are a lower bound for the algorithm spatialdtp runs, not for the physics:

* every array operand of an operation is read once and every result written once
  (neighbours of a stencil come from cache; a copy moves ``2 × nbytes``, the same
  convention: a write-allocate read is not counted);
* operations that a fused implementation would merge are counted merged (e.g. the PCG
  update ``x += αp, r −= αq`` reads x, p, r, q and writes x, r: six planes);
* a coefficient that is the same everywhere (a scalar) costs nothing; a boolean mask is one
  byte a voxel; everything else is one element of the field's dtype.

The counts are in *elements* (of the field dtype) plus *bytes* for boolean masks; the
functions return bytes. Each count below is written out in ``benchmarks/README.md``
("Bytes model"), so that a reader can recompute every roofline fraction from the recorded
bytes and times.
"""
from __future__ import annotations

import math

CELL_TYPES = ("S", "P", "R", "F", "M")
JACOBI_SWEEPS = 2   # pre- and post-smoothing sweeps of spatialdtp.numerics.implicit.multigrid's V-cycle


# --------------------------------------------------------------------------- grid helpers
def interior_faces(shape) -> int:
    """Interior faces of a grid (what the face transmissibility arrays hold)."""
    size = math.prod(shape)
    return sum(size // n * (n - 1) for n in shape if n >= 2)


def boundary_faces(shape, kinds) -> int:
    """Boundary faces that carry a transmissibility (fixed faces; a periodic axis's wrap)."""
    size, total = math.prod(shape), 0
    for n, (lo, hi) in zip(shape, kinds):
        plane = size // n
        if lo == "periodic":
            total += plane
            continue
        total += plane * (lo == "fixed") + plane * (hi == "fixed")
    return total


# --------------------------------------------------------------------------- pointwise ops
def reaction_bytes(n_voxels: int, itemsize: int, n_substrates: int) -> int:
    """One fused cell-kinetics pass: read every substrate (the environment and drug effects
    read oxygen, glucose, HGF, chemokine and each drug), the 5 cell planes and the vessel
    map; write the 5 cell planes."""
    return (n_substrates + 5 + 1 + 5) * n_voxels * itemsize


def transport_bytes(n_voxels: int, itemsize: int, substeps: dict[str, int],
                    chemotaxis: bool) -> int:
    """One call of cell transport: each moving cell type is one read and one write of its
    plane per explicit sub-step; the drifting TAMs also read the chemokine each sub-step,
    and the sub-step count needs one pass over the chemokine (its largest gradient)."""
    elems = 0
    for name, m in substeps.items():
        elems += m * (2 + (1 if name == "M" and chemotaxis else 0))
    if chemotaxis:
        elems += 1
    return elems * n_voxels * itemsize


def coefficient_flags(sub_cfg) -> dict:
    """Which of D, a, b of a substrate are maps (vary in space) and what they read."""
    uptake = {j for j, r in sub_cfg.uptake.items() if r > 0}
    secretion = {j for j, r in sub_cfg.secretion.items() if r > 0}
    cells = set(uptake) | set(secretion)
    if sub_cfg.hindrance > 0:
        cells.add("F")
    return {
        "cells_read": sorted(cells, key=CELL_TYPES.index),
        "vessels": sub_cfg.permeability > 0,
        "c_lin": bool(uptake) and sub_cfg.uptake_km is not None,
        "D_map": sub_cfg.hindrance > 0,
        "a_map": bool(uptake) or sub_cfg.permeability > 0,
        "b_map": bool(secretion) or sub_cfg.permeability > 0,
    }


def coefficients_bytes(n_voxels: int, itemsize: int, sub_cfg) -> int:
    """One substrate's (D, a, b): read the cell planes it depends on, the vessel map and the
    linearisation point (Michaelis–Menten uptake); write the maps among D, a, b."""
    f = coefficient_flags(sub_cfg)
    reads = len(f["cells_read"]) + f["vessels"] + f["c_lin"]
    writes = f["D_map"] + f["a_map"] + f["b_map"]
    return (reads + writes) * n_voxels * itemsize


# --------------------------------------------------------------------------- the solver
def stencil_elems(shape, kinds, residual: bool = False) -> int:
    """``out = (mass + K) x``: read x, the mass and the face arrays, write out
    (the residual form ``rhs − (mass + K) x`` also reads rhs)."""
    n = math.prod(shape)
    return (3 + residual) * n + interior_faces(shape) + boundary_faces(shape, kinds)


def jacobi_elems(shape, kinds) -> int:
    """One damped-Jacobi sweep: read x, b, mass, ω/diag and the faces; write x."""
    n = math.prod(shape)
    return 5 * n + interior_faces(shape) + boundary_faces(shape, kinds)


def vcycle_elems(shapes, kinds) -> int:
    """One V-cycle from the finest of ``shapes`` (the solver's level shapes, fine first):
    per level ``x = (ω/diag)·b`` (3 planes), JACOBI_SWEEPS − 1 sweeps, the residual, the
    restriction (read the fine residual, write the coarse right-hand side), the coarse
    cycle, the prolongation (read x and the coarse x, write x) and JACOBI_SWEEPS sweeps;
    the coarsest level multiplies by its dense inverse (m² + 2m elements)."""
    total = 0
    for i, shape in enumerate(shapes):
        n = math.prod(shape)
        if i == len(shapes) - 1:
            total += n * n + 2 * n
            break
        nc = math.prod(shapes[i + 1])
        sweep = jacobi_elems(shape, kinds)
        total += 3 * n + (2 * JACOBI_SWEEPS - 1) * sweep + stencil_elems(shape, kinds, True)
        total += (n + nc) + (2 * n + nc)
    return total


def pcg_iteration_elems(shape, kinds) -> int:
    """One PCG iteration without its V-cycle: q = A p (a stencil), p·q (2 planes),
    x += αp and r −= αq (6), r·r (1), q·z and r·z (4), p = βp + z (3)."""
    return stencil_elems(shape, kinds) + 16 * math.prod(shape)


def solve_setup_elems(shapes, kinds, flags: dict, theta: float = 1.0,
                      solving: bool = True) -> int:
    """The work of one implicit solve besides its iterations (level 0 = fine grid):

    fine faces from D (read D if a map, write the faces), L(c) in residual form (read c,
    a, b, faces; write out), r = dt·L(c) (2), the right-hand side (read b, c, r if θ ≠ 1;
    write), two norms (2 passes each), δ = 0 (1), scaling the faces by θ·dt (read and
    write), the mass 1 + θ·dt·a (read a, write), r /= ‖r‖ (2), per level the Jacobi
    weights (read mass and faces, write ω/diag) and the coarsening to the next level (read
    the fine mass and faces, write the coarse ones), and c_new = max(c + ‖r‖·δ, 0) (3).
    A solve whose initial residual already meets the tolerance (``solving`` False) stops
    before the scaling.
    """
    fine = shapes[0]
    n = math.prod(fine)
    fb = interior_faces(fine) + boundary_faces(fine, kinds)
    a, b = int(flags["a_map"]), int(flags["b_map"])
    elems = (n if flags["D_map"] else 0) + fb                      # faces from D
    elems += (2 + a + b) * n + fb + 2 * n                          # L(c), r = dt·L(c)
    elems += (2 + b + (theta != 1.0)) * n                          # rhs
    elems += 4 * n + n                                             # two norms, δ = 0
    if not solving:
        return elems + 3 * n                                       # c_new
    elems += 2 * fb + (1 + a) * n + 2 * n                          # scale, mass, r /= ‖r‖
    for i, shape in enumerate(shapes):
        m = math.prod(shape)
        f = interior_faces(shape) + boundary_faces(shape, kinds)
        elems += 2 * m + f                                         # Jacobi weights
        if i + 1 < len(shapes):
            c = shapes[i + 1]
            elems += m + f + math.prod(c) + interior_faces(c) + boundary_faces(c, kinds)
    elems += 3 * n                                                 # c_new
    return elems


def solve_bytes(shapes, kinds, flags, iterations: int, itemsize: int,
                theta: float = 1.0, solves: int = 1) -> int:
    """``solves`` implicit solves (TR-BDF2 makes two a step) of ``iterations`` PCG
    iterations in all, each iteration with one V-cycle (the initial preconditioning counts
    for the last iteration, which stops before its own)."""
    fine = shapes[0]
    per_it = pcg_iteration_elems(fine, kinds) + vcycle_elems(shapes, kinds)
    setup = solves * solve_setup_elems(shapes, kinds, flags, theta, solving=iterations > 0)
    return (setup + iterations * per_it) * itemsize


def substrate_update_bytes(n_voxels: int, itemsize: int, is_drug: bool) -> int:
    """Storing c_new into the state (read, write) and, for a drug, its exposure
    accumulator ``auc += dt/2 (c + c_new)`` (read c, c_new, auc; write auc)."""
    return (2 + (4 if is_drug else 0)) * n_voxels * itemsize


# --------------------------------------------------------------------------- observables
def observables_bytes(n_voxels: int, itemsize: int, n_fields: int, n_drugs: int) -> int:
    """The end-of-step observables: one pass over S, P, R, F, M for the niche mask (1 byte
    a voxel written) and the tumour peak; the dilation of the mask (read and write 1 byte
    a voxel); one pass for the sums (5 cell planes, oxygen, HGF, each drug and the 1-byte
    "near" mask); the finiteness check reads every field once."""
    elems = 5 + (5 + 2 + n_drugs) + n_fields
    return elems * n_voxels * itemsize + 4 * n_voxels


# --------------------------------------------------------------------------- a whole step
def step_bytes(*, n_voxels, itemsize, n_substrates, n_fields, n_drugs, substeps,
               chemotaxis, substrates, solver_shapes, iterations, picard=0, theta=1.0,
               solves=1):
    """Bytes of one coupled step, by phase. ``substrates``: name -> (SubstrateConfig,
    boundary kinds, is_drug); ``iterations``: name -> PCG iterations of that step."""
    phases = {
        "reactions": 2 * reaction_bytes(n_voxels, itemsize, n_substrates),
        "transport": 2 * transport_bytes(n_voxels, itemsize, substeps, chemotaxis),
    }
    for name, (cfg, kinds, is_drug) in substrates.items():
        flags = coefficient_flags(cfg)
        passes = picard + 1
        phases[f"substrate:{name}"] = (
            passes * coefficients_bytes(n_voxels, itemsize, cfg)
            + passes * solve_bytes(solver_shapes, kinds, flags, iterations.get(name, 0),
                                   itemsize, theta, solves)
            + substrate_update_bytes(n_voxels, itemsize, is_drug))
    phases["observables"] = observables_bytes(n_voxels, itemsize, n_fields, n_drugs)
    return phases
