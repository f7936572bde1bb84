"""Imported first by the test modules that draw napari on a screen: skips the module where
napari (the viewer extra) or an X display is missing, and makes Qt use xcb, since its
``offscreen`` platform cannot draw napari's canvas (no OpenGL). CI installs Xvfb and
pytest-xvfb starts it."""
import os
import sys

import pytest

napari = pytest.importorskip("napari", reason="the viewer extra is not installed")
if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                             or os.environ.get("WAYLAND_DISPLAY")):
    pytest.skip("no display: install Xvfb (pytest-xvfb starts it) or run under xvfb-run -a",
                allow_module_level=True)
if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
    os.environ["QT_QPA_PLATFORM"] = "xcb"
