"""Maps derived from one frame of a run: where the CAF/TAM niches are, and how much the
HGF–MET signal protects persisters there. NumPy in, NumPy out (one frame at a time).

Niches are the voxels the niche measure counts (:mod:`spatialdtp.run.niche`):
F + M >= ``run.niche_threshold`` × capacity. :func:`niche_labels` tells them apart by
which stromal cell dominates: 1 = CAF niche (F >= M), 2 = TAM niche (M > F).

Protection is the fraction by which the local HGF–MET signal lowers the persister kill
rate, θ·H with H = hgf/(hgf + K_hgf)·(1 − B) and B the MET blockade of the met-class drugs
at their local concentrations (:meth:`spatialdtp.cells.CellKinetics.protection`). It is
computed with the model's own code, so it is exactly what the cells felt.

Persister enrichment is where persisters gather among the tumour cells: the persister
fraction P/(S + P + R) of each voxel over the tissue-wide fraction ΣP/Σ(S + P + R) of
the same frame (1 = as everywhere, 2 = twice the share). Its mean is not its point: a
voxel of few tumour cells weighs as much as a full one, so the ratio is left undefined
(NaN, drawn transparent) where the tumour is thinner than a floor (a fraction of the
frame's densest tumour voxel).
"""
from __future__ import annotations

import numpy as np

CAF_NICHE, TAM_NICHE = 1, 2
NICHE_NAMES = {CAF_NICHE: "CAF niche", TAM_NICHE: "TAM niche"}


def niche_labels(F, M, threshold: float) -> np.ndarray:
    """uint8 labels of the niche voxels: 0 none, 1 CAF niche (F >= M), 2 TAM niche (M > F),
    where F + M >= ``threshold`` (cells/voxel)."""
    F, M = np.asarray(F), np.asarray(M)
    niche = (F + M) >= threshold
    return np.where(niche, np.where(F >= M, CAF_NICHE, TAM_NICHE), 0).astype(np.uint8)


def enrichment(S, P, R, floor: float = 0.0) -> np.ndarray:
    """P/(S + P + R) per voxel divided by ΣP/Σ(S + P + R) over the frame; NaN where
    S + P + R <= ``floor`` × its largest value in the frame, or where the frame holds no
    persister. The floor is relative: runs differ by decades in how dense a tumour is."""
    S, P, R = (np.asarray(a, dtype=np.float64) for a in (S, P, R))
    tumour = S + P + R
    total_P, total = float(P.sum()), float(tumour.sum())
    out = np.full(tumour.shape, np.nan)
    if total_P <= 0 or total <= 0:
        return out
    inside = tumour > floor * float(tumour.max())
    out[inside] = (P[inside] / tumour[inside]) / (total_P / total)
    return out


def outline(labels) -> np.ndarray:
    """The labels kept only on their boundary: voxels with a face neighbour of another
    label (outside the grid counts as 0), so a niche is drawn as a contour."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, dtype=bool)
    padded = np.pad(labels, 1, mode="constant")
    inner = tuple(slice(1, -1) for _ in range(labels.ndim))
    for axis in range(labels.ndim):
        for shift in (-1, 1):
            neighbour = np.roll(padded, shift, axis=axis)[inner]
            edge |= neighbour != labels
    return np.where(edge, labels, 0).astype(labels.dtype)


def protection(hgf, drugs: dict, cfg) -> np.ndarray:
    """θ·H at every voxel (0 = no protection, θ = the most the model allows).

    ``hgf``: HGF (ng/mL) of one frame; ``drugs``: drug name -> local concentration (µM)
    of the same frame, needed for the met-class drugs (others may be left out);
    ``cfg``: the run's :class:`~spatialdtp.config.SpatialDTPConfig`.
    """
    from ..model.cells import CellKinetics
    from ..model.treatment import drug_effects

    hgf = np.asarray(hgf)
    missing = [d for d, dc in cfg.treatment.drugs.items()
               if dc.drug_class == "met" and d not in drugs]
    if missing:
        raise KeyError(f"drugs lacks the concentration of MET inhibitor(s) {missing}")
    # Only the MET blockade of the effects enters H; other drugs stand at 0.
    conc = {d: np.asarray(drugs[d]) if d in drugs else 0.0 for d in cfg.treatment.drugs}
    effects = drug_effects(cfg.treatment, conc)
    kinetics = CellKinetics(cfg.cells, capacity=1.0, vessels=np.zeros_like(hgf))
    # environment() also computes the oxygen, glucose and chemokine gates, which
    # protection() does not use: zeros stand in for them, so those fields are not read.
    zeros = np.zeros_like(hgf)
    env = kinetics.environment({"oxygen": zeros, "glucose": zeros, "hgf": hgf,
                                "chemokine": zeros}, effects)
    return np.broadcast_to(kinetics.protection(env), hgf.shape).astype(np.float32)


def met_drugs(cfg) -> tuple[str, ...]:
    """The drugs of the run whose class is ``met`` (their concentrations set the blockade)."""
    return tuple(d for d, dc in cfg.treatment.drugs.items() if dc.drug_class == "met")
