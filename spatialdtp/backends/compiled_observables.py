"""Launchers of the observable reductions (``kernels/observables.cu``)."""
from __future__ import annotations

import numpy as np

from ..config import CELL_TYPES
from .base import host_array

_FIXED = 12          # sums before the drugs' (see kernels/observables.cu)


def observable_sums(ops, observer, state, near, tumour_floor):
    """The float64 sums of :meth:`Observer.sums_reference`, in its order, from one kernel
    pass (per-chunk partials), a sum over the chunks on the device and one transfer."""
    xp, n = ops.xp, state.grid.size
    layout = state.layout
    drugs = tuple(observer.drugs)
    k = _FIXED + len(drugs)
    chunks = ops.lib.reduction_chunks(n)
    names = CELL_TYPES + ("oxygen", "hgf") + drugs
    planes = ops.cached(("observable_planes", names), lambda: xp.asarray(
        np.array([layout.index[f] for f in names], dtype=np.int64)))
    partial = ops.cached(("observable_partials", k, chunks),
                         lambda: xp.empty((k, chunks), xp.float64))
    near = xp.ascontiguousarray(near)
    ops.lib.launch("observable_sums", chunks, n, state.data, planes, len(drugs), near,
                   float(tumour_floor), float(observer.run_cfg.hypoxic_threshold), partial)
    return host_array(partial.sum(axis=1))                         # the one transfer
