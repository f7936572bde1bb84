"""The NumPy reference backend: readable, always available, the standard others match."""
from __future__ import annotations

import os
import platform

import numpy as np

from . import Backend, register


def _host_memory_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def free_memory(self):
        return _host_memory_available()

    def device(self):
        cpu = platform.processor() or platform.machine()
        return f"CPU ({cpu}, {os.cpu_count()} cores), NumPy {np.__version__}"


@register("numpy")
def _make():
    return NumpyBackend()
