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

from . import cpu_backend, cupy_backend, numpy_backend  # noqa: F401  (each registers itself)
from .base import (
    _REGISTRY,
    Backend,
    BackendUnavailable,
    available,
    host_array,
    register,
)

log = logging.getLogger("spatialdtp")

#: the order ``auto`` tries, fastest first
AUTO_ORDER = ("cupy", "cpu", "numpy")
#: below this many voxels the compiled cpu backend is no faster than numpy: each of its
#: ~500 kernel launches per step costs ~10–40 µs of Python, as much as the loop itself
#: (measured: 96² default job 51 s on cpu, 41 s on numpy; 512² step 1.6× faster on cpu)
AUTO_CPU_MIN_VOXELS = 32768


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


__all__ = ["AUTO_CPU_MIN_VOXELS", "AUTO_ORDER", "Backend", "BackendUnavailable", "available",
           "get_backend", "host_array", "register"]
