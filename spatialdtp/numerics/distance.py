"""Exact squared Euclidean distance to a mask, one axis at a time.

The squared distance from a voxel i to the nearest True voxel j of a mask,
``min_j Σ_k (u·(i_k − j_k))²`` (u the voxel size), separates over the axes: starting from
0 on the mask and inf elsewhere, one min-plus pass per axis with the parabola (u·s)²,

    best(i) = min_{|s| <= top} d2(i + s e_axis) + (u·s)²,

gives the exact squared distance after the last axis (Felzenszwalb–Huttenlocher's
separable form; here the envelope is taken by brute force over the shifts, which is all
array work and exact up to ``top`` shifts per axis: a distance up to ``top·u`` is exact, a
longer one comes out longer than that or inf).

:func:`min_plus_pass` is the NumPy/CuPy twin of ``kernels/niche_distance.cu``.
"""
from __future__ import annotations

import numpy as np


def min_plus_pass(d2, axis: int, top: int, xp=np, unit: float = 1.0, out=None,
                  reachable=None):
    """One axis of the separable distance: ``best(i) = min_{|s| <= top} d2(i + s e_axis) +
    (unit·s)²`` (shifts leaving the grid are skipped), in ``d2``'s dtype, into ``out`` (a
    new array when None; not ``d2`` itself).

    ``reachable`` (bool, ``d2``'s shape reduced along ``axis`` with keepdims): stop at the
    first shift whose parabola exceeds every distance still open in a reachable line — no
    larger shift can lower one (one host read per shift; without it every shift up to
    ``top`` is taken, with no host read).

    A ``uint8`` ``d2`` (the niche labels' squared voxel distances where they stay below
    255, :data:`BEYOND` standing for every larger one) adds in a wider integer and
    saturates at 255, as ``niche_distance_pass_u8`` does."""
    n = d2.shape[axis]
    best = out if out is not None else xp.empty_like(d2)
    best[...] = d2

    def along(sl):
        return tuple(sl if k == axis else slice(None) for k in range(d2.ndim))

    for s in range(1, min(top, n - 1) + 1):
        step = (s * unit) ** 2
        if reachable is not None and float(xp.max(xp.where(reachable, best, 0.0))) <= step:
            break
        hi, lo = along(slice(s, None)), along(slice(None, n - s))
        xp.minimum(best[hi], _plus(d2[lo], step, xp), out=best[hi])
        xp.minimum(best[lo], _plus(d2[hi], step, xp), out=best[lo])
    return best


#: the byte squared distance that stands for "255 or more" (beyond the reach)
BEYOND = 255


def _plus(d, step, xp):
    """``d + step`` in ``d``'s dtype; for bytes saturating at :data:`BEYOND`."""
    if d.dtype != np.uint8:
        return d + step
    return xp.minimum(d.astype(np.int32) + int(step), BEYOND).astype(np.uint8)
