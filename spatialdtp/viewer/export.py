"""Movies and figures of a run shown in napari: ``spatialdtp-view RUN.h5 --movie out.mp4``
and ``spatialdtp-view RUN.h5 --export DIR --days 0,7,21 --layers P,niches``.

- :func:`write_movie`: one key frame per output frame (or per chosen frame) through
  napari-animation, one movie frame per key frame, with the day stamped on every frame.
- :func:`export_pngs`: one PNG of the canvas per chosen day, with only the chosen layers
  shown, named ``day<day>_<layers>.png``.

Days and layers are checked before anything is written: an unknown layer or a day the run
has no frame at is refused with a one-line :class:`ValueError` (the command turns it into
its usage error), and no file or folder is made.

Days are those of the time slider (days since the start of the run, the lead-in
included). A day matches the frame within half an output interval of it. ``--days``
takes a list (``0,7,21``) or a range (``7:21``: every frame from day 7 to day 21).
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager

import numpy as np

from .layers import LOG_SUFFIX, TimeAxis, source_of


# --------------------------------------------------------------------------- choosing
def _run_layers(viewer):
    layers = [layer for layer in viewer.layers if source_of(layer) is not None]
    if not layers:
        raise ValueError("the viewer shows no spatialdtp run")
    return layers


def _time_axis(viewer, layers):
    source = source_of(layers[0])
    timed = [la for la in layers if la.ndim == source.grid.ndim + 1]
    return source, TimeAxis.of(source), viewer.dims.ndim - timed[0].ndim


def layer_key(layer) -> str:
    """The short name of a run's layer: its field (``P``, ``oxygen``, ``niches``, …)."""
    return str(layer.metadata["spatialdtp"]["field"])


def select_layers(viewer, names) -> list:
    """The run's layers called ``names``: a field (``P``), a layer name (``P persister
    (log₁₀)``) or a layer name without its log suffix (``P persister``)."""
    layers = _run_layers(viewer)
    lookup = {}
    for layer in layers:
        for key in (layer_key(layer), layer.name, layer.name.removesuffix(LOG_SUFFIX)):
            lookup.setdefault(key, layer)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError("--layers names no layer")
    unknown = [n for n in names if n not in lookup]
    if unknown:
        raise ValueError(f"unknown layer{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; the run's layers are "
                         f"{', '.join(layer_key(la) for la in layers)}")
    return [lookup[n] for n in names]


def parse_days(text: str):
    """``"0,7,21"`` -> [0.0, 7.0, 21.0]; ``"7:21"`` -> (7.0, 21.0), a closed range."""
    text = str(text).strip()
    try:
        if ":" in text:
            a, b = (float(x) for x in text.split(":"))
            if not a <= b:
                raise ValueError
            return (a, b)
        days = [float(x) for x in text.split(",") if x.strip()]
        if not days:
            raise ValueError
        return days
    except ValueError:
        raise ValueError(f"--days {text!r}: give days as a list (0,7,21) or a range (7:21)") \
            from None


def select_frames(time: TimeAxis, days) -> list[int]:
    """Frame indices of ``days`` (a list or a range from :func:`parse_days`, or None for
    every frame). A listed day must be within half an output interval of a frame."""
    d = time.days
    if days is None:
        return list(range(d.size))
    span = (f"the run's {d.size} frames span days {d[0]:g} to {d[-1]:g}, every "
            f"{time.step:g} d")
    if isinstance(days, tuple):
        frames = [int(i) for i in np.nonzero((d >= days[0] - 1e-9) & (d <= days[1] + 1e-9))[0]]
        if not frames:
            raise ValueError(f"no frame between days {days[0]:g} and {days[1]:g}: {span}")
        return frames
    frames, missing = [], []
    for day in days:
        i = time.nearest(day)
        if d.size and abs(d[i] - day) <= 0.5 * time.step + 1e-9:
            frames.append(i)
        else:
            missing.append(day)
    if missing:
        raise ValueError(f"no frame at day{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(f'{m:g}' for m in missing)}: {span}")
    return frames


# --------------------------------------------------------------------------- day stamp
def _text_overlay(viewer):
    """The viewer's text overlay (moved to ``viewer.canvas.overlays`` in napari 0.9)."""
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    text = getattr(overlays, "text", None) if overlays is not None else None
    return text if text is not None else viewer.text_overlay


@contextmanager
def day_stamp(viewer, time: TimeAxis, axis: int):
    """Stamp "day d" on the canvas while frames are written, unless a text overlay is
    already shown (the viewer's own day stamp, or the user's text): that one is kept."""
    overlay = _text_overlay(viewer)
    if overlay.visible and overlay.text:
        yield overlay
        return
    saved = (overlay.visible, overlay.text)

    def stamp(event=None):
        overlay.text = f"day {time.days[time.index(viewer.dims.point[axis])]:.3g}"

    stamp()
    overlay.visible = True
    viewer.dims.events.current_step.connect(stamp)
    try:
        yield overlay
    finally:
        viewer.dims.events.current_step.disconnect(stamp)
        overlay.visible, overlay.text = saved


@contextmanager
def only_shown(viewer, layers):
    """Show ``layers`` (None: leave visibility as it is) and hide the others, for a while."""
    if layers is None:
        yield
        return
    saved = {layer: layer.visible for layer in viewer.layers}
    chosen = set(map(id, layers))
    for layer in viewer.layers:
        layer.visible = id(layer) in chosen
    try:
        yield
    finally:
        for layer, visible in saved.items():
            layer.visible = visible


def _settle():
    from qtpy.QtWidgets import QApplication

    for _ in range(3):
        QApplication.processEvents()


# --------------------------------------------------------------------------- writing
def _filename_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def export_pngs(viewer, out_dir, days=None, layers=None) -> list[str]:
    """One PNG of the canvas per chosen frame, the chosen layers shown (all shown ones if
    None); ``days`` as for :func:`select_frames`. Returns the paths written."""
    run_layers = _run_layers(viewer)
    _, time, axis = _time_axis(viewer, run_layers)
    frames = select_frames(time, days)
    chosen = select_layers(viewer, layers) if layers is not None else None
    tag = "+".join(_filename_part(layer_key(la)) for la in chosen) if chosen else "shown"
    paths = [os.path.join(out_dir, f"day{time.days[i]:g}_{tag}.png") for i in frames]
    os.makedirs(out_dir, exist_ok=True)       # only now: every choice was valid
    with only_shown(viewer, chosen), day_stamp(viewer, time, axis):
        for i, path in zip(frames, paths):
            viewer.dims.set_current_step(axis, i)
            _settle()
            viewer.screenshot(path, canvas_only=True, flash=False)
    return paths


def _check_movie(path, frames, fps):
    if len(frames) < 2:
        raise ValueError(f"a movie needs two frames or more; the days chosen give {len(frames)}")
    if not fps > 0:
        raise ValueError(f"--fps {fps}: must be > 0")
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise ValueError(f"--movie {os.fspath(path)!r}: folder {folder!r} does not exist")


def write_movie(viewer, path, days=None, layers=None, fps: float = 4.0) -> str:
    """A movie of the chosen frames (every frame if ``days`` is None), one movie frame per
    output frame, through napari-animation (the format from the suffix: .mp4, .gif, …)."""
    try:
        from napari_animation import Animation
    except ImportError:
        raise ValueError("--movie needs napari-animation: pip install 'spatialdtp[viewer]'") \
            from None
    run_layers = _run_layers(viewer)
    _, time, axis = _time_axis(viewer, run_layers)
    frames = select_frames(time, days)
    chosen = select_layers(viewer, layers) if layers is not None else None
    _check_movie(path, frames, fps)
    with only_shown(viewer, chosen), day_stamp(viewer, time, axis):
        animation = Animation(viewer)
        for i in frames:
            viewer.dims.set_current_step(axis, i)
            _settle()
            # steps=1: consecutive key frames one movie frame apart, so that every movie
            # frame is an output frame (no frames interpolated between them)
            animation.capture_keyframe(steps=1)
        animation.animate(os.fspath(path), fps=fps, canvas_only=True)
    return os.fspath(path)


def run_exports(viewer, args) -> list[str]:
    """What ``spatialdtp-view --movie/--export`` asked for (``args`` from its parser),
    every choice checked before the first file is written; one line per thing written."""
    days = parse_days(args.days) if args.days is not None else None
    layers = args.layers.split(",") if args.layers is not None else None
    run_layers = _run_layers(viewer)
    _, time, _ = _time_axis(viewer, run_layers)
    frames = select_frames(time, days)            # refuse before writing anything
    if layers is not None:
        select_layers(viewer, layers)
    if args.movie:
        _check_movie(args.movie, frames, args.fps)
    _settle()
    out = []
    if args.export:
        paths = export_pngs(viewer, args.export, days, layers)
        out.append(f"wrote {len(paths)} PNG file{'s' if len(paths) != 1 else ''} to "
                   f"{args.export}")
    if args.movie:
        write_movie(viewer, args.movie, days, layers, fps=args.fps)
        out.append(f"wrote {args.movie}")
    return out
