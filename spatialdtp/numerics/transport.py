"""Cell transport: crowding-limited random motility and TAM chemotaxis, explicit and
conservative.

Cells move only into free space (volume filling, Painter & Hillen 2002). With N the total
of all five cell types and f = clamp(1 − N/capacity, 0, 1) the free fraction of a voxel,
cells hop between face neighbours a → b at the rate D/dx² times the room f_b they find,
and drift down the chemotactic velocity v only into room. Per face (a the lower voxel):

    J_{a→b} = (D/dx) (n_a f_b − n_b f_a)  +  (v > 0 ? v n_a f_b : v n_b f_a)
    ∂n/∂t = −∇·J          continuum limit: J = −D [(1 − N/K) ∇n + n ∇N/K] + v n (1 − N/K)

In empty tissue (f = 1) this is plain diffusion −D∇n and upwind drift v n. A full voxel
(f = 0) gains nothing, so cells never diffuse into voxels that are already full, and
between two full voxels nothing moves. Zero flux through the domain boundary conserves
every cell type to rounding.

Explicit sub-steps keep 2d (D τ/dx² + |v| τ/dx) ≤ 0.9. Then a voxel loses at most 0.9 of its
own cells in a sub-step (positivity), and gains at most 0.9·f_a·capacity (so N ≤ capacity
stays true wherever it held). Species move one after another; each sub-step of species i
sees the total N = (the other species, frozen) + n_i.
"""
from __future__ import annotations

import math


def _face_diff(u, axis, xp):
    """u[i+1] − u[i] along ``axis`` (one fewer entry)."""
    n = u.shape[axis]
    hi = [slice(None)] * u.ndim
    lo = [slice(None)] * u.ndim
    hi[axis], lo[axis] = slice(1, n), slice(0, n - 1)
    return u[tuple(hi)] - u[tuple(lo)], tuple(lo), tuple(hi)


def divergence_of_faces(flux, axis, shape, xp):
    """−(F_{i+1/2} − F_{i−1/2}) with F = 0 at the domain faces."""
    out = xp.zeros(shape, dtype=flux.dtype)
    n = shape[axis]
    lo = [slice(None)] * len(shape)
    hi = [slice(None)] * len(shape)
    lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
    out[tuple(lo)] -= flux
    out[tuple(hi)] += flux
    return out


def free_fraction(others, n, capacity, xp):
    """f = clamp(1 − (others + n)/capacity, 0, 1): the room a voxel offers."""
    return xp.clip(1.0 - (others + n) / capacity, 0.0, 1.0)


def _tendency(n, free, D, velocity_faces, dx, xp):
    """dn/dt of crowding-limited motility (and drift, if velocity_faces is given)."""
    out = xp.zeros_like(n)
    for axis in range(n.ndim):
        _, lo, hi = _face_diff(n, axis, xp)
        flux = D * (n[lo] * free[hi] - n[hi] * free[lo]) / dx
        if velocity_faces is not None:
            v = velocity_faces[axis]
            flux = flux + xp.where(v > 0, v * n[lo] * free[hi], v * n[hi] * free[lo])
        out += divergence_of_faces(flux, axis, n.shape, xp) / dx
    return out


def chemotactic_velocity(q, chi, dx, xp):
    """Face velocities χ ∂q/∂x_axis (µm/min), one array per axis."""
    return [chi * _face_diff(q, axis, xp)[0] / dx for axis in range(q.ndim)]


def substeps(D_max: float, v_max: float, tau: float, dx: float, ndim: int) -> int:
    # a voxel can lose mass through all 2·ndim faces, by diffusion and by upwind drift
    courant = tau * (2 * ndim * D_max / dx**2 + 2 * ndim * v_max / dx)
    return max(1, math.ceil(courant / 0.9))


def others_total(cells, i, xp):
    """Σ_{j ≠ i} n_j, summed in cell order (the kernel launcher sums the same way)."""
    rest = [c for j, c in enumerate(cells) if j != i]
    total = rest[0]
    for c in rest[1:]:
        total = total + c
    return total


def move_cells(cells, motilities, chemokine, chi, tau, dx, capacity, xp):
    """Advance (S, P, R, F, M) by τ: crowding-limited motility for all, plus chemotaxis
    for M (last). ``capacity``: cells per voxel of a full voxel."""
    velocity = chemotactic_velocity(chemokine, chi, dx, xp) if chi > 0 else None
    v_max = max((float(xp.abs(v).max()) for v in velocity), default=0.0) if velocity else 0.0
    out = list(cells)
    for i, D in enumerate(motilities):
        drift = velocity if (i == len(cells) - 1 and velocity is not None) else None
        if D == 0 and drift is None:
            continue
        m = substeps(D, v_max if drift is not None else 0.0, tau, dx, cells[0].ndim)
        h = tau / m
        others = others_total(out, i, xp)
        n = out[i]
        for _ in range(m):
            n = n + h * _tendency(n, free_fraction(others, n, capacity, xp), D, drift, dx, xp)
        out[i] = xp.maximum(n, 0.0)
    return out


def move_state(state, motilities, chi, tau, capacity):
    """:func:`move_cells` on the cell fields of ``state``, in place (the chemokine drives M).

    The reference of ``kernels/transport.cu``.
    """
    from ..config import CELL_TYPES

    cells = [state[n] for n in CELL_TYPES]
    moved = move_cells(cells, motilities, state["chemokine"], chi, tau, state.grid.dx,
                       capacity, state.xp)
    for name, n in zip(CELL_TYPES, moved):
        state[name] = n
