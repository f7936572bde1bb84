"""When an implicit solve has converged, and what a solve reports.

Both solvers (:mod:`.mg_solver`, the default, and the PCG of :mod:`.solver`) stop on the
same test, measured on the *true* residual ``r = rhs − A x`` of the iterate they return
(recomputed, not CG's recursively updated one):

    R = max_i |r_i| / d_i          (d_i the diagonal of A)
    converged  ⇔  R ≤ max(rtol · R_0,  FLOOR_ULPS · u · M)

* Diagonal scaling puts every voxel's residual in the units of the field (it is the
  Jacobi correction that voxel still asks for), so no single term can hide the others:
  a vessel voxel's Δt·p·c_blood sits in both r_i and d_i. The max-norm lets no region of
  the tissue stay unconverged behind a converged majority.
* ``R_0`` is the scaled residual of the start of the solve, so ``rtol`` is the factor by
  which the solve reduces its error (multigrid and PCG reduce every error component
  alike, so the error shrinks with R). Why that factor is chosen from the step's own
  time-discretisation error is in :mod:`.mg_solver` and the README.
* ``FLOOR_ULPS · u · M`` is the precision floor: ``u`` is the unit round-off of the field
  dtype and ``M = max_i m_i/d_i``, ``m_i`` the sum of the magnitudes of the terms that make
  up ``r_i``. Rounding alone leaves a computed residual of up to ≈ 8u·m_i (8 terms in 3D),
  and storing the iterate rounds it by u|x|: below the floor the residual is noise, and a
  solver asked for less would iterate on noise (and, in CG, diverge). A solve that stops
  there reports ``floor=True``. At the floor the residual no longer shows a *smooth* error:
in a diffusion-dominated field such an error has a residual up to κ ≈ 2d·DΔt/dx² times
smaller, which hides under the rounding noise (a float32 drug field one step from its
steady state can be off by 5e-4 with a residual below 1e-6). So a floor-limited solve also
requires its iterate to have stopped moving: the last iteration changed no value by more
than ``FLOOR_ULPS · u · X`` (:func:`goal_x`, ``X`` the field's maximum), and every solve
iterates at least once.

Divergence is a residual that grows (``R > DIVERGENCE_GROWTH × R_0``) or stops being
finite; it is never returned as a result (see the solvers for what they do instead).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

from .batched_multigrid import FLOOR_ULPS

#: a residual this many times its starting value means the iteration diverges
DIVERGENCE_GROWTH = 1.0e3


def unit_roundoff(dtype) -> float:
    """u = ε/2 of ``dtype`` (5.96e-8 for float32, 1.11e-16 for float64)."""
    return float(numpy.finfo(numpy.dtype(dtype)).eps) / 2.0


def target(rtol: float, R0: float, M: float, dtype, X: float = 0.0) -> tuple[float, bool]:
    """The residual a solve must reach, and whether it is the precision floor (never below
    the smallest normal number of ``dtype``: a residual there is no longer resolved).
    ``M``: the largest scaled term magnitude, ``X``: the largest |x| (see the module)."""
    floor = max(FLOOR_ULPS * unit_roundoff(dtype) * max(M, X), float(numpy.finfo(dtype).tiny))
    goal = rtol * R0
    return (floor, True) if floor >= goal else (goal, False)


def goal_x(dtype, X: float) -> float:
    """How little an iterate at the precision floor must still change per iteration:
    ``FLOOR_ULPS · u · X`` (field units), the size of the changes rounding alone makes."""
    return max(FLOOR_ULPS * unit_roundoff(dtype) * X, float(numpy.finfo(dtype).tiny))


def diverging(R: float, R0: float, finite: bool) -> bool:
    return not finite or not math.isfinite(R) or R > DIVERGENCE_GROWTH * max(R0, 0.0) > 0.0


@dataclass
class SolveInfo:
    """What one implicit solve of one substrate did.

    ``iterations``: V-cycles (multigrid) or CG iterations (pcg), those of a fallback
    included; ``residual``: the final true scaled residual over the starting one, R/R_0
    (0 when R_0 = 0); ``converged``: R reached the target; ``target``: that target, in
    the field's units; ``floor``: the target was the precision floor; ``method``: the
    solver that produced the result (``multigrid``, ``pcg``, or ``multigrid→pcg`` after a
    fallback, ``note`` saying why);
    ``diverged``: the iteration that produced the result diverged (no usable result: a
    multigrid solve that diverges falls back, and then it is the fallback's flag);
    ``restarts``: restarts (a rejected predictor, CG restarted on its true residual);
    ``R``, ``R0``: the final and starting scaled residuals (field units); ``clamped``: the
    total of the negative values a θ = 1 result was cleared of (field units × voxels).
    """

    iterations: int
    residual: float
    converged: bool
    target: float = math.nan
    floor: bool = False
    method: str = ""
    diverged: bool = False
    restarts: int = 0
    R: float = math.nan
    R0: float = math.nan
    clamped: float = 0.0
    note: str = ""
