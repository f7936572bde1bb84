"""The one seam where backends differ.

A backend is a value, not a branch: the model is written against ``backend.xp`` (an array
namespace with NumPy's API) and never asks which backend it runs on. A backend says how to
move arrays between host and device, how much memory is free, and what device it is.
Backends register themselves by name; ``get_backend(name)`` fetches one.
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

_REGISTRY: Dict[str, Callable[[], "Backend"]] = {}


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (no device, library missing)."""


class Backend:
    name = "abstract"
    xp = np

    def asarray(self, a, dtype=None):
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        return np.asarray(a)

    def free_memory(self) -> int | None:
        """Bytes free for the state on this backend's device (None: unknown)."""
        return None

    def device(self) -> str:
        return "unknown"

    def synchronize(self) -> None:
        pass


def register(name: str):
    def deco(factory):
        _REGISTRY[name] = factory
        return factory
    return deco


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_backend(name: str) -> Backend:
    if name not in _REGISTRY:
        raise BackendUnavailable(
            f"backend.name={name!r}: allowed values are {available()} in this installation")
    return _REGISTRY[name]()


from . import numpy_backend  # noqa: E402,F401  (registers "numpy")
