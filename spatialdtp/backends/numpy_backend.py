"""The NumPy reference backend: readable array expressions, the standard others match."""
from __future__ import annotations

import os
import platform

import numpy as np

from .base import Backend, register


def host_memory_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def host_description() -> str:
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores)"


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def free_memory(self):
        return host_memory_available()

    def device(self):
        return f"{host_description()}, NumPy {np.__version__}"


@register("numpy")
def _make():
    return NumpyBackend()
