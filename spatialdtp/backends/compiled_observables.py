"""Launchers of the observable reductions (``kernels/observables.cu``)."""
from __future__ import annotations

import numpy as np

from ..config import CELL_TYPES
from .base import host_array

_FIXED = 9           # sums before the niche labels' (see kernels/observables.cu)
_MAX_LABELS = 32     # OBS_MAX_LABELS


def observable_sums(ops, observer, state, labels, T0, n_labels: int):
    """The float64 sums of :meth:`Observer.sums_reference`, in its order, from one kernel
    pass (per-chunk partials), a sum over the chunks on the device and one transfer."""
    if not 0 <= n_labels <= _MAX_LABELS:
        raise ValueError(f"n_labels={n_labels}: the observables kernel sums at most "
                         f"{_MAX_LABELS} niche labels")
    xp, n = ops.xp, state.grid.size
    layout = state.layout
    drugs = tuple(observer.drugs)
    k = _FIXED + 3 * n_labels + len(drugs)
    chunks = ops.lib.reduction_chunks(n)
    names = CELL_TYPES + ("oxygen", "hgf") + drugs
    planes = ops.cached(("observable_planes", names), lambda: xp.asarray(
        np.array([layout.index[f] for f in names], dtype=np.int64)))
    partial = ops.cached(("observable_partials", k, chunks),
                         lambda: xp.empty((k, chunks), xp.float64))
    labels = xp.ascontiguousarray(labels, dtype=np.uint8)
    T0 = None if T0 is None else xp.ascontiguousarray(T0, dtype=ops.dtype)
    ops.lib.launch("observable_sums", chunks, n, state.data, planes, len(drugs), labels, T0,
                   n_labels, float(observer.run_cfg.hypoxic_threshold), partial)
    return host_array(partial.sum(axis=1))                         # the one transfer
