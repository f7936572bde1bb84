"""A CuPy device double: the part of CuPy that spatialdtp uses, on the host, as strict as
CuPy and stricter about what would go wrong on a GPU.

``tests/conftest.py`` makes this package importable as ``cupy`` in the test process (and in
subprocesses it starts) wherever no real CuPy with a GPU is present, so that the real
``spatialdtp/backends/cupy_backend.py`` runs unchanged: its RawModule is compiled for the
host with the GPU side of ``kernels/sdtp.h``, its launches are checked argument by argument
against the kernels' parameter types, its arrays refuse implicit host conversions, its
streams and events are modelled so that a missing copy or event fails every time, and
every kernel launch, host synchronisation and device allocation is counted.

The device is hidden until enabled (``cupy._double.enable()``, or the environment variable
``SPATIALDTP_CUPY_DOUBLE=1``): until then the package behaves as CuPy on a machine without
a GPU (``cupy.cuda.runtime.getDeviceCount()`` raises ``CUDARuntimeError``).

Modules: :mod:`._device` (memory, streams, events, counters), :mod:`._core` (``ndarray``),
:mod:`._namespace` (functions), :mod:`._transfer` (host copies), :mod:`._raw` (RawModule,
launches), ``cuda_on_host.h`` (what NVRTC gives a source, for g++), :mod:`.cuda`.
"""
import numpy as _np

from . import _device
from ._core import ndarray
from ._namespace import *  # noqa: F401,F403
from ._namespace import __all__ as _names
from ._namespace import ufunc  # noqa: F401
from ._raw import RawKernel, RawModule
from . import cuda, linalg  # noqa: E402

__version__ = "14.2.0+spatialdtp.device.double"

#: the emulated device: enable()/disable(), counters, reset_counters(), errors
_double = _device.DEVICE

# dtypes and constants are NumPy's, as in CuPy
for _n in ("bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 "
           "complex64 complex128 intp uintp byte ubyte short ushort intc uintc longlong "
           "ulonglong half single double csingle cdouble generic number integer "
           "signedinteger unsignedinteger floating complexfloating inexact dtype finfo "
           "iinfo inf nan pi e newaxis euler_gamma").split():
    globals()[_n] = getattr(_np, _n)
bool = _np.bool_  # noqa: A001  (cupy.bool is numpy.bool)
Inf = Infinity = PINF = _np.inf
NaN = NAN = _np.nan
NINF = -_np.inf

__all__ = list(_names) + ["ndarray", "RawKernel", "RawModule", "cuda", "linalg"]
