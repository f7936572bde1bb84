"""Launchers of the observables' kernels: the reductions (``kernels/observables.cu``), the
niche distance's passes (``kernels/niche_distance.cu``) and the niche voxels and labels
(``kernels/niche_labels.cu``)."""
from __future__ import annotations

import numpy as np

from ..config import CELL_TYPES
from ..numerics import distance, niche_labels
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
    plain = tuple(observer.drugs) + tuple(observer.also_totalled)
    k = _FIXED + 3 * n_labels + len(plain)
    chunks = ops.lib.reduction_chunks(n)
    names = CELL_TYPES + ("oxygen", "hgf") + plain
    planes = ops.cached(("observable_planes", names), lambda: xp.asarray(
        np.array([layout.index[f] for f in names], dtype=np.int64)))
    partial = ops.cached(("observable_partials", k, chunks),
                         lambda: xp.empty((k, chunks), xp.float64))
    labels = xp.ascontiguousarray(labels, dtype=np.uint8)
    T0 = None if T0 is None else xp.ascontiguousarray(T0, dtype=ops.dtype)
    ops.lib.launch("observable_sums", chunks, n, state.data, planes, len(plain), labels, T0,
                   n_labels, float(observer.run_cfg.hypoxic_threshold), partial)
    return host_array(partial.sum(axis=1))                         # the one transfer


def niche_mask(ops, F, M, threshold: float):
    """The niche voxels ``(F + M) >= threshold`` (a boolean mask, written by the kernel as
    bytes 1/0) in one pass: no F + M array."""
    out = ops.xp.empty(F.shape, np.bool_)
    ops.lib.launch("niche_mask", F.size, F, M, float(threshold), out)
    return out


def label_voxels(ops, niche, k, code, n_strata: int, near_cut: float, far_cut: float):
    """The niche contrast's labels in one pass of ``niche_labels`` (a float64 distance,
    on grids whose bound reaches 2**24, takes the array twin)."""
    xp = ops.xp
    kernel = {np.dtype(np.float32): "niche_labels", np.dtype(np.uint8): "niche_labels_u8",
              None: "niche_labels"}.get(None if k is None else k.dtype)
    if kernel is None:
        return niche_labels.label_voxels(niche, k, code, n_strata, near_cut, far_cut, xp)
    out = xp.empty(niche.shape, np.uint8)
    ops.lib.launch(kernel, niche.size, k, niche, code, int(n_strata), float(near_cut),
                   float(far_cut), out)
    return out


def min_plus_pass(ops, d2, axis: int, top: int):
    """One axis of the squared voxel distance (``niche_distance_pass``, or its byte form
    ``niche_distance_pass_u8`` for the labels' distance where it stays below 255:
    ``run.niche.label_distance_dtype``) into a new array. The kernels are float32 (the
    distance's integers are exact there while below 2**24, ``run.niche.distance_dtype``)
    and bytes; a float64 distance, on grids whose bound reaches 2**24, takes the array
    twin."""
    xp = ops.xp
    kernel = {np.dtype(np.float32): "niche_distance_pass",
              np.dtype(np.uint8): "niche_distance_pass_u8"}.get(d2.dtype)
    if kernel is None:
        return distance.min_plus_pass(d2, axis, top, xp)
    out = xp.empty_like(d2)
    stride = int(np.prod(d2.shape[axis + 1:], dtype=np.int64))
    ops.lib.launch(kernel, d2.size, d2, out, d2.shape[axis], stride,
                   min(top, d2.shape[axis] - 1))
    return out
