"""How much memory a run needs, as named contributions. Still main's single formula
(2 grids per field + 30 for solver and temporaries): not yet checked against measured RSS
(issue 14 item 7 is open)."""
from __future__ import annotations

import math

from .cells import CELL_TYPES


def n_fields(cfg) -> int:
    """Fields of the state: substrates and drugs (keyed like all_substrates), cell types,
    one exposure map per drug."""
    subs = dict(cfg.substrates) | dict(cfg.treatment.drugs)
    return len(subs) + len(CELL_TYPES) + len(cfg.treatment.drugs)


def memory_contributions(cfg, backend=None) -> dict[str, int]:
    # a well-mixed tissue is one voxel whatever grid.shape says
    size = 1 if cfg.tissue.kind == "well_mixed" else math.prod(cfg.grid.shape)
    item = 4 if cfg.backend.precision == "float32" else 8
    return {"state": size * item * (2 * n_fields(cfg) + 30)}


def estimate_memory(cfg, backend=None) -> int:
    return int(sum(memory_contributions(cfg, backend).values()))
