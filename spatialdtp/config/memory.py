"""How much memory a run needs, as named contributions counted from the code.

Every contribution below counts the arrays one part of the code holds, per voxel, in the
run's precision (``s`` bytes: 4 for float32, 8 for float64) unless it says otherwise.
``G`` is the number of voxels, ``B`` the substrates of the step (the base substrates and
one per drug: every drug is a substrate), ``D`` the drugs, ``F = B + 5 + D`` the state's
fields (substrates, the five cell types, one exposure map per drug), ``d`` the number of
axes. The multigrid's coarse levels hold ``Gc`` voxels in all: the levels of
:func:`~spatialdtp.numerics.implicit.batched_multigrid.hierarchy`, whose sizes sum to the
geometric series ``G/(1 − 2^−d)`` (``Gc ≈ G/3`` in 2D, ``G/7`` in 3D).

Two kinds of contribution add up to the estimate:

* arrays held for the whole run (the state, the solver's work arrays, the write-behind
  frame copy, ...): every one the run writes is counted (an array allocated but never
  written is never resident: the substrate step's ``aux`` under backward Euler, the PCG
  solver's arrays in a multigrid run that never falls back);
* temporaries of one phase of the step (the reaction step's array expressions, the
  substrate step's right-hand side, the niche labels): only the phase whose temporaries are
  largest is counted (the others are freed before it starts), under its own name.

What was checked: ``tests/test_memory_estimate.py`` measures a run's peak resident memory
(RSS) against :func:`estimate_memory` on ``numpy`` and ``cpu``, 2D and 3D, float32 and
float64, and the device peak of ``cupy`` on the CuPy device double's memory pool, and
requires them within 15 % (README, *Backends*, *Memory*). How each count was found:
the code named in each comment was read to count the arrays it allocates, and
``tracemalloc`` snapshots taken at the run's peak attributed the bytes to those lines;
the numpy reference's expression temporaries (the reaction and transport steps), which
depend on how NumPy evaluates each expression, are the counts those snapshots gave.
"""
from __future__ import annotations

import math

from .cells import CELL_TYPES
from .limits import MAX_STEPS, n_frames, n_steps

#: bytes per voxel the observables' niche labels need while they are computed, whatever
#: the precision, besides their distance arrays (``run/niche.py``: the bool niche, near
#: and far masks and the uint8 labels, ≈ 4 bytes) ...
NICHE_LABEL_BYTES = 4
#: ... and the distance's ``d2``, ``best`` and one shifted minimum, 3 elements of the
#: squared voxel distance (``niche.squared_voxel_distance``: one byte while every value
#: within the labels' reach is below 255, float32 while its integers stay below this,
#: else float64; the same rule as ``niche.label_distance_dtype``, which this layer cannot
#: import)
NICHE_DISTANCE_ARRAYS = 3
FLOAT32_EXACT_INTEGERS = 2**24


def niche_label_bytes(cfg, shape) -> int:
    """Bytes per voxel of the niche labels' temporaries for a run of ``cfg`` on ``shape``."""
    reach = cfg.run.niche_far_distance / float(cfg.grid.dx) + 1.0
    top = max(min(n - 1, int(math.floor(reach * (1.0 + 1e-9)))) for n in shape)
    bound = len(shape) * top * top
    item = 1 if bound < 255 else 4 if bound < FLOAT32_EXACT_INTEGERS else 8
    return NICHE_LABEL_BYTES + NICHE_DISTANCE_ARRAYS * item

#: HDF5's default chunk cache per dataset (h5py's ``rdcc_nbytes``, the run file does not set it)
HDF5_CHUNK_CACHE = 2**20
#: what HDF5 keeps while it writes frames whose chunks (one field) fit its chunk cache: the
#: cached chunks and its free lists of filter buffers (measured, see hdf5_cache_and_free_lists)
HDF5_SMALL_CHUNK_RETAINED = 64 * 2**20

#: glibc's largest dynamic mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
MMAP_THRESHOLD_MAX = 32 * 2**20

#: bytes one observable of one step takes in the run's history (a dict entry and a float)
OBSERVABLE_BYTES = 84
#: observables of a run without drugs, and those each drug adds
OBSERVABLES_BASE = 27
OBSERVABLES_PER_DRUG = 6

#: fine-grid planes the PCG solver (numerics/implicit/solver.py) touches: 6 vectors and the
#: fine level of its multigrid (mass, winv, x, b, r, flux); its coarse levels add 6 each
PCG_FALLBACK_PLANES = 12

#: reference backends (the array expressions of ``backends/reference.py``) and compiled
#: ones (``backends/compiled_ops.py``: g++ kernels on ``cpu``, NVRTC kernels on ``cupy``)
REFERENCE_BACKENDS = ("numpy",)
COMPILED_BACKENDS = ("cpu", "cupy")


def n_fields(cfg) -> int:
    """Fields of the state: substrates and drugs (keyed like all_substrates), cell types,
    one exposure map per drug."""
    subs = dict(cfg.substrates) | dict(cfg.treatment.drugs)
    return len(subs) + len(CELL_TYPES) + len(cfg.treatment.drugs)


#: the multigrid solvers stop coarsening at this many cells (numerics.implicit: solved densely)
COARSEST_CELLS = 64


def coarse_voxels(shape) -> int:
    """Voxels of every multigrid level below the fine one, counted as the solvers coarsen
    a grid of equal cells: every axis of >= 2 cells halved ((n + 1) // 2) until a level has
    at most COARSEST_CELLS. The solvers' hierarchy
    (:func:`spatialdtp.numerics.implicit.batched_multigrid.hierarchy`) can skip an axis
    already much wider than the others; the test compares the two on square, oblong and
    slab grids. Counted here rather than imported: the configuration is checked before,
    and below, the numerics."""
    shape = tuple(int(n) for n in shape)
    if len(shape) < 2 or any(n < 3 for n in shape):
        return 0
    total = 0
    while math.prod(shape) > COARSEST_CELLS and any(n >= 2 for n in shape):
        shape = tuple((n + 1) // 2 if n >= 2 else n for n in shape)
        total += math.prod(shape)
    return total


def _substrates(cfg):
    out = dict(cfg.substrates)
    for name, drug in cfg.treatment.drugs.items():
        out[name] = drug.transport
    return out


def _backend_name(cfg, backend) -> str:
    name = backend if backend is not None else cfg.backend.name
    name = str(name)
    if name.endswith("64"):           # the presets numpy64, cpu64, cupy64
        name = name[:-2]
    return "numpy" if name == "auto" else name


def memory_contributions(cfg, backend=None, frames: bool = True) -> dict[str, int]:
    """Bytes a run of ``cfg`` needs on ``backend``'s device, by named contribution.

    ``backend``: the resolved name (``numpy``, ``cpu``, ``cupy``; None: the configured one,
    ``auto`` counting as the reference ``numpy``). ``frames``: the run writes a run file
    (its frames are copied for the background writer); ``Simulation.run_until`` without a
    path writes none. On ``cupy`` the figures are device memory: the state and every work
    array live there, and so does each frame's device copy until it is in pinned host
    memory; the pinned frames, the checkpoint's host copies and HDF5's buffers are host
    memory and are not counted.
    """
    name = _backend_name(cfg, backend)
    well_mixed = cfg.tissue.kind == "well_mixed"
    shape = (1,) if well_mixed else tuple(int(n) for n in cfg.grid.shape)
    G = math.prod(shape)
    s = 4 if cfg.backend.precision == "float32" else 8
    d = len(shape)
    subs = _substrates(cfg)
    B = len(subs)
    D = len(cfg.treatment.drugs)
    F = B + len(CELL_TYPES) + D
    grid = G * s                                   # one field of the grid
    out: dict[str, int] = {}

    # -- held for the whole run -------------------------------------------------------
    # model/state.py State.data (F, *grid) and State.vessels (simulation.py)
    out["state"] = F * grid
    out["vessels"] = grid
    # model/substrate_coefficients.py Substrate.exchange = permeability × vessels, one map
    # per substrate with a vessel permeability; maps from files divided by the
    # retardation (one each) and the fixed voxels' (mask, values) pair
    perm = sum(1 for x in subs.values() if x.permeability > 0)
    maps = fixed = 0
    if not well_mixed:
        for x in subs.values():
            given = {k for k, v in vars(x.maps).items() if v is not None}
            fixed += "fixed" in given
            maps += len(given - {"fixed"}) + 2 * ("fixed" in given)   # hold: (P·[held], P·v)
    out["substrate_maps"] = (perm + maps) * grid + fixed * G * (1 + s)

    if well_mixed:
        # pointwise solve: run/substrate_step.py keeps prev, the D/a/b blocks and aux
        out["substrate_step"] = 5 * B * grid
    else:
        Gc = coarse_voxels(shape)
        multigrid = cfg.numerics.solver == "multigrid"
        # run/substrate_step.py SubstrateStep.blocks (D, a, b maps, B each); aux (B) is
        # written only by TR-BDF2 and the PCG solver's predictor (xp.zeros: a page never
        # written is never resident, so backward Euler with multigrid does not count it)
        # (device memory on cupy is taken when allocated, written or not)
        uses_aux = cfg.numerics.scheme != "backward_euler" or not multigrid or name == "cupy"
        out["substrate_coefficients"] = (3 + uses_aux) * B * grid
        if multigrid:
            # numerics/implicit/mg_solver.py MultigridSolver: work, rhs, prev on the fine
            # grid (B each); x, b, y on every coarse level (B each)
            out["multigrid_work"] = 3 * B * grid + 3 * B * Gc * s
            if name in COMPILED_BACKENDS:
                # backends/compiled_multigrid.py: the fine operator is computed on the fly;
                # each coarse level keeps its mass and d face arrays (_arrays, B each); the
                # prolongation's scratch (B) is cached for every level but the coarsest
                # (≈ the fine grid plus the coarse ones)
                out["multigrid_hierarchy"] = (1 + d) * B * Gc * s + B * (G + Gc) * s
            else:
                # numerics/implicit/batched_multigrid.py set_fine / coarsen: mass, diagonal
                # and d face arrays (B each) on every level, fine and coarse
                out["multigrid_hierarchy"] = (2 + d) * B * (G + Gc) * s
        else:
            # run/substrate_step.py: prev (B), the step's start and the predictor's history
            out["substrate_history"] = B * grid
        # numerics/implicit/solver.py ImplicitSolver (the solver of numerics.solver=pcg and
        # the multigrid's fallback, one substrate at a time, made with the step): r, p, q,
        # d, work, dotbuf on the fine grid, and its Multigrid's mass, winv, x, b, r and flux
        # buffer on every level (stencil.py). Allocated with xp.empty, so resident only once
        # a PCG solve has run: counted for numerics.solver=pcg; a multigrid run touches them
        # only where a solve falls back to PCG (PCG_FALLBACK_PLANES more planes then);
        # on cupy the device memory is taken when allocated: counted there too
        if not multigrid or name == "cupy":
            out["pcg_solver"] = PCG_FALLBACK_PLANES * grid + 6 * Gc * s
        # run/niche.py NicheReference, taken at treatment start: T0 (s), bed (bool),
        # stratum (int32)
        out["niche_reference"] = G * (s + 1 + 4)
        if name in COMPILED_BACKENDS:
            # backends/compiled_transport.py: the pressure step's 3 spare planes and the
            # motility step's 2 buffers, cached for the run
            out["transport_buffers"] = 5 * grid

    if frames and name == "cupy":
        # backends/cupy_backend.py _PendingCopy: the frame's private device copy of
        # state.data, kept until the writer thread has it in pinned host memory (the pinned
        # buffer and HDF5's buffers are host memory, not counted here)
        out["write_behind_device_copy"] = F * grid
    elif frames:
        # run/simulation.py run_until: backend.snapshot(state.data), a copy of every field
        # held by the write-behind queue until the writer thread has written it (one
        # frame in flight: the writer finishes a frame within the next step)
        out["write_behind_frame"] = F * grid
        # HDF5 writing one field's chunk (one grid; run/runfile/writer.py: shuffle, gzip,
        # Fletcher-32), in the writer thread while the next step computes: the chunk as
        # HDF5 assembles it and each filter's input and output buffer (3 grids)
        out["hdf5_chunk_buffers"] = 3 * grid
        # glibc's malloc keeps freed blocks at the top of its heap up to its trim threshold,
        # twice the mmap threshold, which it raises to the largest block freed (at most
        # 32 MiB): the frame's field copies of the writer's first frame (simulation.py
        # _create_writer: Simulation.fields(), F grids) and HDF5's chunk buffers are freed
        # into it and stay resident (measured: 63 MB more after the run file is created at
        # 1024² float32 on cpu)
        out["allocator_retained"] = min(2 * MMAP_THRESHOLD_MAX, 2 * min(MMAP_THRESHOLD_MAX,
                                                                        F * grid))
        if grid <= HDF5_CHUNK_CACHE:
            # a chunk that fits HDF5's chunk cache (1 MiB per dataset) is kept there, and
            # the library's free lists keep the freed filter buffers of each size for reuse:
            # bounded, whatever the grid, measured 56-61 MiB with the writer alone over 24
            # frames of 11 fields at 256² and 512² float32, growing by about half a chunk
            # per field and frame until then (compressed sizes differ from frame to frame):
            # one chunk per field and frame, up to the bound
            out["hdf5_cache_and_free_lists"] = int(min(HDF5_SMALL_CHUNK_RETAINED,
                                                       n_frames(cfg) * F * grid))

    if name != "cupy":
        # run/simulation.py Simulation._history: every step's observables, a dict of
        # Python floats (host memory; the writer's unflushed rows are at most 100 of them):
        # measured 2762 bytes per step for the 33 observables of a one-drug run (27 without
        # drugs), 84 bytes an observable; each drug adds 6 columns (its level, flag,
        # exposure, effect and cumulative figures)
        # (more than MAX_STEPS steps are refused by check_work, naming the steps: not here)
        keys = OBSERVABLES_BASE + OBSERVABLES_PER_DRUG * D
        steps = n_steps(cfg)
        rows = int(steps) if math.isfinite(steps) and steps <= MAX_STEPS else 0
        out["observable_history"] = rows * keys * OBSERVABLE_BYTES

    # -- the largest temporaries of one phase ----------------------------------------------
    if not well_mixed:
        out.update(_largest(_temporaries(name, cfg, shape, G, B, D, grid)))
    return out


def _temporaries(name, cfg, grid_shape, G, B, D, grid) -> dict[str, int]:
    """Temporaries of each phase of a step (only the largest phase is counted)."""
    phases = {
        # run/observables.py Observer.niche_labels (see NICHE_LABEL_BYTES)
        "temporaries_niche_labels": G * niche_label_bytes(cfg, grid_shape),
    }
    if name in COMPILED_BACKENDS:
        # backends/compiled_transport.py move_cells: others = F + M and others_total (up to
        # 3 planes at once); the compiled cell kinetics and substrate step use none
        phases["temporaries_transport"] = 3 * grid
        return phases
    # numerics/cell_kinetics.py react_state (numpy reference): the environment (8 maps),
    # two generations of the five cell planes and their rates in _growth, phi1's where;
    # 39 planes at tracemalloc's peak, and 3 more per drug (treatment/effects.py hill: x,
    # r, the effect).
    react = 39 + 3 * D
    phases["temporaries_reaction"] = react * grid
    # numerics/implicit/batched_multigrid.py step_rhs and residual_norms (src, A·c, r, q,
    # and the norms' |r|/diag and magnitude planes): 7 per substrate
    phases["temporaries_substrate_step"] = 7 * B * grid
    # numerics/transport.py move_state: the faces' fluxes, the crowding room and the
    # sub-step's new plane: 17 planes, measured
    phases["temporaries_transport"] = 17 * grid
    return phases


def _largest(phases: dict[str, int]) -> dict[str, int]:
    key = max(phases, key=phases.get)
    return {key: phases[key]}


def estimate_memory(cfg, backend=None, frames: bool = True) -> int:
    """The bytes :func:`memory_contributions` adds up to."""
    return int(sum(memory_contributions(cfg, backend, frames).values()))
