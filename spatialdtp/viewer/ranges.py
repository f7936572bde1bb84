"""Contrast limits fitted to what a field does over the run, from a small sample of frames.

Limits fixed by the model (0 to a blood level, 5 decades of cell density below capacity)
left most fields using a sliver of their colormap: persisters never reached half of
theirs, the chemokine used 1 %, the drug looked flat. Here each field's limits are robust
percentiles of its values over the run, so the colour ramp spans what the field actually
does, and they stay fixed for the run, so a fading field is still seen to fade.

The values come from :data:`SAMPLE_FRAMES` frames spread evenly over the run (first and
last included) and, on big grids, every n-th voxel along each axis (about
:data:`SAMPLE_VOXELS` per frame): opening a run reads that sample and no more.
:class:`Sample` keeps it per field, so layers derived from the same fields (the enrichment
from S, P and R) read nothing again. NumPy and dask only (no napari).
"""
from __future__ import annotations

import math

import numpy as np

SAMPLE_FRAMES = 8
SAMPLE_VOXELS = 1 << 18
# Robust ends of a field's values: a few hot voxels (a vessel wall, a dosing spike) must not
# take the colour ramp, nor a few empty ones the floor.
LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5
# Cell densities: percentiles of the occupied voxels only (an empty stroma would pin the
# floor), from the 5th, so the tumour's body rather than its thin rim sets the dark end.
CELL_LOW_PERCENTILE = 5.0
MIN_DECADES = 0.5        # a log layer spans at least this (noise is not blown up to a ramp)


def sample_indices(n: int, k: int = SAMPLE_FRAMES) -> list[int]:
    """Up to ``k`` frame indices spread evenly over ``n`` frames, first and last included."""
    if n <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(k, n))})


def _stride(shape) -> tuple[slice, ...]:
    size = math.prod(shape)
    step = max(1, math.ceil((size / SAMPLE_VOXELS) ** (1.0 / max(len(shape), 1))))
    return tuple(slice(None, None, step) for _ in shape)


class Sample:
    """The sampled frames of a run's fields (read once per field, on first use)."""

    def __init__(self, source):
        self.source = source
        self.indices = sample_indices(len(source.times))
        self._fields: dict[str, np.ndarray] = {}

    def __call__(self, name: str) -> np.ndarray:
        """Field ``name`` at the sampled frames and voxels, float64 ``(k, ...)``."""
        if name not in self._fields:
            if not self.indices:
                self._fields[name] = np.zeros((0,), dtype=np.float64)
            else:   # frame by frame, not through dask: a graph per frame costs more
                space = _stride(self.source.grid.shape)
                self._fields[name] = np.stack([
                    np.asarray(self.source.frame(name, i), dtype=np.float64)[space]
                    for i in self.indices])
        return self._fields[name]


def linear_limits(values, fallback: tuple[float, float]) -> tuple[float, float]:
    """(low, high) robust percentiles of the finite ``values``; ``fallback`` when they are
    all equal (a field that never varies has no range to fit)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size:
        lo, hi = np.percentile(values, [LOW_PERCENTILE, HIGH_PERCENTILE])
        if hi > lo:
            return float(lo), float(hi)
    return fallback


def log_limits(values, floor: float, fallback: tuple[float, float],
               max_decades: float) -> tuple[float, float]:
    """(low, high) of log₁₀ of the ``values`` above ``floor``: the high end a robust top,
    the low end :data:`CELL_LOW_PERCENTILE` of them, at least :data:`MIN_DECADES` and at
    most ``max_decades`` below the top."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & (values > floor)]
    if not values.size:
        return fallback
    logs = np.log10(values)
    lo, hi = np.percentile(logs, [CELL_LOW_PERCENTILE, HIGH_PERCENTILE])
    lo = min(max(lo, hi - max_decades), hi - MIN_DECADES)
    return float(lo), float(hi)


def symmetric_limits(values, least: float) -> tuple[float, float]:
    """(−a, a) with a the robust top of |values| (at least ``least``): a diverging colormap
    stays centred on 0."""
    values = np.abs(np.asarray(values, dtype=np.float64))
    values = values[np.isfinite(values)]
    top = float(np.percentile(values, HIGH_PERCENTILE)) if values.size else least
    top = max(top, least)
    return -top, top
