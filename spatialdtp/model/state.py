"""One container for every field of the tissue.

All fields live in a single array ``data`` of shape ``(n_fields, *grid.shape)`` so that a
backend can update every field of a voxel in one pass (one thread per voxel on a GPU,
contiguous field planes for the line solves). Fields are addressed by name.

Field order is fixed: substrates first (oxygen, glucose, hgf, chemokine, then drugs),
then cell densities (S, P, R, F, M), then per-voxel drug exposure accumulators
(``auc_<drug>``: the time integral of the local drug concentration).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import CELL_TYPES
from .grid import Grid

CELL_LONG_NAMES = {
    "S": "drug-sensitive cycling cells",
    "P": "reversible drug-tolerant persisters",
    "R": "stably resistant cells",
    "F": "cancer-associated fibroblasts (CAFs)",
    "M": "tumour-associated macrophages (TAMs)",
}
TUMOUR_TYPES = ("S", "P", "R")


def auc_name(drug: str) -> str:
    return f"auc_{drug}"


@dataclass
class FieldLayout:
    """Names, units and index of each field in the state array."""

    substrates: tuple[str, ...]
    drugs: tuple[str, ...]
    units: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        missing = [d for d in self.drugs if d not in self.substrates]
        if missing:
            raise ValueError(f"drugs {missing} are not substrates {list(self.substrates)}")
        self.cells = CELL_TYPES
        self.accumulators = tuple(auc_name(d) for d in self.drugs)
        self.names = self.substrates + self.cells + self.accumulators
        self.index = {name: i for i, name in enumerate(self.names)}
        for c in self.cells:
            self.units.setdefault(c, "cells/voxel")
        for d in self.drugs:
            self.units.setdefault(auc_name(d), f"{self.units.get(d, 'µM')}·min")

    def __len__(self) -> int:
        return len(self.names)

    def slice_of(self, group: str) -> slice:
        """Contiguous block of one group: 'substrates', 'cells' or 'accumulators'."""
        start = {"substrates": 0, "cells": len(self.substrates),
                 "accumulators": len(self.substrates) + len(self.cells)}[group]
        return slice(start, start + len(getattr(self, group)))


class State:
    """Every field of the tissue plus the static maps (vessels), on one backend.

    ``data`` is an ``xp`` array (NumPy or CuPy); ``state["oxygen"]`` is a view into it.
    """

    def __init__(self, grid: Grid, layout: FieldLayout, xp=np, dtype=np.float32,
                 data=None, vessels=None):
        self.grid = grid
        self.layout = layout
        self.xp = xp
        self.dtype = np.dtype(dtype)
        shape = (len(layout),) + grid.shape
        if data is None:
            data = xp.zeros(shape, dtype=self.dtype)
        if tuple(data.shape) != shape:
            raise ValueError(f"state data has shape {tuple(data.shape)}, expected {shape}")
        self.data = data
        self.vessels = xp.zeros(grid.shape, dtype=self.dtype) if vessels is None else vessels

    @staticmethod
    def nbytes_for(grid: Grid, layout: FieldLayout, dtype) -> int:
        """Bytes of the state array plus static maps (what allocation will need)."""
        return (len(layout) + 1) * grid.size * np.dtype(dtype).itemsize

    def __getitem__(self, name: str):
        try:
            return self.data[self.layout.index[name]]
        except KeyError:
            raise KeyError(f"no field {name!r}; fields are {list(self.layout.names)}") from None

    def __setitem__(self, name: str, value):
        self.data[self.layout.index[name]] = value

    def __contains__(self, name: str) -> bool:
        return name in self.layout.index

    @property
    def names(self) -> tuple[str, ...]:
        return self.layout.names

    @property
    def substrates(self):
        return self.data[self.layout.slice_of("substrates")]

    @property
    def cells(self):
        return self.data[self.layout.slice_of("cells")]

    def copy(self) -> "State":
        return State(self.grid, self.layout, self.xp, self.dtype,
                     data=self.data.copy(), vessels=self.vessels.copy())
