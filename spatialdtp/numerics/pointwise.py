"""The substrate step of a well-mixed tissue: no diffusion, one θ-scheme step per voxel.

With no neighbours (the single voxel of ``tissue.kind=well_mixed``) the implicit step of
∂c/∂t = ∇·D∇c − a c + b reduces to a scalar equation per voxel,

    (1 + θ Δt a) c_new = c + Δt (b − (1 − θ) a c),

solved exactly: no multigrid, no iterations, and the same scheme (backward Euler θ = 1,
Crank–Nicolson θ = ½, the two stages of TR-BDF2) as the spatial solve
(:class:`~spatialdtp.numerics.implicit.ImplicitSolver`), whose answer it is on a uniform
grid with no-flux faces. Faces (``boundary``) and ``D`` play no part: a well-mixed
compartment exchanges only through its vessel fraction.
"""
from __future__ import annotations

import numpy

from .implicit import SolveInfo


class PointwiseSolver:
    """Drop-in for :class:`~spatialdtp.numerics.implicit.ImplicitSolver` without transport."""

    def __init__(self, xp=numpy):
        self.xp = xp

    def step(self, c, *, D, a, b, dt, boundary, theta=1.0, rtol=1e-6, max_iter=200, x0=None):
        """Advance ``c`` by ``dt`` minutes; return ``(c_new, SolveInfo)`` (always converged;
        ``x0``, a starting guess for an iterative solve, has no use here)."""
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"theta={theta!r}: must be in [0, 1]")
        c_new = (c + dt * (b - (1.0 - theta) * a * c)) / (1.0 + theta * dt * a)
        if theta == 1.0:        # as the spatial solve: the exact BE solution is >= 0
            c_new = self.xp.maximum(c_new, 0.0)
        return c_new, SolveInfo(0, 0.0, True, method="pointwise", R=0.0, R0=0.0)
