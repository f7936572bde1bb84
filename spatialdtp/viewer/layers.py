"""napari layers of a run: which layers, how each looks, and where it sits in space and time.

:func:`layer_data` turns a run *source* into napari layer-data tuples ``(data, meta,
layer_type)``. A source is a :class:`~spatialdtp.viewer.runfile.RunFile` or a live run
(:class:`~spatialdtp.viewer.live.LiveRun`): anything with ``name``, ``cfg``, ``grid``,
``capacity``, ``drugs``, ``times`` (minutes), ``fields`` (name -> units, long_name, kind),
``frames(name)`` (a dask array ``(T, *grid)``), ``vessels()`` and ``observables()``.

The layers, bottom to top (hidden ones are a click away in the layer list):

=====================  ======  ==========================================================
layer                  shown   what it is
=====================  ======  ==========================================================
each substrate         no      oxygen (mmHg), glucose (mM), HGF (ng/mL), chemokine (nM),
                               each drug (µM); own colormap
``auc_<drug>``         no      local drug exposure (µM·min)
``protection``         no      θ·H: how much the HGF–MET signal lowers persister kill
``F CAF``, ``M TAM``   no      CAF and TAM densities (log₁₀ cells/voxel)
``S``, ``P``, ``R``    yes     sensitive (cyan), persister (yellow), resistant (magenta)
                               densities (log₁₀ cells/voxel), blended additively
``vessels``            yes     vessel voxels (labels)
``niches``             yes     CAF niches (green) and TAM niches (orange): F + M at or
                               above ``run.niche_threshold`` × capacity; outlines in 2D,
                               volumes in 3D
=====================  ======  ==========================================================

Contrast limits are fixed for the whole run, so a fading field is seen to fade, and they
come from the model rather than from the frames (no frame is read to open a run). Cell
densities span decades under treatment (S falls by over five orders of magnitude while a
few persisters remain), so cell layers show log₁₀ cells/voxel from 10⁻⁵ × capacity
(black) to the voxel capacity (full colour); the status bar reads the log. Oxygen and
glucose run from 0 to their blood level; HGF and chemokine from 0 to their
half-saturation constants (K_hgf, K_q: full colour is half-maximal effect); drugs from 0
to the highest plasma level of the run; exposures from 0 to the plasma AUC; protection
from 0 to θ.

Space is in µm (``scale`` = voxel edge, voxel centres at (i + ½)·dx, as in the model) and
time in days (``scale`` = output interval); napari's scale bar and status bar read both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import CELL_TYPES
from . import maps

MINUTES_PER_DAY = 1440.0
CELL_DECADES = 5  # cell layers show log10 density over this many decades below capacity

# colormaps that start at black, so additive layers and a black canvas read alike
SUBSTRATE_COLORMAPS = {"oxygen": "inferno", "glucose": "cividis", "hgf": "bop purple",
                       "chemokine": "gray"}
DRUG_COLORMAP, EXPOSURE_COLORMAP, PROTECTION_COLORMAP = "bop blue", "magma", "viridis"
CELL_STYLE = {  # layer name, colormap, shown
    "S": ("S sensitive", "cyan", True),
    "P": ("P persister", "yellow", True),
    "R": ("R resistant", "magenta", True),
    "F": ("F CAF", "green", False),
    "M": ("M TAM", "bop orange", False),
}
LOG_SUFFIX = " (log₁₀)"
NICHE_COLOURS = {maps.CAF_NICHE: "#39ff6a", maps.TAM_NICHE: "#ff9a1f"}
VESSEL_COLOUR = "#ff3b3b"
TRANSPARENT = "transparent"


@dataclass(frozen=True)
class TimeAxis:
    """Frame index <-> napari's world time (days). Frames are written every output
    interval, so world time = t0 + index·step; ``days`` are the frames' true times."""

    t0: float            # days of frame 0
    step: float          # days between frames (the output interval)
    days: np.ndarray     # days of every frame

    @classmethod
    def of(cls, source) -> "TimeAxis":
        days = np.asarray(source.times, dtype=np.float64) / MINUTES_PER_DAY
        step = source.cfg.run.output_interval_hours / 24.0
        return cls(float(days[0]) if days.size else 0.0, step, days)

    def world(self, index: int) -> float:
        return self.t0 + index * self.step

    def index(self, world: float) -> int:
        """The frame shown at world time ``world`` (days)."""
        if self.days.size == 0:
            return 0
        return int(np.clip(round((world - self.t0) / self.step), 0, self.days.size - 1))

    def nearest(self, day: float) -> int:
        """The frame whose true time is closest to ``day``."""
        return int(np.argmin(np.abs(self.days - day))) if self.days.size else 0


def _placement(source, timed: bool) -> dict:
    """scale, translate, units and axis labels of a layer (with or without the time axis)."""
    g = source.grid
    space = dict(scale=(g.dx,) * g.ndim, translate=(0.5 * g.dx,) * g.ndim,
                 units=("µm",) * g.ndim, axis_labels=tuple(g.axes))
    if not timed:
        return space
    axis = TimeAxis.of(source)
    return dict(scale=(axis.step, *space["scale"]), translate=(axis.t0, *space["translate"]),
                units=("day", *space["units"]),
                axis_labels=("time (days)", *space["axis_labels"]))


# --------------------------------------------------------------------------- contrast
def _finite_max(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else 0.0


def plasma_peak(source, drug: str) -> float:
    """The highest plasma level (µM) of ``drug`` over the run (its schedule's dose if the
    run recorded none yet)."""
    peak = _finite_max(source.observables().get(f"plasma_{drug}", []))
    if peak > 0:
        return peak
    dose = source.cfg.treatment.drugs[drug].schedule.dose if drug in source.cfg.treatment.drugs \
        else 0.0
    return float(dose) if dose and dose > 0 else 1.0


def plasma_auc(source, drug: str) -> float:
    """∫ plasma level dt over the run (µM·min): no voxel's exposure can exceed it."""
    obs = source.observables()
    t, c = obs.get("time", []), obs.get(f"plasma_{drug}", [])
    if len(t) >= 2 and len(c) == len(t):
        c = np.nan_to_num(np.asarray(c, dtype=np.float64))
        t = np.asarray(t, dtype=np.float64)
        auc = float(np.sum(0.5 * (c[1:] + c[:-1]) * np.diff(t)))
        if auc > 0:
            return auc
    return plasma_peak(source, drug) * source.cfg.run.days * MINUTES_PER_DAY


def contrast_limits(source, name: str) -> tuple[float, float]:
    """Fixed contrast limits of field ``name`` (see the module docstring for the choice)."""
    cfg, kind = source.cfg, source.fields.get(name, {}).get("kind")
    if name in CELL_TYPES or kind == "cell":
        top = math.log10(source.capacity)
        return top - CELL_DECADES, top
    if kind == "exposure" or name.startswith("auc_"):
        return 0.0, plasma_auc(source, name[len("auc_"):])
    if name in source.drugs:
        return 0.0, plasma_peak(source, name)
    sub = cfg.substrates.get(name)
    scale = 0.0
    if sub is not None:
        scale = max(sub.blood, sub.initial, sub.boundary_value or 0.0)
    half = {"hgf": cfg.cells.switching.hgf_k, "chemokine": cfg.cells.macrophage.chemokine_k}
    scale = max(scale, half.get(name, 0.0))
    return 0.0, scale if scale > 0 and math.isfinite(scale) else 1.0


# --------------------------------------------------------------------------- layers
def _meta(source, name: str, role: str, **extra) -> dict:
    info = source.fields.get(name, {})
    return {"spatialdtp": {"source": source, "field": name, "role": role},
            "units": info.get("units", ""), "long_name": info.get("long_name", name), **extra}


def _niche_frames(F, M, threshold: float, outlined: bool):
    labels = maps.niche_labels(F, M, threshold)
    if outlined:  # draw each frame's niches as contours (the time axis is not outlined)
        labels = np.stack([maps.outline(frame) for frame in labels])
    return labels


def layer_data(source) -> list[tuple]:
    """The run as napari layer-data tuples, bottom layer first (see the module docstring)."""
    import dask.array as da

    cfg, g = source.cfg, source.grid
    timed = _placement(source, timed=True)
    layers = []
    for name, info in source.fields.items():
        if info.get("kind") == "cell":
            continue
        is_drug = name in source.drugs
        exposure = info.get("kind") == "exposure"
        cmap = EXPOSURE_COLORMAP if exposure else DRUG_COLORMAP if is_drug \
            else SUBSTRATE_COLORMAPS.get(name, "gray")
        layers.append((source.frames(name), dict(
            name=name, colormap=cmap, contrast_limits=contrast_limits(source, name),
            blending="translucent", visible=False,
            metadata=_meta(source, name, "exposure" if exposure else "substrate"),
            **timed), "image"))

    met = maps.met_drugs(cfg)
    hgf = source.frames("hgf")

    def _protection(h, *drug_frames):
        return maps.protection(h, dict(zip(met, drug_frames)), cfg)

    theta = cfg.cells.switching.theta
    layers.append((da.map_blocks(_protection, hgf, *[source.frames(d) for d in met],
                                 dtype=np.float32, meta=np.empty((0,) * hgf.ndim, np.float32)),
                   dict(name="protection", colormap=PROTECTION_COLORMAP,
                        contrast_limits=(0.0, theta if theta > 0 else 1.0),
                        blending="translucent", visible=False,
                        metadata=_meta(source, "protection", "protection",
                                       units="1", long_name="θ·H: fraction of persister kill "
                                       "removed by the HGF–MET signal"),
                        **timed), "image"))

    for name in ("F", "M", "S", "P", "R"):
        label, cmap, shown = CELL_STYLE[name]
        limits = contrast_limits(source, name)
        log_density = da.log10(da.maximum(source.frames(name), 10.0 ** limits[0]))
        layers.append((log_density.astype(np.float32), dict(
            name=label + LOG_SUFFIX, colormap=cmap, contrast_limits=limits,
            blending="additive", visible=shown,
            metadata=_meta(source, name, "cell", units="log10 cells/voxel"), **timed),
            "image"))

    space = _placement(source, timed=False)
    vessels = (source.vessels() > 0.5).astype(np.uint8)
    layers.append((vessels, dict(
        name="vessels", colormap={None: TRANSPARENT, 0: TRANSPARENT, 1: VESSEL_COLOUR},
        opacity=0.5, blending="translucent",
        metadata=_meta(source, "vessels", "vessels", units="", long_name="vessel voxels"),
        **space), "labels"))

    F, M = source.frames("F"), source.frames("M")
    threshold = cfg.run.niche_threshold * source.capacity       # cells/voxel
    niches = da.map_blocks(_niche_frames, F, M, threshold, g.ndim == 2,
                           dtype=np.uint8, meta=np.empty((0,) * F.ndim, np.uint8))
    layers.append((niches, dict(
        name="niches",
        colormap={None: TRANSPARENT, 0: TRANSPARENT, **NICHE_COLOURS},
        opacity=1.0 if g.ndim == 2 else 0.5, blending="translucent",
        metadata=_meta(source, "niches", "niches", units="", long_name=(
            f"CAF (F >= M) and TAM (M > F) niches: F + M >= {threshold:.3g} cells/voxel "
            f"({cfg.run.niche_threshold:g} of capacity)")),
        **timed), "labels"))
    return layers


def source_of(layer):
    """The run source a layer was made from, or None for other layers."""
    info = getattr(layer, "metadata", {}).get("spatialdtp")
    return info["source"] if isinstance(info, dict) else None
