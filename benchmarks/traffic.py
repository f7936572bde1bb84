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

Two solvers are modelled: ``pcg`` (:func:`solve_bytes`, the multigrid-preconditioned CG
of ``spatialdtp.numerics.implicit.solver``, one substrate at a time) and ``multigrid``
(:func:`multigrid_bytes`, the batched V-cycles of ``kernels/batched_multigrid.cu``, the
default). :func:`step_bytes` takes either; its inputs are what a step *did* (iterations
per substrate, and for multigrid its residual checks and restarts, all counted by the
solver), so the figure follows the code path rather than a number written down.
"""
from __future__ import annotations

import math

import numpy as np

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


def pressure_bytes(n_voxels: int, itemsize: int, substeps: int) -> int:
    """The tumour's pressure flux over one half step (``transport_pressure_substep``, the
    GPU's path): each sub-step reads S, P, R, F and M (the stroma total F + M is summed in
    the kernel where read) and writes S, P, R, between the planes and three buffers; after
    an odd count they stay in the buffers for the motility that follows (see
    :func:`transport_bytes`: no copy back). On the host the launcher sums F + M once
    (3 planes more) and each sub-step reads that instead of F and M: not modelled here."""
    if substeps <= 0:
        return 0
    return substeps * 8 * n_voxels * itemsize


def transport_bytes(n_voxels: int, itemsize: int, substeps: dict[str, int],
                    chemotaxis: bool, pushed=()) -> int:
    """One call of cell transport (``backends/compiled_transport.move_cells``, the GPU's
    path) after the pressure flux: ``pushed``, the types that flux left in its buffers
    (S, P, R after an odd number of its sub-steps, else none). Per moving cell type
    (``substeps``: its sub-step count), with a single sub-step from its plane a copy of
    that plane into a buffer (read, write; the one sub-step must not write its input; a
    pushed type starts from its buffer, no copy), then per explicit sub-step one
    ``transport_substep`` that reads the plane and the four other cell planes (their
    total, the room, is summed in the kernel) and writes the plane; the drifting TAMs also
    read the chemokine each sub-step, and the sub-step count needs one pass over the
    chemokine (its largest gradient). A pushed type that does not move is copied back to
    its plane (read, write). On the host the launcher sums the others' total first
    (``lib.sums_in_kernel`` false: 9 planes more per moving type, and the kernel reads
    that total instead of the four planes), not modelled here."""
    elems = 0
    for name, m in substeps.items():
        if m <= 0:
            continue
        elems += 2 if m == 1 and name not in pushed else 0
        elems += m * (1 + 4 + 1 + (1 if name == "M" and chemotaxis else 0))
    elems += 2 * sum(1 for name in pushed if substeps.get(name, 0) <= 0)
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


def batch_coefficients_bytes(n_voxels: int, itemsize: int, sub_cfgs) -> int:
    """Every substrate's (D, a, b) in one pass of ``substrate_coefficients`` (the step's
    path, ``ops.coefficients_batch``): the cell planes and the vessel map that any of them
    reads, once for the batch; each Michaelis–Menten substrate's linearisation point; the
    maps among each one's D, a, b written."""
    flags = [coefficient_flags(cfg) for cfg in sub_cfgs]
    cells = set().union(*(f["cells_read"] for f in flags)) if flags else set()
    reads = len(cells) + any(f["vessels"] for f in flags) + sum(f["c_lin"] for f in flags)
    writes = sum(f["D_map"] + f["a_map"] + f["b_map"] for f in flags)
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
def niche_label_bytes(shape, itemsize: int, shifts, remade: bool = True) -> int:
    """The niche labels of ``spatialdtp.run.niche.labels`` on the compiled backends: the
    niche mask (``niche_mask``: read F, M; write a 1-byte mask) and, once there is a
    reference, its comparison with the last step's mask (read both); when the mask is
    unchanged (``remade`` false) the labels are the kept ones and that is all. Otherwise
    "any niche" (1 byte read), and with a niche and a tumour bed (``shifts``: the niche
    distance's shifts per axis; empty without either) the squared distance to the niche
    in voxel² units (one byte where every value within the reach is below 255,
    float32 where its integers are exact, float64 beyond: ``niche.label_distance_dtype``;
    the mask read, the distance written), per axis with a shift
    one ``niche_distance_pass`` (read the distance, its line's neighbours from cache,
    write the next; a float64 distance takes the array twin instead, counted the same
    here), then ``niche_labels`` (read the distance, the niche byte and the stratum byte,
    write the label; without a niche no distance is read)."""
    from spatialdtp.run.niche import label_distance_dtype

    n = math.prod(shape)
    mask = 2 * n * itemsize + n
    if not remade:
        return mask + 2 * n                                             # mask, comparison
    total = mask + n                                                    # any
    if shifts:
        total += 2 * n                                                  # the comparison
    if not shifts:
        return total + 3 * n                                            # niche_labels
    fd = np.dtype(label_distance_dtype(len(shape), max(shifts))).itemsize
    total += n + n * fd                                                 # d2 = where(...)
    total += sum(2 * n * fd for m in shifts if m > 0)                   # one pass per axis
    total += n * fd + 3 * n                                             # niche_labels
    return total


def observables_bytes(n_voxels: int, itemsize: int, n_fields: int, n_drugs: int,
                      shape=None, niche_shifts=(), niche_remade: bool = True) -> int:
    """The end-of-step observables: the niche labels (:func:`niche_label_bytes`, when a
    ``shape`` is given) and one pass of the sums kernel, which reads every field of the
    state once (S, P, R, F, M, oxygen, HGF and each drug for the observables, the others
    for their totals alone: the run's finiteness check reads those, no pass of its own),
    the tumour at treatment start and the 1-byte labels. ``n_drugs`` is kept for the
    callers: every drug is a field."""
    elems = n_fields + 1
    labels = (niche_label_bytes(shape, itemsize, niche_shifts, niche_remade)
              if shape is not None else 0)
    return elems * n_voxels * itemsize + n_voxels + labels


# --------------------------------------------------------------------------- multigrid
def _faces(shape, kinds):
    return interior_faces(shape) + boundary_faces(shape, kinds)


def level0_operator_elems(n_voxels: int, flags: dict) -> int:
    """What a level-0 kernel reads to build the operator of a substrate on the fly: its
    uptake map a (if a map) and its diffusivity map D (if a map; the neighbour's D comes
    from cache); a uniform coefficient is a kernel parameter (nothing read)."""
    return (int(flags["a_map"]) + int(flags["D_map"])) * n_voxels


def coarse_operator_elems(shape, kinds) -> int:
    """A coarse level's operator arrays: the mass and the faces (written by bmg_coarsen)."""
    return math.prod(shape) + _faces(shape, kinds)


def vcycle_batched_elems(shapes, kinds, flags) -> int:
    """One substrate's V(1,1)-cycle in ``kernels/batched_multigrid.cu`` (the GPU's one-pass
    prolongation), per level i with a coarser level (N_i voxels, op_i its operator reads):

    * level 0: ``bmg_smooth`` (read x, b, op; write y) 3N + op,
      ``bmg_residual_restrict`` (read y, b, op; write the coarse b) 2N + op + N₁,
      ``bmg_prolong_smooth`` (read y, the coarse x, b, op; write x) 3N + N₁ + op;
    * a coarser level: the sweep from zero (read b, op; write y) 2N + op, then the same
      restriction and prolongation (2N + op + N_{i+1}, 3N + N_{i+1} + op);
    * the coarsest level (m cells): the dense product (read m² + m, write m).
    """
    total = 0
    for i, shape in enumerate(shapes):
        n = math.prod(shape)
        if i == len(shapes) - 1:
            total += n * n + 2 * n
            break
        nc = math.prod(shapes[i + 1])
        op = level0_operator_elems(n, flags) if i == 0 else coarse_operator_elems(shape, kinds)
        pre = 3 * n if i == 0 else 2 * n
        total += (pre + op) + (2 * n + op + nc) + (3 * n + nc + op)
    return total


def multigrid_setup_elems(shapes, kinds, flags) -> int:
    """Per substrate and prepared batch: ``bmg_coarsen`` for each level with a coarser one
    (read the level's operator, write the coarse mass and faces); the coarsest inverse
    (write m², from a stencil of the identity: m² more) is negligible and counted as 2m²."""
    total = 0
    for i, shape in enumerate(shapes[:-1]):
        n = math.prod(shape)
        op = level0_operator_elems(n, flags) if i == 0 else coarse_operator_elems(shape, kinds)
        total += op + coarse_operator_elems(shapes[i + 1], kinds)
    m = math.prod(shapes[-1])
    return total + 2 * m * m


def multigrid_bytes(shapes, substrates: dict, cycles: dict, checks: int, restarts: dict,
                    itemsize: int, *, predictor: bool = True, solves: int = 1,
                    checked: dict | None = None) -> int:
    """The batched multigrid solve of one step (every substrate of ``substrates``: name ->
    (SubstrateConfig, boundary kinds)), ``cycles``: V-cycles per substrate, ``checks``:
    residual checks (``bmg_residual_norms``: read x, b, op of each substrate still
    solving; ``checked``: per substrate the checks it was in, default all ``checks``),
    ``restarts``: per substrate (``bmg_restart``: read prev, write x). Per substrate and
    solve: the set-up (:func:`multigrid_setup_elems`), ``bmg_step_rhs`` (read c, b if a
    map, op; write the right-hand side) and, with ``predictor``, ``bmg_predict`` (read x
    and prev, write both). TR-BDF2 has ``solves = 2`` (one set-up: the same matrix)."""
    n = math.prod(shapes[0])
    elems = 0
    for name, (cfg, kinds) in substrates.items():
        flags = coefficient_flags(cfg)
        op0 = level0_operator_elems(n, flags)
        elems += multigrid_setup_elems(shapes, kinds, flags)
        elems += solves * ((2 + int(flags["b_map"])) * n + op0)
        if predictor:
            elems += 4 * n
        elems += cycles.get(name, 0) * vcycle_batched_elems(shapes, kinds, flags)
        elems += (checks if checked is None else checked.get(name, 0)) * (2 * n + op0)
        elems += restarts.get(name, 0) * 2 * n
    return elems * itemsize


def exposure_bytes(n_voxels: int, itemsize: int) -> int:
    """A drug's exposure ``auc += Δt/2 (c_n + c_{n+1})`` (read c_n, c_{n+1}, auc; write auc)."""
    return 4 * n_voxels * itemsize


# --------------------------------------------------------------------------- a whole step
def step_bytes(*, n_voxels, itemsize, n_substrates, n_fields, n_drugs, substeps,
               chemotaxis, substrates, solver_shapes, iterations, picard=0, theta=1.0,
               solves=1, solver="pcg", checks=0, restarts=None, predictor=True,
               pressure_substeps=0, shape=None, niche_shifts=(), niche_remade=True,
               checked=None):
    """Bytes of one coupled step, by phase. ``substrates``: name -> (SubstrateConfig,
    boundary kinds, is_drug); ``iterations``: name -> PCG iterations (``pcg``) or V-cycles
    (``multigrid``) of that step; ``checks``, ``restarts``, ``predictor``: what the
    multigrid solve did (see :func:`multigrid_bytes`); ``pressure_substeps``: the tumour's
    pressure sub-steps per half step; ``shape`` and ``niche_shifts``: the grid and the
    shifts per axis of the niche distance (the niche labels' traffic; without ``shape``
    they are left out); ``niche_remade``: whether the step made its niche labels anew (they
    are kept while the niche voxels stay the same)."""
    phases = {
        "reactions": 2 * reaction_bytes(n_voxels, itemsize, n_substrates),
        "transport": 2 * (transport_bytes(n_voxels, itemsize, substeps, chemotaxis,
                                          CELL_TYPES[:3] if pressure_substeps % 2 else ())
                          + pressure_bytes(n_voxels, itemsize, pressure_substeps)),
    }
    passes = picard + 1
    phases["substrates:coefficients"] = passes * batch_coefficients_bytes(
        n_voxels, itemsize, [cfg for cfg, _kinds, _drug in substrates.values()])
    if solver == "multigrid":
        batch = {name: (cfg, kinds) for name, (cfg, kinds, _drug) in substrates.items()}
        phases["substrates:solve"] = passes * multigrid_bytes(
            solver_shapes, batch, iterations, checks, restarts or {}, itemsize,
            predictor=predictor, solves=solves, checked=checked)
        phases["substrates:exposure"] = sum(exposure_bytes(n_voxels, itemsize)
                                            for _c, _k, drug in substrates.values() if drug)
    else:
        for name, (cfg, kinds, is_drug) in substrates.items():
            flags = coefficient_flags(cfg)
            phases[f"substrate:{name}"] = (
                passes * solve_bytes(solver_shapes, kinds, flags, iterations.get(name, 0),
                                       itemsize, theta, solves)
                + substrate_update_bytes(n_voxels, itemsize, is_drug))
    phases["observables"] = observables_bytes(n_voxels, itemsize, n_fields, n_drugs, shape,
                                              niche_shifts, niche_remade)
    return phases
