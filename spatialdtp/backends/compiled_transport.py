"""Launchers of the cell-transport kernels (``kernels/transport.cu``)."""
from __future__ import annotations

import math

from ..config import CELL_TYPES
from ..numerics.transport import others_total, pressure_substeps, substeps


def _grid3(state):
    """(nz, ny, nx) of the grid, nz = 1 in 2D."""
    shape = tuple(int(s) for s in state.grid.shape)
    return (1,) * (3 - len(shape)) + shape


def max_face_speed(ops, q, chi: float, dx: float, dims) -> float:
    """max |χ ∂q| over every face (µm/min), exactly the reference's ``v_max``: one
    reduction kernel writes the largest |Δq| per chunk, xp takes the max of those, and the
    one scalar that comes back is scaled as the reference scales each face (χ·Δq, then /dx,
    each rounded in the field dtype; rounding is monotone, so the max commutes with it)."""
    xp, n = ops.xp, int(q.size)
    chunks = ops.lib.reduction_chunks(n)
    partial = ops.cached(("transport_jump", chunks), lambda: xp.empty(chunks, xp.float64))
    ops.lib.launch("transport_max_jump", chunks, n, *dims, q, partial)
    real = ops.dtype.type
    jump = float(ops.read(xp.max(partial), "transport: largest chemokine jump"))
    return float(real(chi) * real(jump) / real(dx))


def push_tumour(ops, state, mobility, tau, capacity):
    """The tumour's pressure flux over ``tau`` minutes, as
    :func:`spatialdtp.numerics.transport.push_tumour`: each sub-step one kernel pass that
    moves S, P and R together, between the state's planes and one set of three buffers,
    the last pass with the clamp to >= 0 fused in. Returns the buffers when S, P and R
    end there (an odd number of sub-steps; no copy back: the motility that follows reads
    them there and writes the planes, see :func:`move_cells`), else None (in the planes,
    or no pressure flux). The stroma total F + M, which the flux does not move, is summed
    by the kernel where it reads it on the GPU (``lib.sums_in_kernel``) and here once on
    the host."""
    if mobility == 0:
        return None
    xp, n = ops.xp, state.grid.size
    dims = _grid3(state)
    dx = float(state.grid.dx)
    m = pressure_substeps(float(mobility), float(tau), dx, state.grid.ndim)
    h = float(tau) / m
    c = float(mobility) / (2.0 * float(capacity) * dx)
    F, M = state["F"], state["M"]
    others = None if ops.lib.sums_in_kernel else F + M
    spare = ops.cached(("pressure_buffers", state.grid.shape),
                       lambda: [xp.empty(state.grid.shape, ops.dtype) for _ in range(3)])
    src, dst = [state[name] for name in CELL_TYPES[:3]], spare
    for k in range(m):
        ops.lib.launch("transport_pressure_substep", n, *dims, *src, others, F, M, *dst, c,
                       dx, float(capacity), h, 1 if k == m - 1 else 0)
        src, dst = dst, src
    return spare if m % 2 else None


def move_cells(ops, state, motilities, chi, tau, capacity, pressure=0.0):
    """Advance every cell plane of ``state`` by ``tau`` minutes in place, as
    :func:`spatialdtp.numerics.transport.move_state`: first the tumour's pressure flux
    (:func:`push_tumour`), then motility and chemotaxis with the same sub-step counts as the
    reference, each sub-step one kernel pass from one buffer to the other, the last one
    writing the state's plane with the clamp to >= 0 fused in. A type whose cells the
    pressure flux left in its buffers starts from there, so its first sub-step writes
    the plane or a buffer without a copy first (a type in its plane with one sub-step
    is copied to a buffer: the sub-step must not write its input); a type that the
    pressure moved and motility does not is copied back at the end. Every kernel reads
    each type where it is, so the numbers are the reference's. The other cell types' total,
    which sets the room a voxel offers, is summed in the reference's order
    (``others_total``): by the kernel where it reads it on the GPU
    (``lib.sums_in_kernel``), which saves a pass's DRAM traffic, and here on the host."""
    pushed = push_tumour(ops, state, pressure, tau, capacity)
    where = {name: state[name] for name in CELL_TYPES}     # where each type's cells are
    in_buffer = set()                                      # ... when not in their plane
    if pushed is not None:
        where.update(zip(CELL_TYPES[:3], pushed))
        in_buffer.update(CELL_TYPES[:3])
    xp, n = ops.xp, state.grid.size
    dims = _grid3(state)
    dx, ndim = float(state.grid.dx), state.grid.ndim
    chi, tau, capacity = float(chi), float(tau), float(capacity)
    q = state["chemokine"]
    drift_of = len(CELL_TYPES) - 1                 # M, the last cell type
    v_max = max_face_speed(ops, q, chi, dx, dims) if chi > 0 else 0.0
    if math.isnan(v_max):
        raise ValueError("move_cells: the chemokine field holds NaN; the chemotactic "
                         "drift (and so the sub-step count) is undefined")
    buffers = None
    for i, name in enumerate(CELL_TYPES):
        D = float(motilities[i])
        drift = i == drift_of and chi > 0
        if D == 0 and not drift:
            continue
        m = substeps(D, v_max if drift else 0.0, tau, dx, ndim)
        h = tau / m
        plane = state[name]
        if buffers is None:
            buffers = ops.cached(("transport_buffers", state.grid.shape), lambda: (
                xp.empty(state.grid.shape, ops.dtype), xp.empty(state.grid.shape, ops.dtype)))
        a, b = buffers
        planes = [where[c] for j, c in enumerate(CELL_TYPES) if j != i]
        # their total: summed by the kernel where it reads it on the GPU (no pass of its
        # own), here on the host (the vectorised row loop then loads it once per position)
        total = (None if ops.lib.sums_in_kernel
                 else xp.ascontiguousarray(others_total([where[c] for c in CELL_TYPES], i, xp)))
        src = where[name]
        if m == 1 and name not in in_buffer:   # the one sub-step must not write its input
            xp.copyto(a, plane)
            src = a
        for k in range(m):
            last = k == m - 1
            dst = plane if last else (a if src is not a else b)
            ops.lib.launch("transport_substep", n, *dims, src, total, *planes,
                           q if drift else None,
                           dst, D, chi, dx, capacity, h, 1 if last else 0)
            src = dst
        in_buffer.discard(name)
        where[name] = plane
    for name in sorted(in_buffer, key=CELL_TYPES.index):   # pushed, not moved: back home
        xp.copyto(state[name], where[name])
