"""How much memory a run needs: the sum of named contributions (placeholder, refined below)."""
from __future__ import annotations

import math


def memory_contributions(cfg, backend=None) -> dict[str, int]:
    from .schema import n_fields

    size = math.prod(cfg.grid.shape)
    item = 4 if cfg.backend.precision == "float32" else 8
    return {"state": size * item * (2 * n_fields(cfg) + 30)}


def estimate_memory(cfg, backend=None) -> int:
    return int(sum(memory_contributions(cfg, backend).values()))
