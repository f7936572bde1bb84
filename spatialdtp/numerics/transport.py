"""Cell transport: the tumour's pressure-driven expansion, crowding-limited random motility
and TAM chemotaxis, explicit and conservative.

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

**Expansion by proliferation pressure** (:func:`push_tumour`, before motility). Tumour
cells (T = S + P + R) are pushed down the gradient of their own crowding, the pressure
their proliferation builds, as a porous medium (Darcy flow with a pressure linear in T):
all three move with one velocity u = −D_p ∇(T/K), so the flux carries each voxel's mix of
S, P and R and does not mix them. CAFs and TAMs are the stroma the tumour moves through:
they are not pushed and push nothing, but the room they hold is not the tumour's to fill.
Per face (a the voxel the flow leaves, b the one it enters):

    Φ_ab = D_p (T_a − T_b)(T_a + T_b) / (2 K dx)          (centred: −D_p (T/K) ∂T)
    s_b  = clamp((K − N_b)/(K − T_b), 0, 1)               the room stroma leaves in b
    J_i  = Φ_ab s_b n_i,a / T_a                           (each type's share, upwind)
    ∂T/∂t = ∇·(D_p (T/K) ∇T)       where there is no stroma (s = 1): the porous-medium
                                    equation; with logistic growth its fronts are sharp and
                                    move at √(D_p r u*/2) (u* = T*/K behind the front)

Sub-steps keep 2d D_p τ/dx² ≤ 0.9. Then a voxel loses at most 0.9 of each of its cell
types (Φ_ab/T_a ≤ D_p (T_a − T_b)/(K dx) ≤ D_p/dx), and gains at most 0.9 × its free room
K − N_b (Φ_ab s_b ≤ (D_p/dx)(K − T_b) s_b = (D_p/dx)(K − N_b)), so N ≤ K stays true.
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
    if not courant / 0.9 <= MAX_TRANSPORT_SUBSTEPS:   # a drift of 1e30 µm/min: refuse, not loop
        raise ConfigError(f"cell transport: a drift of {v_max:.3g} µm/min (motility "
                          f"{D_max:.3g} µm²/min) would need {courant / 0.9:.3g} sub-steps of "
                          f"{tau:g} min, more than the {MAX_TRANSPORT_SUBSTEPS:.0e} allowed; "
                          "lower cells.macrophage.chemotaxis or run.dt")
    return max(1, math.ceil(courant / 0.9))


def pressure_substeps(mobility: float, tau: float, dx: float, ndim: int) -> int:
    """Sub-steps of :func:`push_tumour` that keep 2d D_p τ/dx² ≤ 0.9."""
    return max(1, math.ceil(tau * 2 * ndim * mobility / dx**2 / 0.9))


def stroma_room(others, T, capacity, xp):
    """s = clamp((K − T − o)/(K − T), 0, 1): the share of the volume tumour cells leave
    that the stroma (o = F + M) leaves free; 1 without stroma, 0 in a full voxel."""
    gap = capacity - T
    safe = xp.where(gap > 0, gap, 1.0)
    return xp.where(gap > 0, xp.clip((gap - others) / safe, 0.0, 1.0), 0.0)


def tumour_shares(tumour, T, xp):
    """n_i/T for each tumour cell type (0 where T ≤ 0): what a face carries of each."""
    safe = xp.where(T > 0, T, 1.0)
    return [xp.where(T > 0, n / safe, 0.0) for n in tumour]


def _pressure_tendencies(tumour, others, coefficient, dx, capacity, xp):
    """dn_i/dt of the pressure flux for each tumour cell type; ``coefficient`` = D_p/(2K dx)."""
    T = tumour[0] + tumour[1] + tumour[2]
    room = stroma_room(others, T, capacity, xp)
    shares = tumour_shares(tumour, T, xp)
    out = [xp.zeros_like(T) for _ in tumour]
    for axis in range(T.ndim):
        _, lo, hi = _face_diff(T, axis, xp)
        phi = coefficient * ((T[lo] - T[hi]) * (T[lo] + T[hi]))
        up = phi > 0                               # from the lower voxel into the upper
        into_hi, into_lo = phi * room[hi], phi * room[lo]
        for o, share in zip(out, shares):
            flux = xp.where(up, into_hi * share[lo], into_lo * share[hi])
            o += divergence_of_faces(flux, axis, T.shape, xp) / dx
    return out


def push_tumour(cells, mobility, tau, dx, capacity, xp):
    """Advance (S, P, R, F, M) by τ under the tumour's pressure flux (module docstring):
    S, P and R move, F and M are the stroma. Returns the new list of cell fields."""
    if mobility == 0:
        return list(cells)
    tumour, others = list(cells[:3]), cells[3] + cells[4]
    m = pressure_substeps(mobility, tau, dx, cells[0].ndim)
    h = tau / m
    coefficient = mobility / (2.0 * capacity * dx)
    for _ in range(m):
        rates = _pressure_tendencies(tumour, others, coefficient, dx, capacity, xp)
        tumour = [n + h * t for n, t in zip(tumour, rates)]
    return [xp.maximum(n, 0.0) for n in tumour] + list(cells[3:])


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


def move_state(state, motilities, chi, tau, capacity, pressure=0.0):
    """:func:`push_tumour` (mobility ``pressure``, µm²/min), then :func:`move_cells`, on the
    cell fields of ``state``, in place (the chemokine drives M).

    The reference of ``kernels/transport.cu``.
    """
    from ..config import CELL_TYPES

    cells = [state[n] for n in CELL_TYPES]
    cells = push_tumour(cells, pressure, tau, state.grid.dx, capacity, state.xp)
    moved = move_cells(cells, motilities, state["chemokine"], chi, tau, state.grid.dx,
                       capacity, state.xp)
    for name, n in zip(CELL_TYPES, moved):
        state[name] = n
