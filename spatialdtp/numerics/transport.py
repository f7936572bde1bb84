"""Cell transport: random motility and TAM chemotaxis, explicit and conservative.

    ∂n/∂t = ∇·(D_n ∇n)                       random motility of each cell type
    ∂M/∂t = −∇·(χ M ∇q)                      TAM chemotaxis up the persister chemokine q

Finite volumes on voxel faces with zero flux through the domain boundary (cells do not
leave the tissue), so the total of every cell type is conserved to rounding. The drift
uses first-order upwinding, which keeps densities non-negative. Both are explicit: cells
move slowly (D_n ~ 1 µm²/min, drift ~ 1 µm/min), so the step is split into the fewest
sub-steps that keep 2d (D_n τ/dx² + |v| τ/dx) ≤ 0.9, which guarantees positivity.
"""
from __future__ import annotations

import math

from ..config import ConfigError
from ..config.limits import MAX_TRANSPORT_SUBSTEPS


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


def _tendency(n, D, velocity_faces, dx, xp):
    """dn/dt of motility (and drift, if velocity_faces is given) in flux form."""
    out = xp.zeros_like(n)
    for axis in range(n.ndim):
        grad, lo, hi = _face_diff(n, axis, xp)
        flux = -D * grad / dx
        if velocity_faces is not None:
            v = velocity_faces[axis]
            flux = flux + xp.where(v > 0, v * n[lo], v * n[hi])
        out += divergence_of_faces(flux, axis, n.shape, xp) / dx
    return out


def chemotactic_velocity(q, chi, dx, xp):
    """Face velocities χ ∂q/∂x_axis (µm/min), one array per axis."""
    return [chi * _face_diff(q, axis, xp)[0] / dx for axis in range(q.ndim)]


def substeps(D_max: float, v_max: float, tau: float, dx: float, ndim: int) -> int:
    # a voxel can lose mass through all 2·ndim faces, by diffusion and by upwind drift
    courant = tau * (2 * ndim * D_max / dx**2 + 2 * ndim * v_max / dx)
    if not courant / 0.9 <= MAX_TRANSPORT_SUBSTEPS:   # a drift of 1e30 µm/min: refuse, not loop
        raise ConfigError(f"cell transport: a drift of {v_max:.3g} µm/min (motility "
                          f"{D_max:.3g} µm²/min) would need {courant / 0.9:.3g} sub-steps of "
                          f"{tau:g} min, more than the {MAX_TRANSPORT_SUBSTEPS:.0e} allowed; "
                          "lower cells.macrophage.chemotaxis or run.dt")
    return max(1, math.ceil(courant / 0.9))


def move_cells(cells, motilities, chemokine, chi, tau, dx, xp):
    """Advance (S, P, R, F, M) by τ: motility for all, plus chemotaxis for M (last)."""
    velocity = chemotactic_velocity(chemokine, chi, dx, xp) if chi > 0 else None
    v_max = max((float(xp.abs(v).max()) for v in velocity), default=0.0) if velocity else 0.0
    out = list(cells)
    for i, D in enumerate(motilities):
        drift = velocity if (i == len(cells) - 1 and velocity is not None) else None
        if D == 0 and drift is None:
            continue
        m = substeps(D, v_max if drift is not None else 0.0, tau, dx, cells[0].ndim)
        h = tau / m
        n = out[i]
        for _ in range(m):
            n = n + h * _tendency(n, D, drift, dx, xp)
        out[i] = xp.maximum(n, 0.0)
    return out


def move_state(state, motilities, chi, tau):
    """:func:`move_cells` on the cell fields of ``state``, in place (the chemokine drives M).

    The reference of ``kernels/transport.cu``.
    """
    from ..config import CELL_TYPES

    cells = [state[n] for n in CELL_TYPES]
    moved = move_cells(cells, motilities, state["chemokine"], chi, tau, state.grid.dx, state.xp)
    for name, n in zip(CELL_TYPES, moved):
        state[name] = n
