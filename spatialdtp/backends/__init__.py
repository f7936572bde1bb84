"""The one seam where backends differ.

A backend is a value, not a branch. It carries

* ``xp``: an array namespace with NumPy's API (NumPy or CuPy) for the bookkeeping the
  model does with whole arrays;
* ``ops``: the hot loops of one step — the fused cell kinetics, the substrate
  coefficients, the multigrid stencils, cell transport and the observable sums — either
  as NumPy/CuPy array expressions (:class:`~spatialdtp.backends.reference.ReferenceOps`,
  the readable reference) or as the compiled kernels of ``kernels/*.cu``
  (:class:`~spatialdtp.backends.kernels.CompiledOps`);
* how to move arrays between host and device, how much memory is free, what device it is.

The model calls ``backend.ops`` and ``backend.xp`` and never asks which backend it runs on.

Backends: ``numpy`` (reference, array expressions), ``cpu`` (the kernels of ``kernels/``
compiled for the host with g++ and OpenMP), ``cupy`` (the same kernels on an NVIDIA GPU).
``auto`` picks ``cupy`` where a GPU is usable, else ``cpu`` where a compiler is, else
``numpy``, and logs its choice.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict

import numpy as np

log = logging.getLogger("spatialdtp")

_REGISTRY: Dict[str, Callable[[], "Backend"]] = {}

#: the order ``auto`` tries, fastest first
AUTO_ORDER = ("cupy", "cpu", "numpy")
#: below this many voxels the compiled cpu backend is no faster than numpy: each of its
#: ~500 kernel launches per step costs ~10–40 µs of Python, as much as the loop itself
#: (measured: 96² default job 51 s on cpu, 41 s on numpy; 512² step 1.6× faster on cpu)
AUTO_CPU_MIN_VOXELS = 32768


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (no device, library or compiler missing)."""


class Backend:
    name = "abstract"
    xp = np

    def __init__(self):
        self._ops = {}

    def ops(self, dtype):
        """The hot loops for arrays of ``dtype`` (float32 or float64), built once."""
        dtype = np.dtype(dtype)
        if dtype not in self._ops:
            self._ops[dtype] = self._make_ops(dtype)
        return self._ops[dtype]

    def _make_ops(self, dtype):
        from .reference import ReferenceOps
        return ReferenceOps(self.xp)

    def asarray(self, a, dtype=None):
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
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


def get_backend(name: str, voxels: int | None = None) -> Backend:
    """The backend called ``name``; ``"auto"`` picks the fastest that works here for a grid
    of ``voxels`` voxels (unknown: as for a large grid).

    Raises :class:`BackendUnavailable` naming what is missing and how to install it.
    """
    if name == "auto":
        return _auto(voxels)
    if name not in _REGISTRY:
        raise BackendUnavailable(
            f"backend.name={name!r}: allowed values are {available()}")
    return _REGISTRY[name]()


def _auto(voxels: int | None = None) -> Backend:
    reasons = []
    order = list(AUTO_ORDER)
    if voxels is not None and voxels < AUTO_CPU_MIN_VOXELS:
        order.remove("cpu")
        reasons.append(f"cpu: no faster than numpy below {AUTO_CPU_MIN_VOXELS} voxels "
                       f"(this grid has {voxels})")
    for name in order:
        try:
            backend = _REGISTRY[name]()
        except BackendUnavailable as err:
            reasons.append(f"{name}: {err}")
            continue
        log.info("backend=auto chose %r (%s)%s", name, backend.device(),
                 "; not available: " + " | ".join(reasons) if reasons else "")
        return backend
    raise BackendUnavailable("no backend works here: " + " | ".join(reasons))


from . import numpy_backend  # noqa: E402,F401  (registers "numpy")
from . import cpu_backend  # noqa: E402,F401  (registers "cpu")
from . import cupy_backend  # noqa: E402,F401  (registers "cupy")
