"""The Cartesian tissue grid: 2D ``(y, x)`` or 3D ``(z, y, x)`` voxels of edge ``dx`` µm.

A 2D grid is a tissue section one voxel thick, so a voxel's volume is ``dx**3`` in 2D as
in 3D; that keeps per-cell rates (uptake, secretion, capacity) the same in both. The
single voxel ``(1, 1)`` (:data:`POINT`) is the well-mixed tissue (``tissue.kind=well_mixed``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AXIS_NAMES = {2: ("y", "x"), 3: ("z", "y", "x")}
#: the shape of the well-mixed tissue: one voxel, no neighbours
POINT = (1, 1)


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, ...]
    dx: float  # voxel edge, µm

    def __post_init__(self):
        shape = tuple(int(n) for n in self.shape)
        object.__setattr__(self, "shape", shape)
        if len(shape) not in AXIS_NAMES:
            raise ValueError(f"grid.shape={list(shape)}: a grid has 2 (y, x) or 3 (z, y, x) axes")
        if any(n < 3 for n in shape) and shape != POINT:
            raise ValueError(f"grid.shape={list(shape)}: every axis needs at least 3 voxels")
        if not self.dx > 0:
            raise ValueError(f"grid.dx={self.dx}: the voxel edge must be > 0 µm")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def axes(self) -> tuple[str, ...]:
        return AXIS_NAMES[self.ndim]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def voxel_volume(self) -> float:
        """µm³ (2D sections are one voxel thick)."""
        return self.dx**3

    @property
    def extent(self) -> tuple[float, ...]:
        """Physical size of each axis in µm."""
        return tuple(n * self.dx for n in self.shape)

    def coordinates(self) -> list[np.ndarray]:
        """Voxel-centre coordinates (µm) along each axis, as 1D arrays."""
        return [(np.arange(n) + 0.5) * self.dx for n in self.shape]

    def mesh(self) -> list[np.ndarray]:
        """Voxel-centre coordinates broadcast to the full grid (``indexing='ij'``)."""
        return np.meshgrid(*self.coordinates(), indexing="ij")
