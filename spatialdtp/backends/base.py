"""What every backend is: the :class:`Backend` value, its registry, and host copies."""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from ..numerics.counters import Counters

_REGISTRY: Dict[str, Callable[[], "Backend"]] = {}


def host_array(a) -> np.ndarray:
    """A NumPy array from a NumPy or CuPy array (CuPy refuses implicit conversion)."""
    return a.get() if type(a).__module__.split(".")[0] == "cupy" else np.asarray(a)


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (no device, library or compiler missing)."""


class Backend:
    name = "abstract"
    xp = np

    def __init__(self):
        self._ops = {}
        #: launches and host syncs of every ops of this backend (see numerics/counters.py)
        self.counters = Counters()

    def ops(self, dtype):
        """The hot loops for arrays of ``dtype`` (float32 or float64), built once."""
        dtype = np.dtype(dtype)
        if dtype not in self._ops:
            self._ops[dtype] = self._make_ops(dtype)
        return self._ops[dtype]

    def _make_ops(self, dtype):
        from .reference import ReferenceOps
        return ReferenceOps(self.xp, counters=self.counters)

    def asarray(self, a, dtype=None):
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        """``a`` as a host array: one device→host read, counted as a sync (``to_host``).
        A backend that overrides this counts its reads the same way."""
        self.counters.sync("to_host")
        return np.asarray(a)

    def snapshot(self, a):
        """A copy of ``a`` for the output writer; ``.result()`` gives it as a host array.

        The GPU backend starts the device-to-host copy without waiting for it, so that a
        frame is written while the next steps compute.
        """
        return _Ready(np.array(self.to_host(a)))

    def free_memory(self) -> int | None:
        """Bytes free for the state on this backend's device (None: unknown)."""
        return None

    def device(self) -> str:
        return "unknown"

    def synchronize(self) -> None:
        pass


class _Ready:
    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value


def register(name: str):
    def deco(factory):
        _REGISTRY[name] = factory
        return factory
    return deco


def available() -> list[str]:
    """Registered backend names (whether they can run here is known only on creation)."""
    return sorted(_REGISTRY) + ["auto"]
