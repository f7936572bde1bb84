"""The npe2 reader contribution: ``napari run.h5``, File ▸ Open and ``viewer.open``.

napari offers every ``*.h5`` file to :func:`napari_get_reader`. It returns a reader for a
spatialdtp run file and None for anything else (another HDF5 file, a folder, several
files), so other readers can take those. The reader returns the layers of
:func:`read_run` (:func:`spatialdtp.viewer.layers.layer_data`); their frames stay on disk
until shown. A run that did not end normally opens with the frames it holds and a
:class:`~spatialdtp.viewer.runfile.RunFileWarning` (napari shows it as a notification).

Nothing here imports Qt or napari, so the reader runs (and is tested) without a display.
Inside a running napari, a 3D run also switches the canvas to 3D once its layers are in.
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
    """:func:`read_run`, and a 3D run switches napari's canvas to 3D."""
    layers = read_run(path)
    if layers and layers[0][0].ndim == 4:   # time + (z, y, x)
        _show_in_3d_when_added()
    return layers


def _show_in_3d_when_added():
    """Switch the current napari viewer to 3D display after it has added the layers being
    read (3D runs open as volumes). Does nothing outside a running napari."""
    if "napari" not in sys.modules:
        return
    try:
        import napari
        from qtpy.QtCore import QTimer
    except ImportError:
        return
    viewer = napari.current_viewer()
    if viewer is None:
        return

    def to_3d():
        if viewer.dims.ndim >= 3:
            viewer.dims.ndisplay = 3

    QTimer.singleShot(0, to_3d)
