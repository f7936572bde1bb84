"""Launchers of the cell-transport kernels (``kernels/transport.cu``)."""
from __future__ import annotations

from ..backends.reference import ReferenceOps


def move_cells(ops, state, motilities, chi, tau):
    ReferenceOps(ops.xp).move_cells(state, motilities, chi, tau)       # TODO kernel
