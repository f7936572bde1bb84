"""Launchers of the multigrid stencil kernels (``kernels/stencil.cu``)."""
from __future__ import annotations

from ..backends.reference import ReferenceOps


def stencil(ops, level, x, out, rhs=None, mass=None):
    return ReferenceOps(ops.xp).stencil(level, x, out, rhs, mass)      # TODO kernel


def jacobi(ops, level, b, x, omega_over_diag):
    ReferenceOps(ops.xp).jacobi(level, b, x, omega_over_diag)          # TODO kernel
