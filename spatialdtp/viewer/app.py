"""``spatialdtp-view``: napari with a run file and the dock widgets.

    spatialdtp-view outputs/2026-11-21/12-00-00/run.h5
    spatialdtp-view run.h5 --frame 10 --show protection --hide "S sensitive (log₁₀)"
    spatialdtp-view run.h5 --screenshot run.png      # save the window as a PNG and exit
    spatialdtp-view run.h5 --movie run.mp4 --days 0:21        # a movie, one frame per output
    spatialdtp-view run.h5 --export figs --days 0,7,21 --layers P,niches   # PNGs, then exit

The run opens at its last frame (where the persisters survived), in 3D for a 3D run.
"""
from __future__ import annotations

import argparse
import os
import sys

VOLUME_VIEW = (-30.0, 35.0, 150.0)  # camera Euler angles (degrees): volumes seen at a slant


def open_run(path, viewer=None, *, frame: int = -1, ndisplay: int | None = None,
             widgets: bool = True, show=(), hide=()):
    """Add the run file's layers (and the dock widgets) to ``viewer`` (a new one if None);
    show frame ``frame`` (negative counts from the end); return the viewer."""
    import napari
    from napari.layers import Layer

    from .layers import source_of
    from .reader import read_run

    if viewer is None:
        viewer = napari.Viewer(title=f"spatialdtp: {os.path.basename(os.fspath(path))}")
    layers = [viewer.add_layer(Layer.create(data, meta, kind))
              for data, meta, kind in read_run(path)]
    run = source_of(layers[0])
    for name, visible in [(n, True) for n in show] + [(n, False) for n in hide]:
        matches = [layer for layer in layers if layer.name == name]
        if not matches:
            raise ValueError(f"no layer {name!r}; the layers are {[la.name for la in layers]}")
        matches[0].visible = visible
    if widgets:
        from .widgets import NicheWidget, PopulationWidget

        for cls in (PopulationWidget, NicheWidget):
            viewer.window.add_dock_widget(cls(viewer), name=cls.title, area="right")
    n = len(run.times)
    if not -n <= frame < n:
        raise ValueError(f"frame={frame}: the run has {n} frames (0 to {n - 1}, or negative "
                         "from the end)")
    axis = viewer.dims.ndim - layers[0].ndim
    viewer.dims.set_current_step(axis, frame % n)
    viewer.dims.ndisplay = ndisplay or (3 if run.grid.ndim == 3 else 2)
    scale_bar(viewer).visible = True
    persisters = [layer for layer in layers if layer.metadata["spatialdtp"]["field"] == "P"]
    viewer.layers.selection.active = persisters[0]  # its contrast controls, not label tools
    fit_view(viewer)
    return viewer


def fit_view(viewer):
    """Fit the run in the canvas; volumes are seen at a slant."""
    viewer.reset_view()
    if viewer.dims.ndisplay == 3:
        camera = getattr(getattr(viewer, "scene", None), "camera", None) or viewer.camera
        camera.angles = VOLUME_VIEW


def scale_bar(viewer):
    """The viewer's scale bar overlay (moved to ``viewer.canvas.overlays`` in napari 0.9)."""
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    return overlays.scale_bar if overlays is not None else viewer.scale_bar


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spatialdtp-view",
        description="Open a spatialdtp run file in napari with the population and niche "
                    "widgets docked.")
    p.add_argument("run", help="a spatialdtp run file (run.h5)")
    p.add_argument("--frame", type=int, default=-1,
                   help="frame to show first (default -1: the last; negative counts from the end)")
    p.add_argument("--ndisplay", type=int, choices=(2, 3), default=None,
                   help="2D or 3D display (default: 3 for a 3D run)")
    p.add_argument("--show", nargs="+", default=[], metavar="LAYER", help="layers to show")
    p.add_argument("--hide", nargs="+", default=[], metavar="LAYER", help="layers to hide")
    p.add_argument("--no-widgets", action="store_true", help="do not dock the plots")
    p.add_argument("--screenshot", metavar="PNG",
                   help="save a screenshot of the window to PNG and exit")
    p.add_argument("--size", nargs=2, type=int, default=None, metavar=("WIDTH", "HEIGHT"),
                   help="window size in pixels")
    p.add_argument("--movie", metavar="MP4",
                   help="write a movie of the frames (one movie frame per output frame; "
                        "needs napari-animation) and exit")
    p.add_argument("--fps", type=float, default=4.0, help="movie frames per second (default 4)")
    p.add_argument("--export", metavar="DIR",
                   help="write a PNG of the canvas per chosen day to DIR and exit")
    p.add_argument("--days", default=None, metavar="DAYS",
                   help="days for --movie/--export: a list (0,7,21) or a range (7:21); "
                        "default every frame")
    p.add_argument("--layers", default=None, metavar="NAMES",
                   help="layers shown in --movie/--export, e.g. P,niches (the others hidden)")
    return p


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from .runfile import looks_like_run_file

    if not os.path.isfile(args.run):
        parser.error(f"run file {args.run!r} does not exist")
    if not looks_like_run_file(args.run):
        parser.error(f"{args.run!r} is not a spatialdtp run file (an HDF5 file written by "
                     "spatialdtp-run)")
    try:
        import napari
    except ImportError:
        parser.error("napari is not installed: pip install 'spatialdtp[viewer]'")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        parser.error("no display (DISPLAY is not set): run it in a desktop session, or "
                     "headless as `xvfb-run -a spatialdtp-view ...`")
    exporting = bool(args.movie or args.export)
    if (args.days is not None or args.layers is not None) and not exporting:
        parser.error("--days and --layers choose what --movie or --export writes")
    try:
        viewer = open_run(args.run, frame=args.frame, ndisplay=args.ndisplay,
                          widgets=not (args.no_widgets or exporting), show=args.show,
                          hide=args.hide)
    except ValueError as err:
        parser.error(str(err))
    if exporting:
        from .export import run_exports

        if args.size:
            viewer.window.resize(*args.size)
        try:
            for line in run_exports(viewer, args):
                print(line)
        except ValueError as err:
            viewer.close()
            parser.error(str(err))
        viewer.close()
        return 0
    if args.size:
        viewer.window.resize(*args.size)
    if args.screenshot:
        from qtpy.QtWidgets import QApplication

        for _ in range(10):  # let the window lay out and the widgets draw
            QApplication.processEvents()
        fit_view(viewer)  # the window's final size
        QApplication.processEvents()
        viewer.screenshot(args.screenshot, canvas_only=False)
        viewer.close()
        print(f"wrote {args.screenshot}")
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
