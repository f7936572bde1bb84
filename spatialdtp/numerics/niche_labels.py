"""The niche voxels and the per-voxel labels of the niche contrast, pointwise.

The NumPy twins of ``kernels/niche_labels.cu`` (the measure itself is
:mod:`spatialdtp.run.niche`): a voxel is a niche voxel where F + M reaches the threshold;
a tumour-bed voxel of edge stratum s (``code`` s, 255 outside the bed) is labelled s when
its squared voxel distance k to the nearest niche voxel is at most the near cut, and
n_strata + s when it is beyond the far cut; every other voxel has no label; a niche voxel
carries :data:`NICHE_BIT` besides. The cuts are integers (squared voxel distances), so the
comparisons are exact in any precision.
"""
from __future__ import annotations

import numpy as np

#: the label of a voxel neither near nor far (or outside the tumour bed)
NO_LABEL = 127
#: the bit a niche voxel's label carries
NICHE_BIT = 128
#: the stratum code of a voxel outside the tumour bed
OUTSIDE_BED = 255


def niche_mask(F, M, threshold: float, xp=np):
    """``(F + M) >= threshold``: the niche voxels (CAF/TAM density at the threshold)."""
    return (F + M) >= threshold


def stratum_codes(stratum, xp=np):
    """The edge strata (int, −1 outside the bed) as one byte each (255 outside)."""
    return xp.where(stratum >= 0, stratum, OUTSIDE_BED).astype(xp.uint8)


def label_voxels(niche, k, code, n_strata: int, near_cut: float, far_cut: float, xp=np):
    """uint8 labels from the niche voxels ``niche``, their squared voxel distance ``k``
    (None: there is no niche voxel, every bed voxel is far) and the stratum codes."""
    bed = code != OUTSIDE_BED
    out = xp.full(niche.shape, NO_LABEL, dtype=xp.uint8)
    if k is None:
        out = xp.where(bed, code + n_strata, out).astype(xp.uint8)
    else:
        out = xp.where(bed & (k <= near_cut), code, out)
        out = xp.where(bed & (k > far_cut), code + n_strata, out).astype(xp.uint8)
    return xp.where(niche, out | NICHE_BIT, out).astype(xp.uint8)
