"""What the napari GUI tests share: whether napari and a display are there, Qt's event loop
run for a while or until a condition holds, and a shown viewer window.

A module that only draws calls :func:`require_display` first (it is skipped without napari
or a display); a module with tests that need neither marks the others ``@needs_display``.
Qt is made to use xcb: its ``offscreen`` platform cannot draw napari's canvas (no OpenGL).
CI installs Xvfb and pytest-xvfb starts it.
"""
import os
import sys
import time
from contextlib import contextmanager

import pytest

try:
    import napari
except ImportError:  # the viewer extra is not installed
    napari = None
HAS_DISPLAY = not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY")
                                                            or os.environ.get("WAYLAND_DISPLAY"))
NO_DISPLAY = "no display: install Xvfb (pytest-xvfb starts it) or run under xvfb-run -a"
needs_display = pytest.mark.skipif(
    napari is None or not HAS_DISPLAY,
    reason="needs the viewer extra and a display (pytest-xvfb starts Xvfb, or xvfb-run -a)")
if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
    os.environ["QT_QPA_PLATFORM"] = "xcb"


def require_display():
    """Skip the calling test module without napari or a display."""
    if napari is None:
        pytest.skip("the viewer extra is not installed", allow_module_level=True)
    if not HAS_DISPLAY:
        pytest.skip(NO_DISPLAY, allow_module_level=True)


def process(seconds=0.0):
    """Run Qt's event loop for ``seconds`` (at least once)."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while True:
        QApplication.processEvents()
        if time.monotonic() >= end:
            return
        time.sleep(0.01)


def wait(condition, timeout=30.0):
    """Run Qt's event loop until ``condition()`` holds (TimeoutError after ``timeout`` s)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("condition not met in time")
        process(0.02)


@contextmanager
def shown_viewer(width, height):
    """A napari viewer shown at ``width`` × ``height`` (a hidden window screenshots black
    under Xvfb), closed afterwards."""
    v = napari.Viewer(show=True)
    v.window.resize(width, height)
    try:
        yield v
    finally:
        v.close()
        process()
