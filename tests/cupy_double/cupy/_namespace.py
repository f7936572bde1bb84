"""The ``cupy`` namespace of the double: ufuncs, array functions, creation and transfers.

Each function is the NumPy function of the same name run by :func:`._core.device_call`
(so: CuPy's strictness, the stream checks and the counters), except those below whose CuPy
behaviour differs from NumPy's: creation (``empty`` is poisoned), transfers (``array``,
``asarray``, ``ascontiguousarray``, ``asnumpy``), ``copyto`` and ``where``.
"""
from __future__ import annotations

import numpy as np

from ._core import (
    ARRAY_FUNCTIONS,
    META_FUNCTIONS,
    SIZE_FROM_DATA,
    UFUNCS,
    _PY_SCALARS,
    device_call,
    ndarray,
    poisoned,
)
from ._device import DEVICE
from ._transfer import from_host

_IN_PLACE_FUNCTIONS = {"put", "putmask", "fill_diagonal", "put_along_axis", "place"}


def _kernel_operands(what, args):
    """CuPy's elementwise kernels take cupy arrays and scalars only (``_preprocess_args``)."""
    for x in args:
        if not isinstance(x, (ndarray, np.generic) + _PY_SCALARS) and x is not None:
            raise TypeError(f"Unsupported type {type(x)}")


class ufunc:
    """A CuPy ufunc: its NumPy namesake on device arrays and scalars only."""

    def __init__(self, np_ufunc):
        self._np = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs

    def __call__(self, *args, out=None, dtype=None, casting="same_kind"):
        _kernel_operands(self.__name__, args)
        kwargs = {}
        if out is not None:
            kwargs["out"] = out
        if dtype is not None:
            kwargs["dtype"] = dtype
        if casting != "same_kind":
            kwargs["casting"] = casting
        return device_call(self.__name__, self._np, args, kwargs)

    def _method(self, method, args, kwargs):
        _kernel_operands(self.__name__, args)
        return device_call(f"{self.__name__}.{method}", getattr(self._np, method), args, kwargs)

    def reduce(self, *args, **kwargs):
        return self._method("reduce", args, kwargs)

    def accumulate(self, *args, **kwargs):
        return self._method("accumulate", args, kwargs)

    def outer(self, *args, **kwargs):
        return self._method("outer", args, kwargs)

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"


UFUNC_OBJECTS = {}      # NumPy ufunc name -> the double's ufunc (for __array_ufunc__)
_exports = {}

for _name in UFUNCS:
    _u = getattr(np, _name, None)
    if isinstance(_u, np.ufunc):
        _obj = UFUNC_OBJECTS.setdefault(_u.__name__, ufunc(_u))
        _exports[_name] = _obj


def _array_function(name, np_func):
    writes_first = name in _IN_PLACE_FUNCTIONS
    sync = name in SIZE_FROM_DATA

    def f(*args, **kwargs):
        return device_call(name, np_func, args, kwargs,
                           writes=(args[0],) if writes_first and args else (), sync=sync)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"``numpy.{name}`` on the device (see cupy._namespace)."
    return f


for _name in ARRAY_FUNCTIONS:
    _f = getattr(np, _name, None)
    if callable(_f) and _name not in _exports:
        _exports[_name] = _array_function(_name, _f)
_exports["fix"] = _array_function("fix", np.fix)


def _meta(name, np_func):
    def f(*args, **kwargs):
        un = [a._a if isinstance(a, ndarray) else a for a in args]
        return np_func(*un, **kwargs)
    f.__name__ = name
    return f


for _name in META_FUNCTIONS:
    if hasattr(np, _name):
        _exports[_name] = _meta(_name, getattr(np, _name))

globals().update(_exports)


# --------------------------------------------------------------------------- creation
def empty(shape, dtype=float, order="C"):
    return ndarray(shape, dtype, order=order)


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    if not isinstance(prototype, ndarray):
        raise TypeError(f"Unsupported type {type(prototype)}")
    DEVICE.require()
    proto = prototype._a
    a = poisoned(proto.shape if shape is None else shape, proto.dtype if dtype is None else dtype,
                 "F" if order in ("F", "K", "A") and proto.flags.f_contiguous
                 and not proto.flags.c_contiguous else "C")
    return ndarray._view(a, DEVICE.allocate(a))


# --------------------------------------------------------------------------- transfers
def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        return device_call("array", np.array, (obj,), {"dtype": dtype, "copy": copy,
                                                       "order": order, "ndmin": ndmin})
    if isinstance(obj, (list, tuple)) and any(isinstance(v, ndarray) for v in obj):
        return _exports["stack"]([asarray(v, dtype) for v in obj])
    return from_host(obj, dtype=dtype, order=order, ndmin=ndmin)


def asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, ndarray):
        return device_call("asarray", np.asarray, (a,), {"dtype": dtype, "order": order})
    return array(a, dtype=dtype, order=order or "K", blocking=blocking)


asanyarray = asarray


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray):
        return device_call("ascontiguousarray", np.ascontiguousarray, (a,), {"dtype": dtype})
    return from_host(np.ascontiguousarray(a, dtype=dtype))


def asfortranarray(a, dtype=None):
    if isinstance(a, ndarray):
        return device_call("asfortranarray", np.asfortranarray, (a,), {"dtype": dtype})
    return from_host(np.asfortranarray(a, dtype=dtype), order="F")


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    return np.asarray(a, order=order)


def copy(a, order="K"):
    return device_call("copy", np.copy, (a,), {"order": order})


def copyto(dst, src, casting="same_kind", where=None):
    if isinstance(src, np.ndarray):
        if src.size != 1:
            raise ValueError("non-scalar numpy.ndarray cannot be used for copyto")
        src = src.reshape(())[()]
    kwargs = {"casting": casting}
    if where is not None:
        kwargs["where"] = where
    device_call("copyto", np.copyto, (dst, src), kwargs, writes=(dst,))


def where(condition, x=None, y=None):
    if x is None and y is None:
        return device_call("where", np.nonzero, (condition,), sync=True)
    _kernel_operands("where", (condition, x, y))
    return device_call("where", np.where, (condition, x, y))


def clip(a, a_min=None, a_max=None, out=None):
    _kernel_operands("clip", (a, a_min, a_max))
    return device_call("clip", np.clip, (a, a_min, a_max), {"out": out} if out is not None else {})


def get_array_module(*args):
    import cupy
    return cupy if any(isinstance(a, ndarray) for a in args) else np


def get_default_memory_pool():
    return DEVICE.pool


def get_default_pinned_memory_pool():
    return DEVICE.pinned_pool


def is_available():
    return DEVICE.enabled


__all__ = sorted(set(_exports) | {
    "empty", "empty_like", "array", "asarray", "asanyarray", "ascontiguousarray",
    "asfortranarray", "asnumpy", "copy", "copyto", "where", "clip", "get_array_module",
    "get_default_memory_pool", "get_default_pinned_memory_pool", "is_available", "ufunc"})
