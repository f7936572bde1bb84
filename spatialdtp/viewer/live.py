"""Live runs: napari shows a simulation while it runs (``spatialdtp-run viewer=live``).

The simulation runs in a worker thread (:meth:`Simulation.run_until` with a callback and a
stop request), writing its run file as usual. The callback only queues what it saw (the
observables of each step, a copy of the fields at each frame); a Qt timer in the window's
thread drains the queue and updates the layers and plots, so the window never waits for
the simulation. The slider follows the newest frame while it is on the last one.

Closing the window asks the worker to stop before its next step; the run file then gets a
checkpoint and status "interrupted" (resume it with ``+resume=``), exactly as with Ctrl-C.
If the run finishes first, the window stays open to explore it.

A live run keeps its frames in memory (the file is still being written); for runs too big
for that, run without the viewer and open the run file afterwards (``spatialdtp-view``).
"""
from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time as _time

import numpy as np

from ..config import ConfigError

log = logging.getLogger("spatialdtp")

MINUTES_PER_DAY = 1440.0


def require_display():
    """Fail with a clear message where napari cannot open a window (or is not installed)."""
    try:
        import napari  # noqa: F401
    except ImportError:
        raise ConfigError("viewer.mode='live': napari is not installed; install the viewer "
                          "extra (pip install 'spatialdtp[viewer]') or use viewer=none") from None
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        raise ConfigError("viewer.mode='live': no display (DISPLAY is not set); run under "
                          "a desktop or `xvfb-run -a`, or use viewer=none")


class LiveRun:
    """A run still being computed, as a layer source (see :mod:`spatialdtp.viewer.layers`):
    frames and observables kept in memory, appended from the window's thread."""

    def __init__(self, sim, name: str = "live run"):
        from ..run.runfile import fields_from_layout

        self.name = name
        self.cfg = sim.cfg
        self.grid = sim.grid
        self.capacity = float(sim.capacity)
        self.drugs = tuple(sim.drugs)
        self.fields = fields_from_layout(sim.layout)
        self.status = "running"
        self._vessels = sim.backend.to_host(sim.state.vessels).copy()
        self._observer = sim.observer
        self._times: list[float] = []
        self._frames: dict[str, list[np.ndarray]] = {name: [] for name in self.fields}
        obs = sim.observables()
        self._rows = [(float(t), {k: float(obs[k][i]) for k in obs if k != "time"})
                      for i, t in enumerate(obs["time"])]
        self.add_frame(sim.t, sim.fields())

    # -- growing
    def add_frame(self, t: float, fields: dict[str, np.ndarray]):
        self._times.append(float(t))
        for name in self.fields:
            self._frames[name].append(fields[name])

    def add_row(self, t: float, values: dict[str, float]):
        self._rows.append((float(t), dict(values)))

    # -- the source interface
    @property
    def times(self) -> np.ndarray:
        return np.asarray(self._times, dtype=np.float64)

    def frames(self, name: str):
        import dask.array as da

        if name not in self.fields:
            raise KeyError(f"no field {name!r}; the run's fields are {list(self.fields)}")
        return da.stack([da.from_array(a, chunks=a.shape) for a in self._frames[name]])

    def frame(self, name: str, i: int) -> np.ndarray:
        return self._frames[name][i]

    def vessels(self) -> np.ndarray:
        return self._vessels

    def tumour_start(self) -> np.ndarray | None:
        """S + P + R at treatment start (the niche measure's reference), None before it."""
        from ..backends import host_array

        ref = self._observer.reference
        return None if ref is None else np.asarray(host_array(ref.T0), dtype=np.float64)

    def observables(self) -> dict[str, np.ndarray]:
        names = list(self._rows[0][1]) if self._rows else []
        out = {"time": np.array([t for t, _ in self._rows], dtype=np.float64)}
        for name in names:
            out[name] = np.array([row.get(name, np.nan) for _, row in self._rows])
        return out


class LiveSession:
    """One simulation shown live in a napari viewer: ``start()``, then the window's event
    loop; ``stop()`` ends the run cleanly (checkpoint, status "interrupted") and waits for
    the worker; ``result()`` returns the summary or raises what the run raised."""

    POLL_MS = 250         # how often the window takes in new data
    LAYERS_EVERY_S = 1.0  # layers take in new frames at most this often...
    PLOT_EVERY_S = 2.0    # ...and plots are redrawn at most this often: the window's thread
    #                       shares the interpreter lock with the simulation

    def __init__(self, sim, path, viewer, *, days: float | None = None,
                 widgets: bool = True):
        from napari.layers import Layer
        from qtpy.QtCore import QTimer

        from .layers import layer_data

        self.sim, self.path, self.viewer, self.days = sim, path, viewer, days
        self.run = LiveRun(sim, name=os.path.basename(os.fspath(path)) if path else "live run")
        self.layers = []
        for data, meta, kind in layer_data(self.run):
            self.layers.append(viewer.add_layer(Layer.create(data, meta, kind)))
        if sim.grid.ndim == 3:
            viewer.dims.ndisplay = 3
        from .canvas import dress

        # locks, day stamp, legend; the newest frame; no colorbars (see dress)
        dress(viewer, self.layers, frame=-1, colorbars=False)
        self.widgets = []
        if widgets:
            from .widgets import NicheWidget, PopulationWidget

            for cls in (PopulationWidget, NicheWidget):
                widget = cls(viewer)
                viewer.window.add_dock_widget(widget, name=cls.title, area="right")
                self.widgets.append(widget)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._work, name="spatialdtp-live", daemon=True)
        self._summary = None
        self._error: BaseException | None = None
        self._last_plot = self._last_layers = 0.0
        self._frames_pending = 0
        self._rows_pending = 0
        self._stale: set[str] = set()
        self._fresh = None   # (frames, layer name -> meta with data) of the last update
        for layer in self.layers:
            layer.events.visible.connect(self._layer_shown)
        self._finished = False
        self.frames_shown = 1
        self.polls = 0
        self._timer = QTimer()
        self._timer.setInterval(self.POLL_MS)
        self._timer.timeout.connect(self.poll)
        viewer.title = f"spatialdtp: {self.run.name} (running)"

    # -- the worker thread
    def _work(self):
        try:
            self._summary = self.sim.run_until(self.days, path=self.path,
                                               callback=self._callback, stop=self._stop.is_set)
        except BaseException as err:  # handed to the window's thread by result()
            self._error = err
        finally:
            self._done.set()

    def _callback(self, sim, event: str):
        if event == "step":
            self._queue.put(("step", sim.t, sim.last))
        elif event == "frame":
            self._queue.put(("frame", sim.t, sim.fields()))

    # -- the window's thread
    def start(self) -> "LiveSession":
        self._thread.start()
        self._timer.start()
        return self

    @property
    def done(self) -> bool:
        """True once the worker has ended (finished, stopped or failed)."""
        return self._done.is_set()

    def poll(self):
        """Take in what the worker queued; update layers, the slider and the plots."""
        self.polls += 1
        new_frames = new_rows = 0
        while True:
            try:
                kind, t, payload = self._queue.get_nowait()
            except queue.Empty:
                break
            if kind == "step":
                self.run.add_row(t, payload)
                new_rows += 1
            else:
                self.run.add_frame(t, payload)
                new_frames += 1
        self._frames_pending += new_frames
        finished = self.done and self._queue.empty()
        now = _time.monotonic()
        if self._frames_pending and (finished or now - self._last_layers >= self.LAYERS_EVERY_S):
            self._last_layers = now
            self._frames_pending = 0
            self._update_layers()
        # rows taken in while a redraw was throttled must still be drawn at the end
        self._rows_pending += new_rows
        if self._rows_pending and (finished or now - self._last_plot >= self.PLOT_EVERY_S):
            self._last_plot = now
            self._rows_pending = 0
            for widget in self.widgets:
                widget.update_data()
        if finished and not self._finished:
            self._finished = True  # the timer keeps ticking: it lets Python see Ctrl-C
            self._finish()

    def _update_layers(self):
        """Give the shown layers the new frames; hidden ones get them when shown (every
        layer update costs the window's thread time)."""
        following = self._on_last_frame()
        for layer in self.layers:
            if layer.metadata["spatialdtp"]["role"] == "vessels":
                continue  # static
            if layer.visible:
                self._renew(layer)
            else:
                self._stale.add(layer.name)
        self.frames_shown = len(self.run.times)
        if following:
            axis = self.viewer.dims.ndim - self.layers[0].ndim
            self.viewer.dims.set_current_step(axis, self.frames_shown - 1)

    def _renew(self, layer):
        from .layers import layer_data

        if self._fresh is None or self._fresh[0] != len(self.run.times):
            self._fresh = (len(self.run.times),
                           {meta["name"]: meta | {"data": data}
                            for data, meta, _ in layer_data(self.run)})
        meta = self._fresh[1][layer.name]
        layer.data = meta["data"]
        if "contrast_limits" in meta and getattr(layer, "contrast_limits", None) is not None:
            layer.contrast_limits = meta["contrast_limits"]  # drug ranges grow with the run
        self._stale.discard(layer.name)

    def _layer_shown(self, event):
        layer = event.source
        if layer.visible and layer.name in self._stale:
            self._renew(layer)

    def _on_last_frame(self) -> bool:
        axis = self.viewer.dims.ndim - self.layers[0].ndim
        return self.viewer.dims.current_step[axis] >= self.frames_shown - 1

    def _finish(self):
        if self._error is None:
            self.run.status = "complete"
            message = f"run complete at day {self.sim.t / MINUTES_PER_DAY:.3g}"
        else:
            self.run.status = "interrupted" if self._stop.is_set() else "failed"
            message = f"run ended: {self._error}"
        try:
            self.viewer.title = f"spatialdtp: {self.run.name} ({self.run.status})"
            self.viewer.status = message
        except RuntimeError:  # the window is already gone
            pass
        log.info("%s", message)

    def stop(self, timeout: float | None = None):
        """Ask the worker to stop before its next step and wait for it (the run file is
        closed with a checkpoint and status "interrupted")."""
        self._stop.set()
        self._thread.join(timeout)
        self._timer.stop()

    def result(self):
        """The run's summary; raises what the run raised (RunInterrupted after ``stop``)."""
        if self._thread.is_alive():
            raise RuntimeError("the live run is still going: stop() it or wait for it first")
        if self._error is not None:
            raise self._error
        return self._summary


def run_live(sim, path, *, days: float | None = None):
    """Run ``sim`` to ``days`` (default ``run.days``) writing ``path``, shown live in napari.

    Blocks until the window is closed. Returns the summary if the run finished; closing
    the window earlier stops it and raises
    :class:`~spatialdtp.simulation.RunInterrupted` (the run file keeps every frame and a
    checkpoint), as Ctrl-C would.
    """
    require_display()
    import signal

    import napari

    viewer = napari.Viewer(title="spatialdtp: live run")
    session = LiveSession(sim, path, viewer, days=days).start()
    previous = {}

    def close_window(signum, frame):  # Ctrl-C / SIGTERM in the terminal: close cleanly
        viewer.close()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, close_window)
        except ValueError:  # not the main thread
            pass
    try:
        napari.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        session.stop()
    return session.result()
