"""napari layers of a run: which layers, how each looks, and where it sits in space and time.

:func:`layer_data` turns a run *source* into napari layer-data tuples ``(data, meta,
layer_type)``. A source is a :class:`~spatialdtp.viewer.runfile.RunFile` or a live run
(:class:`~spatialdtp.viewer.live.LiveRun`): anything with ``name``, ``cfg``, ``grid``,
``capacity``, ``drugs``, ``times`` (minutes), ``fields`` (name -> units, long_name, kind),
``frames(name)`` (a dask array ``(T, *grid)``), ``frame(name, i)`` (one frame, NumPy),
``vessels()`` and ``observables()``.

The layers, bottom to top (hidden ones are a click away in the layer list):

=======================  ======  ========================================================
layer                    shown   what it is
=======================  ======  ========================================================
``F CAF``, ``M TAM``     no      CAF and TAM densities (log₁₀ cells/voxel)
``S``, ``R``, ``P``      yes     sensitive (grey, at 0.4 opacity), resistant (blue, 0.5)
                                 and persister (yellow, full) densities (log₁₀
                                 cells/voxel), blended additively
``P enrichment (log₂)``  no      log₂ of P/(S+P+R) in each voxel over the tissue-wide
                                 P/(S+P+R): diverging (RdBu), white at 1 (in 3D an
                                 iso-surface fitted to the run, :func:`enrichment_iso`,
                                 at least ×``LEAST_ISO``, in full red); undefined
                                 (transparent) where S+P+R < ``TUMOUR_FLOOR`` × the
                                 frame's densest voxel
each substrate           no      oxygen (mmHg), glucose (mM), HGF and chemokine (log₁₀
                                 ng/mL, nM), each drug (µM); own colormap
``auc_<drug>``           no      local drug exposure (µM·min)
``protection``           no      θ·H: how much the HGF–MET signal lowers persister kill
``vessels``              yes     vessel voxels (labels): outlines in 2D, volumes in 3D
``niches``               yes     CAF niches and TAM niches: F + M at or above
                                 ``run.niche_threshold`` × capacity; outlines in 2D,
                                 volumes in 3D
=======================  ======  ========================================================

The palette (:data:`PALETTE`) is colour-blind safe and keeps the persisters' colour
their own: the cells lie on the blue–yellow axis (P yellow, R its complementary blue, S
grey), so additive mixtures of them only fade towards grey; the outlines (CAF bluish
green, TAM vermillion, vessels reddish purple) sit off that axis, on top, with the cells
showing through their insides. The fields and maps sit above the cells and are opaque:
one shown covers the cells rather than mixing its colours with theirs.

Contrast limits are fitted to the run (:mod:`.ranges`: robust percentiles over a
sample of frames) and fixed for it, so a fading field is seen to fade and each colormap
spans what its field does. Cells, HGF and chemokine are shown as log₁₀ (they span
decades); the status bar reads the log, the Colorbars widget (:mod:`.colorbars`) the
field's real values (it reads the log from the ``units`` metadata). A field that never varies falls
back to limits from the model (:func:`contrast_limits`).

Space is in µm (``scale`` = voxel edge, voxel centres at (i + ½)·dx, as in the model) and
time in days (``scale`` = output interval); napari's scale bar and status bar read both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import CELL_TYPES
from . import maps, palette, ranges

MINUTES_PER_DAY = 1440.0
MARKER_INSET = 0.02  # the opening frame's marker stands this much of the plots' span inside
CELL_DECADES = 5  # cell layers hold log10 density floored this many decades below capacity
TUMOUR_FLOOR = 1e-3  # enrichment is undefined where S + P + R < this × the frame's densest
ISO_SHARE = 0.5     # 3D: the enrichment's iso-surface at this share of the run's top log₂
LEAST_ISO = 1.05    # ... and never below ×1.05 (a flat field then shows no surface, not noise)
SIGNAL_DECADES = 4   # HGF and chemokine are shown over at most this many decades

# the palette (its reasons in :mod:`.palette`), keyed as the layers use it
PALETTE = {**{c: palette.CELL_COLOURS[c] for c in ("S", "P", "R", "F", "M")},
           "caf_niche": palette.CAF_NICHE_COLOUR, "tam_niche": palette.TAM_NICHE_COLOUR,
           "vessels": palette.VESSEL_COLOUR}
# Persister enrichment, log2: ColorBrewer RdBu (colour-blind safe), white at 1
ENRICHMENT_COLOURS = ("#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7",
                      "#f4a582", "#d6604d", "#b2182b")
# substrate colormaps start at black, like the cell layers
SUBSTRATE_COLORMAPS = {"oxygen": "inferno", "glucose": "cividis", "hgf": "bop purple",
                       "chemokine": "gray"}
LOG_FIELDS = ("hgf", "chemokine")  # secreted near a few cells, they span decades
DRUG_COLORMAP, EXPOSURE_COLORMAP, PROTECTION_COLORMAP = "bop blue", "magma", "viridis"
CELL_STYLE = {  # layer name, shown, opacity: P in full, S and R as its context
    "S": ("S sensitive", True, 0.4),
    "P": ("P persister", True, 1.0),
    "R": ("R resistant", True, 0.5),
    "F": ("F CAF", False, 1.0),
    "M": ("M TAM", False, 1.0),
}
LOG_SUFFIX = " (log₁₀)"
ENRICHMENT = "P enrichment (log₂)"
NICHE_COLOURS = {maps.CAF_NICHE: PALETTE["caf_niche"], maps.TAM_NICHE: PALETTE["tam_niche"]}
VESSEL_COLOUR = PALETTE["vessels"]
TRANSPARENT = "transparent"
#: layers computed from the fields (not the run's own data): locked against editing
DERIVED_ROLES = ("niches", "vessels", "enrichment", "protection")


def ramp(name: str, colour: str) -> dict:
    """A colormap from black to ``colour`` (napari takes the dict as a Colormap)."""
    rgb = [int(colour[i:i + 2], 16) / 255.0 for i in (1, 3, 5)]
    return {"colors": [[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], "name": f"spatialdtp {name}"}


def diverging() -> dict:
    rgb = [[int(c[i:i + 2], 16) / 255.0 for i in (1, 3, 5)] + [1.0] for c in ENRICHMENT_COLOURS]
    return {"colors": rgb, "name": "spatialdtp enrichment (RdBu)"}


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

    def opening_frame(self, inset: float = MARKER_INSET) -> int:
        """The frame a run opens on: the latest one whose day lies at least ``inset`` of
        the run's span inside its end. The plots span the frames' days exactly, so the
        last frame's marker would sit on the axes' right edge, hidden by the frame."""
        n = self.days.size
        if n <= 2:
            return max(n - 1, 0)
        first, last = float(self.days[0]), float(self.days[-1])
        inside = np.flatnonzero(self.days <= last - inset * (last - first))
        return int(inside[-1]) if inside.size and inside[-1] > 0 else n - 2

    def stamp(self, index: int, treatment_start: float = 0.0) -> str:
        """The canvas's day stamp of frame ``index``: its day, and the day of treatment
        when treatment starts after a lead-in (``treatment_start`` in days)."""
        if self.days.size == 0:
            return ""
        day = float(self.days[int(np.clip(index, 0, self.days.size - 1))])
        text = f"day {format_day(day)}"
        if treatment_start > 0:
            text += f" (treatment day {format_day(day - treatment_start)})"
        return text


def format_day(day: float) -> str:
    """A day as the slider, the stamp and the plots' titles read it: at most 2 decimals."""
    return f"{round(day, 2):g}"


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
    """Limits of field ``name`` from the model alone, used where the run has no range to
    fit (a field that never varies, a run of one empty frame): cells 10⁻⁵ × capacity to
    capacity (log₁₀), oxygen and glucose 0 to their blood level, HGF and chemokine 0 to
    their half-saturation constants, drugs 0 to the plasma peak, exposures 0 to the
    plasma AUC."""
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
    scale = max(scale, _half_saturation(cfg).get(name, 0.0))
    return 0.0, scale if scale > 0 and math.isfinite(scale) else 1.0


def _half_saturation(cfg) -> dict:
    return {"hgf": cfg.cells.switching.hgf_k, "chemokine": cfg.cells.macrophage.chemokine_k}


def signal_floor(source, name: str) -> float:
    """The floor under a log-scaled signal (HGF, chemokine): :data:`SIGNAL_DECADES` below
    its half-saturation constant, where it does nothing the cells feel."""
    k = _half_saturation(source.cfg).get(name, 0.0)
    return (k if k > 0 else 1.0) * 10.0 ** -SIGNAL_DECADES


def fitted_limits(source, name: str, sample: ranges.Sample | None = None) -> tuple[float, float]:
    """Contrast limits of layer field ``name`` fitted to the run (:mod:`.ranges`): log₁₀
    for cells and for HGF and chemokine, linear otherwise."""
    sample = sample or ranges.Sample(source)
    model = contrast_limits(source, name)
    if name in CELL_TYPES or source.fields.get(name, {}).get("kind") == "cell":
        floor = source.capacity * 10.0 ** -CELL_DECADES
        return ranges.log_limits(sample(name), floor, model, CELL_DECADES)
    if name in LOG_FIELDS:
        floor = signal_floor(source, name)
        fallback = (math.log10(floor), math.log10(max(model[1], 10 * floor)))
        return ranges.log_limits(sample(name), floor, fallback, SIGNAL_DECADES)
    return ranges.linear_limits(sample(name), model)


def sampled_log_enrichment(sample: ranges.Sample) -> np.ndarray:
    """log₂ of the enrichment at every sampled voxel of every sampled frame, flat (NaN
    where undefined, −inf where a voxel holds no persister)."""
    S, P, R = sample("S"), sample("P"), sample("R")
    with np.errstate(divide="ignore"):
        logs = [np.log2(maps.enrichment(s, p, r, TUMOUR_FLOOR)).ravel()
                for s, p, r in zip(S, P, R)]
    return np.concatenate(logs) if logs else np.array([])


def enrichment_limits(source, sample: ranges.Sample) -> tuple[float, float]:
    """Symmetric log₂ limits of the enrichment over the sample, at least ±1 (×2 either
    way): 0, the tissue mean, stays at the colormap's white centre (the non-finite values
    are left out)."""
    return ranges.symmetric_limits(sampled_log_enrichment(sample), least=1.0)


def enrichment_iso(source, sample: ranges.Sample) -> float:
    """The log₂ enrichment of the 3D iso-surface: ``ISO_SHARE`` of the run's robust top
    (the ``ranges.HIGH_PERCENTILE`` of the positive log₂ over the sampled frames), so the
    surface wraps the run's most enriched places, at √ of its top enrichment; at least
    log₂ ``LEAST_ISO``.

    Why fitted, not fixed at ×2: the enrichment is P's share in a voxel over its share in
    the tissue, so it can never exceed 1 / (tissue share). Under treatment persisters are
    most of the tumour (89 % at day 14 of the 48³ spheroid run) and no voxel can reach ×2:
    a fixed ×2 surface showed nothing in any treated run."""
    logs = sampled_log_enrichment(sample)
    positive = logs[np.isfinite(logs) & (logs > 0)]
    top = float(np.percentile(positive, ranges.HIGH_PERCENTILE)) if positive.size else 0.0
    return max(ISO_SHARE * top, math.log2(LEAST_ISO))


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


def _log_enrichment(S, P, R, floor: float):
    with np.errstate(divide="ignore"):      # no persister in a voxel: −inf, drawn darkest
            return np.stack([np.log2(maps.enrichment(s, p, r, floor))
                         for s, p, r in zip(S, P, R)]).astype(np.float32)


def _lazy(function, *frames, dtype):
    """``function`` applied frame by frame to dask arrays of frames (one chunk each)."""
    import dask.array as da

    return da.map_blocks(function, *frames, dtype=dtype,
                         meta=np.empty((0,) * frames[0].ndim, dtype))


def layer_data(source) -> list[tuple]:
    """The run as napari layer-data tuples, bottom layer first (see the module docstring)."""
    import dask.array as da

    cfg, g = source.cfg, source.grid
    timed = _placement(source, timed=True)
    sample = ranges.Sample(source)
    layers = []

    # the cells, blended additively on the black canvas (see PALETTE)
    for name in ("F", "M", "S", "R", "P"):
        label, shown, opacity = CELL_STYLE[name]
        floor = source.capacity * 10.0 ** -CELL_DECADES
        log_density = da.log10(da.maximum(source.frames(name), floor))
        layers.append((log_density.astype(np.float32), dict(
            name=label + LOG_SUFFIX, colormap=ramp(label, PALETTE[name]),
            contrast_limits=fitted_limits(source, name, sample),
            blending="additive", visible=shown, opacity=opacity,
            metadata=_meta(source, name, "cell", units="log10 cells/voxel"), **timed),
            "image"))

    # Fields and derived maps above the cells, opaque: one shown covers the cells (which
    # would otherwise add their colours to it), and the outlines stay on top of it.
    floor = TUMOUR_FLOOR
    enrichment = _lazy(lambda S, P, R: _log_enrichment(S, P, R, floor),
                       source.frames("S"), source.frames("P"), source.frames("R"),
                       dtype=np.float32)
    if g.ndim == 3:   # a surface around where persisters gather most (enrichment_iso),
        iso = enrichment_iso(source, sample)     # drawn in the colormap's full red
        look = dict(rendering="iso", iso_threshold=iso, contrast_limits=(-iso, iso))
    else:
        look = dict(contrast_limits=enrichment_limits(source, sample))
    layers.append((enrichment, dict(
        name=ENRICHMENT, colormap=diverging(), blending="translucent", visible=False, **look,
        metadata=_meta(source, "enrichment", "enrichment", units="log2 (1)", long_name=(
            "log₂ of P/(S+P+R) in the voxel over the tissue-wide P/(S+P+R) "
            f"(undefined where S+P+R < {TUMOUR_FLOOR:g} × the frame's densest voxel)")),
        **timed), "image"))

    for name, info in source.fields.items():
        if info.get("kind") == "cell":
            continue
        is_drug = name in source.drugs
        exposure = info.get("kind") == "exposure"
        cmap = EXPOSURE_COLORMAP if exposure else DRUG_COLORMAP if is_drug \
            else SUBSTRATE_COLORMAPS.get(name, "gray")
        data, label, extra = source.frames(name), name, {}
        if name in LOG_FIELDS:
            data = da.log10(da.maximum(data, signal_floor(source, name))).astype(np.float32)
            label = name + LOG_SUFFIX
            extra = dict(units=f"log10 {info.get('units', '')}".strip())
        layers.append((data, dict(
            name=label, colormap=cmap, contrast_limits=fitted_limits(source, name, sample),
            blending="translucent", visible=False,
            metadata=_meta(source, name, "exposure" if exposure else "substrate", **extra),
            **timed), "image"))

    met = maps.met_drugs(cfg)

    def _protection(h, *drug_frames):
        return maps.protection(h, dict(zip(met, drug_frames)), cfg)

    theta = cfg.cells.switching.theta
    protection_sample = _protection(sample("hgf"), *[sample(d) for d in met])
    layers.append((_lazy(_protection, source.frames("hgf"), *[source.frames(d) for d in met],
                         dtype=np.float32),
                   dict(name="protection", colormap=PROTECTION_COLORMAP,
                        contrast_limits=ranges.linear_limits(
                            protection_sample, (0.0, theta if theta > 0 else 1.0)),
                        blending="translucent", visible=False,
                        metadata=_meta(source, "protection", "protection",
                                       units="1", long_name="θ·H: fraction of persister kill "
                                       "removed by the HGF–MET signal"),
                        **timed), "image"))

    # outlines on top (in 2D), so the cells inside a niche or a vessel show through
    space = _placement(source, timed=False)
    vessels = (source.vessels() > 0.5).astype(np.uint8)
    if g.ndim == 2:  # a static map of one frame: read at once
        vessels = maps.outline(np.asarray(vessels))
    layers.append((vessels, dict(
        name="vessels", colormap={None: TRANSPARENT, 0: TRANSPARENT, 1: VESSEL_COLOUR},
        opacity=1.0 if g.ndim == 2 else 0.5, blending="translucent",
        metadata=_meta(source, "vessels", "vessels", units="", long_name="vessel voxels"),
        **space), "labels"))

    F, M = source.frames("F"), source.frames("M")
    threshold = cfg.run.niche_threshold * source.capacity       # cells/voxel
    niches = da.map_blocks(_niche_frames, F, M, threshold, g.ndim == 2,
                           dtype=np.uint8, meta=np.empty((0,) * F.ndim, np.uint8))
    layers.append((niches, dict(
        name="niches",
        colormap={None: TRANSPARENT, 0: TRANSPARENT, **NICHE_COLOURS},
        # in 3D, niche volumes thin enough to see the tumour through them
        opacity=1.0 if g.ndim == 2 else 0.35, blending="translucent",
        metadata=_meta(source, "niches", "niches", units="", long_name=(
            f"CAF (F >= M) and TAM (M > F) niches: F + M >= {threshold:.3g} cells/voxel "
            f"({cfg.run.niche_threshold:g} of capacity)")),
        **timed), "labels"))
    return layers


def source_of(layer):
    """The run source a layer was made from, or None for other layers."""
    info = getattr(layer, "metadata", {}).get("spatialdtp")
    return info["source"] if isinstance(info, dict) else None
