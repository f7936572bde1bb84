"""The npe2 reader contribution: ``napari run.h5``, File ▸ Open and ``viewer.open``.

napari offers every ``*.h5`` file to :func:`napari_get_reader`. It returns a reader for a
spatialdtp run file and None for anything else (another HDF5 file, a folder, several
files), so other readers can take those. The reader returns the layers of
:func:`read_run` (:func:`spatialdtp.viewer.layers.layer_data`); their frames stay on disk
until shown. A run that did not end normally opens with the frames it holds and a
:class:`~spatialdtp.viewer.runfile.RunFileWarning` (napari shows it as a notification).

Nothing here imports Qt or napari at import, so the reader runs (and is tested) without a
display. Inside a running napari, once the layers are in, the run is set up there
(:func:`spatialdtp.viewer.canvas.dress`: derived layers locked, the persisters' layer
active, the day stamp, the opening frame, a 3D run in 3D), and the plugin is recorded as
the preferred reader of run files (:func:`spatialdtp.viewer.canvas.prefer_this_reader`),
so the next ``napari run.h5`` opens without asking which reader to use.
"""
from __future__ import annotations

import os
import sys

from .layers import layer_data
from .runfile import RunFile, looks_like_run_file


def _one_path(path):
    if isinstance(path, (list, tuple)):
        return path[0] if len(path) == 1 else None
    return path


def napari_get_reader(path):
    """npe2 ``get_reader`` hook: :func:`read_for_napari` for a spatialdtp run file, else
    None."""
    path = _one_path(path)
    if path is None or not isinstance(path, (str, os.PathLike)) or not looks_like_run_file(path):
        return None
    return read_for_napari


def read_run(path) -> list[tuple]:
    """Layer-data tuples ``(data, meta, layer_type)`` of a run file, bottom layer first."""
    path = _one_path(path)
    if path is None:
        raise ValueError("read_run opens one run file at a time")
    return layer_data(RunFile(path))


def read_for_napari(path) -> list[tuple]:
    """:func:`read_run`, and inside a running napari the run is set up once its layers
    are in (see the module docstring)."""
    layers = read_run(path)
    _set_up_when_added(_one_path(path), layers)
    return layers


def _set_up_when_added(path, layers):
    """Dress the run in the current napari viewer once it has added ``layers``; switch a
    3D run to 3D display. Does nothing outside a running napari."""
    if "napari" not in sys.modules or not layers:
        return
    try:
        import napari

        from .canvas import dress_when_added, fit_view, prefer_this_reader
    except ImportError:
        return
    prefer_this_reader(path)
    viewer = napari.current_viewer()
    if viewer is None:
        return
    dress_when_added(viewer, [meta["name"] for _, meta, _ in layers])
    if layers[0][0].ndim == 4:   # time + (z, y, x): volumes, once the layers are in
        from qtpy.QtCore import QTimer

        def to_3d():
            if viewer.dims.ndim >= 3:
                viewer.dims.ndisplay = 3
                fit_view(viewer)

        QTimer.singleShot(0, to_3d)
