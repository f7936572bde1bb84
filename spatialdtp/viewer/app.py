"""``spatialdtp-view``: napari with a run file and the dock widgets.

    spatialdtp-view outputs/2026-11-21/12-00-00/run.h5
    spatialdtp-view run.h5 --day 21 --show protection --hide "S sensitive (log₁₀)"
    spatialdtp-view run.h5 --frame 10                # a frame by its index instead
    spatialdtp-view run.h5 --screenshot run.png      # save the window as a PNG and exit
    spatialdtp-view A/run.h5 B/run.h5                # runs side by side, one time slider
    spatialdtp-view run.h5 --movie run.mp4 --days 0:21        # a movie, one frame per output
    spatialdtp-view run.h5 --export figs --days 0,7,21 --layers P,niches   # PNGs, then exit

The run opens near its end (the latest frame whose marker stands inside the plots; see
:meth:`~spatialdtp.viewer.layers.TimeAxis.opening_frame`), in 3D for a 3D run, set up by
:func:`spatialdtp.viewer.canvas.dress`. It also makes the plugin napari's reader for run
files (:func:`~spatialdtp.viewer.canvas.prefer_this_reader`), so ``napari run.h5`` opens
them without asking.
"""
from __future__ import annotations

import argparse
import os
import sys

from .canvas import VOLUME_VIEW, fit_view  # noqa: F401  (spatialdtp.viewer.app.fit_view)

def open_run(path, viewer=None, *, frame: int | None = None, day: float | None = None,
             ndisplay: int | None = None, widgets: bool = True, show=(), hide=()):
    """Add the run file's layers (and the dock widgets) to ``viewer`` (a new one if None);
    show frame ``frame`` (negative counts from the end) or the frame nearest ``day``
    (default: the opening frame); return the viewer."""
    import napari
    from napari.layers import Layer

    from .canvas import dress, prefer_this_reader
    from .layers import TimeAxis
    from .reader import read_run

    if frame is not None and day is not None:
        raise ValueError("give a frame or a day, not both")
    tuples = read_run(path)
    run = tuples[0][1]["metadata"]["spatialdtp"]["source"]
    names = [meta["name"] for _, meta, _ in tuples]
    for name in (*show, *hide):       # refused before a window opens
        if name not in names:
            raise ValueError(f"no layer {name!r}; the layers are {names}")
    n = len(run.times)
    if frame is not None and not -n <= frame < n:
        raise ValueError(f"frame={frame}: the run has {n} frames (0 to {n - 1}, or negative "
                         "from the end)")
    if day is not None:
        time = TimeAxis.of(run)
        if not time.days[0] - time.step <= day <= time.days[-1] + time.step:
            raise ValueError(f"day={day:g}: the run's frames go from day "
                             f"{time.days[0]:g} to day {time.days[-1]:g}")
        frame = time.nearest(day)
    if viewer is None:
        viewer = napari.Viewer(title=f"spatialdtp: {os.path.basename(os.fspath(path))}")
    layers = [viewer.add_layer(Layer.create(data, meta, kind)) for data, meta, kind in tuples]
    for name, visible in [(n, True) for n in show] + [(n, False) for n in hide]:
        [layer for layer in layers if layer.name == name][0].visible = visible
    if widgets:
        from .widgets import NicheWidget, PopulationWidget

        for cls in (PopulationWidget, NicheWidget):
            viewer.window.add_dock_widget(cls(viewer), name=cls.title, area="right")
    viewer.dims.ndisplay = ndisplay or (3 if run.grid.ndim == 3 else 2)
    dress(viewer, layers, frame=frame)
    prefer_this_reader(path)
    fit_view(viewer)
    return viewer


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spatialdtp-view",
        description="Open a spatialdtp run file in napari with the population and niche "
                    "widgets docked.")
    p.add_argument("run", nargs="+",
                   help="a spatialdtp run file (run.h5); several open side by side, in one "
                        "viewer with one time slider (spatialdtp.viewer.compare)")
    first = p.add_mutually_exclusive_group()
    first.add_argument("--day", type=float, default=None,
                       help="day to show first: the frame nearest it (default: near the end, "
                            "where the plots' marker is inside their axes)")
    first.add_argument("--frame", type=int, default=None,
                       help="frame index to show first (negative counts from the end)")
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

    for run in args.run:
        if not os.path.isfile(run):
            parser.error(f"run file {run!r} does not exist")
        if not looks_like_run_file(run):
            parser.error(f"{run!r} is not a spatialdtp run file (an HDF5 file written by "
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
        if len(args.run) > 1:
            from .compare import open_runs

            if args.show or args.hide:
                parser.error("--show/--hide name one run's layers; with several runs, "
                             "use the layer list")
            if exporting:
                parser.error("--movie/--export write one run; open the runs one by one")
            viewer = open_runs(args.run, frame=args.frame, day=args.day,
                               ndisplay=args.ndisplay, widgets=not args.no_widgets)
        else:
            viewer = open_run(args.run[0], frame=args.frame, day=args.day,
                              ndisplay=args.ndisplay,
                              widgets=not (args.no_widgets or exporting),
                              show=args.show, hide=args.hide)
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
