"""``cupy.ndarray`` and CuPy's array functions, on the emulated device.

An array's bytes are a NumPy buffer (so the host build of a kernel can read them), but the
array is not a NumPy array, and it is as strict as CuPy's:

* ``numpy.asarray(a)`` and every other implicit conversion raise TypeError (CuPy's message);
* a NumPy array (of any shape, 0-d too) or a list handed to a ufunc raises
  ``TypeError: Unsupported type <class 'numpy.ndarray'>`` as CuPy's kernels do; the double
  refuses NumPy arrays in every other device function as well (CuPy would either refuse
  them or silently compute on the host). Explicit transfers (``cupy.asarray``,
  ``cupy.array``, ``ndarray.set``), indices and ``a[...] = host_value`` accept them, as in
  CuPy, and count a host-to-device copy;
* reductions return 0-d device arrays, and ``float()``, ``int()``, ``bool()``, ``.item()``,
  ``.get()``, ``repr()`` wait for the device (a host synchronisation, counted);
* operations whose output size depends on the data (``nonzero``, ``argwhere``, boolean-mask
  indexing, ``unique``, …) count a host synchronisation, as they do on a GPU;
* ``empty``/``empty_like`` are filled with 0xFF bytes (NaN in floats), as a reused pool
  block would hold stale values: a kernel that leaves part of its output unwritten shows.

Every operation runs on the current stream and is checked and counted by
:mod:`._device`. An operation that writes device memory or produces new device data counts
one launch (``array_launches``); views (slices, reshapes, transposes) count none.
"""
from __future__ import annotations

import numbers

import numpy as np

from ._device import DEVICE

_PY_SCALARS = (bool, int, float, complex)

#: CuPy's array functions that the double provides: ``dir(cupy)`` of CuPy 14.2 less file
#: I/O, printing, polynomials, windows, dtype helpers (META_FUNCTIONS) and those NumPy 2 lacks;
#: transfers, creation, copyto, where and clip are in _namespace
ARRAY_FUNCTIONS = """
all allclose amax amin angle any append apply_along_axis arange argmax argmin argpartition
argsort argwhere around array_equal array_equiv array_split atleast_1d atleast_2d atleast_3d
average bincount broadcast_arrays broadcast_to choose column_stack compress concat
concatenate convolve corrcoef correlate count_nonzero cov cross cumprod cumsum
cumulative_prod cumulative_sum delete diag diag_indices diag_indices_from diagflat diagonal
diff digitize dot dsplit dstack ediff1d einsum expand_dims extract eye fill_diagonal
flatnonzero flip fliplr flipud full full_like gradient histogram histogram2d histogramdd
hsplit hstack identity imag indices inner interp intersect1d isclose iscomplex isin isneginf
isposinf isreal ix_ kron lexsort linspace logspace mask_indices matmul matrix_transpose max
mean median meshgrid min moveaxis nan_to_num nanargmax nanargmin nancumprod nancumsum nanmax
nanmean nanmedian nanmin nanprod nanstd nansum nanvar nonzero ones ones_like outer pad
partition percentile permute_dims place prod ptp put put_along_axis putmask quantile ravel
ravel_multi_index real real_if_close repeat reshape resize roll rollaxis rot90 round
row_stack searchsorted select setdiff1d setxor1d sort sort_complex split squeeze stack std
sum swapaxes take take_along_axis tensordot tile trace transpose trapezoid tri tril
tril_indices tril_indices_from trim_zeros triu triu_indices triu_indices_from union1d unique
unique_all unique_counts unique_inverse unique_values unravel_index unwrap vander var vdot
vsplit vstack zeros zeros_like
""".split()

#: CuPy's ufuncs (``type(cupy.add).__name__ == 'ufunc'``), those NumPy also has
UFUNCS = """
abs absolute acos acosh add arccos arccosh arcsin arcsinh arctan arctan2 arctanh asin asinh
atan atan2 atanh bitwise_and bitwise_count bitwise_invert bitwise_left_shift bitwise_not
bitwise_or bitwise_right_shift bitwise_xor cbrt ceil conj conjugate copysign cos cosh
deg2rad degrees divide divmod equal exp exp2 expm1 fabs fix float_power floor floor_divide
fmax fmin fmod frexp gcd greater greater_equal heaviside hypot invert isfinite isinf isnan
lcm ldexp left_shift less less_equal log log10 log1p log2 logaddexp logaddexp2 logical_and
logical_not logical_or logical_xor maximum minimum mod modf multiply negative nextafter
not_equal positive pow power rad2deg radians reciprocal remainder right_shift rint sign
signbit sin sinc sinh sqrt square subtract tan tanh true_divide trunc
""".split()

#: functions of dtypes and shapes: no device work
META_FUNCTIONS = """
can_cast isscalar ndim shape size result_type promote_types min_scalar_type iscomplexobj
isrealobj isfortran may_share_memory shares_memory broadcast_shapes isdtype issubdtype
""".split()

#: output size depends on the data: the host waits for the device to learn it
SIZE_FROM_DATA = {"nonzero", "flatnonzero", "argwhere", "unique", "unique_all",
                  "unique_counts", "unique_inverse", "unique_values", "compress", "extract",
                  "bincount", "histogram", "setdiff1d", "intersect1d", "union1d", "setxor1d",
                  "delete", "trim_zeros"}

#: ndarray methods that write the array itself
_IN_PLACE_METHODS = {"fill", "sort", "partition", "put"}


def _host_refused(x, what):
    return TypeError(
        f"Unsupported type {type(x)}: {what} takes cupy.ndarray; the device double refuses "
        "host arrays in device operations, as CuPy's kernels do (cupy.asarray makes one)")


class _Unwrap:
    """Replace the double's arrays by their NumPy buffers, collecting the memories read."""

    __slots__ = ("what", "host_ok", "reads", "h2d")

    def __init__(self, what, host_ok=False):
        self.what, self.host_ok, self.reads, self.h2d = what, host_ok, [], 0

    def __call__(self, x):
        if isinstance(x, ndarray):
            self.reads.append(x._mem)
            return x._a
        if isinstance(x, np.ndarray):
            if not self.host_ok:
                raise _host_refused(x, self.what)
            self.h2d += 1
            return x
        if type(x) in (list, tuple):
            return type(x)(self(v) for v in x)
        return x


def _wrap(r, stream, fresh):
    """The double's array for a NumPy result (a view of a known memory, or new memory);
    ``fresh`` collects whether new device data was made."""
    if isinstance(r, np.ndarray):
        owner = r if r.base is None else r.base
        mem = DEVICE.memory_of(owner) if isinstance(owner, np.ndarray) else None
        if mem is None:
            if not isinstance(owner, np.ndarray):
                r = owner = np.array(r)
            mem = DEVICE.allocate(owner, stream)
            fresh.append(True)
        return ndarray._view(r, mem)
    if isinstance(r, (np.generic,) + _PY_SCALARS):
        a = np.asarray(r)
        fresh.append(True)
        return ndarray._view(a, DEVICE.allocate(a, stream))
    if isinstance(r, (tuple, list)):
        return type(r)(_wrap(v, stream, fresh) for v in r)
    return r


def device_call(what, fn, args=(), kwargs=None, *, writes=(), host_ok=False, sync=False):
    """Run ``fn`` (a NumPy function) on the device: arguments unwrapped, accesses checked
    on the current stream, the result wrapped, the launch counted."""
    kwargs = kwargs or {}
    with DEVICE.lock:
        DEVICE.require()
        un = _Unwrap(what, host_ok)
        uargs = un(tuple(args))
        ukw = {k: un(v) for k, v in kwargs.items()}
        wmems = [w._mem for w in writes]
        out = kwargs.get("out")
        outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            if o is None:
                continue
            if not isinstance(o, ndarray):
                raise TypeError(f"{what}: out must be a cupy.ndarray, got {type(o).__name__}")
            wmems.append(o._mem)
        stream = DEVICE.current_stream()
        DEVICE.access(stream, un.reads, wmems)
        if un.h2d:
            DEVICE.counters["h2d_copies"] += un.h2d
        if sync:
            DEVICE.count_sync(what)
        r = fn(*uargs, **ukw)
        fresh = []
        if out is not None and isinstance(out, ndarray) and r is ukw["out"]:
            res = out
        else:
            res = _wrap(r, stream, fresh)
        if fresh or wmems:
            DEVICE.count_launch(what)
        return res


class _Flags:
    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a, own):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = own

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]


class MemoryPointer:
    """``ndarray.data``: the device address of the array's first element."""

    def __init__(self, array):
        self.ptr = array._address()
        self.mem = array._mem

    def __int__(self):
        return self.ptr


class ndarray:
    """``cupy.ndarray`` on the emulated device (see the module docstring)."""

    __slots__ = ("_a", "_mem", "_ptr", "_flags", "__weakref__")
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the device double does not wrap external memory")
        DEVICE.require()
        a = poisoned(shape, dtype, order)
        self._a, self._mem = a, DEVICE.allocate(a)

    @classmethod
    def _view(cls, a, mem):
        self = object.__new__(cls)
        self._a, self._mem = a, mem
        return self

    def _address(self) -> int:
        """The device address of the first element (what a kernel argument packs)."""
        try:
            return self._ptr
        except AttributeError:
            self._ptr = self._a.__array_interface__["data"][0]
            return self._ptr

    # attributes --------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)

    @property
    def flags(self):
        try:
            return self._flags
        except AttributeError:          # an array's layout never changes: computed once
            self._flags = _Flags(self._a, self._a.base is None)
            return self._flags
    data = property(lambda self: MemoryPointer(self))

    @property
    def device(self):
        from .cuda import Device
        return Device(0)

    @property
    def T(self):
        return device_call("ndarray.T", np.transpose, (self,))

    @property
    def real(self):
        return device_call("ndarray.real", np.real, (self,))

    @property
    def imag(self):
        return device_call("ndarray.imag", np.imag, (self,))

    # host transfers ----------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        """A host copy (see ``cupy.ndarray.get``): blocking by default; with
        ``blocking=False`` into pinned memory it runs when its stream is waited for."""
        from ._transfer import device_to_host
        return device_to_host(self, stream, order, out, blocking)

    def set(self, arr, stream=None):
        from ._transfer import host_to_device
        host_to_device(self, arr, stream)

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def item(self):
        return self.get().item()

    def tolist(self):
        return self.get().tolist()

    def __format__(self, spec):
        return format(self.get(), spec)

    # containers --------------------------------------------------------------
    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return self._a.shape[0]

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self._a.shape[0]))

    def __getitem__(self, key):
        sync = _mask_index(key)
        key = _view_key(key)
        return device_call("ndarray.__getitem__", _getitem, (self, key), host_ok=True,
                           sync=sync)

    def __setitem__(self, key, value):
        device_call("ndarray.__setitem__", _setitem, (self, key, value), writes=(self,),
                    host_ok=True)

    # NumPy interoperability: what CuPy dispatches, and nothing else --------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from . import _namespace
        mine = _namespace.UFUNC_OBJECTS.get(ufunc.__name__)
        if mine is None:
            return NotImplemented
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        fn = mine if method == "__call__" else getattr(mine, method, None)
        if fn is None:
            return NotImplemented
        return fn(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        import cupy
        module = cupy
        for part in func.__module__.split(".")[1:]:
            module = getattr(module, part, None)
            if module is None:
                return NotImplemented
        mine = getattr(module, func.__name__, None)
        if mine is None or mine is func:
            return NotImplemented
        return mine(*args, **kwargs)

    __hash__ = None


def poisoned(shape, dtype, order="C"):
    """Uninitialised memory as a reused pool block holds it: 0xFF bytes (NaN, -1, True)."""
    a = np.empty(shape, dtype=dtype, order=order)
    if a.size:
        a.reshape(-1, order="A").view(np.uint8).fill(0xFF)
    return a


def _mask_index(key):
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, (ndarray, np.ndarray)) and k.dtype == np.bool_ for k in keys)


def _view_key(key):
    """An integer index of every axis gives a 0-d *view* in CuPy (NumPy gives a scalar)."""
    keys = key if isinstance(key, tuple) else (key,)
    if all(isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in keys):
        return keys + (Ellipsis,)
    return key


def _getitem(a, key):
    return a[key]


def _setitem(a, key, value):
    a[key] = value


# --------------------------------------------------------------------------- methods
def _method(name):
    np_method = getattr(np.ndarray, name)
    in_place = name in _IN_PLACE_METHODS

    def method(self, *args, **kwargs):
        return device_call(f"ndarray.{name}", np_method, (self,) + args, kwargs,
                           writes=(self,) if in_place else (),
                           sync=name in SIZE_FROM_DATA)
    method.__name__ = name
    return method


for _name in ("all any argmax argmin argpartition argsort astype choose clip compress conj "
              "conjugate copy cumprod cumsum diagonal dot fill flatten max mean min nonzero "
              "partition prod ptp put ravel repeat reshape round searchsorted sort squeeze "
              "std sum swapaxes take trace transpose var view").split():
    if hasattr(np.ndarray, _name):
        setattr(ndarray, _name, _method(_name))


def _binary(np_ufunc, reflected=False, in_place=False):
    name = np_ufunc.__name__

    def op(self, other):
        if not isinstance(other, (ndarray,) + _PY_SCALARS + (np.generic,)):
            if isinstance(other, np.ndarray):
                raise TypeError(f"Unsupported type {type(other)}")
            return NotImplemented
        from . import _namespace
        uf = _namespace.UFUNC_OBJECTS[name]
        if in_place:
            return uf(self, other, out=self)
        return uf(other, self) if reflected else uf(self, other)
    return op


for _op, _uf in {"add": np.add, "sub": np.subtract, "mul": np.multiply,
                 "truediv": np.true_divide, "floordiv": np.floor_divide, "mod": np.remainder,
                 "pow": np.power, "matmul": np.matmul, "and": np.bitwise_and,
                 "or": np.bitwise_or, "xor": np.bitwise_xor, "lshift": np.left_shift,
                 "rshift": np.right_shift}.items():
    setattr(ndarray, f"__{_op}__", _binary(_uf))
    setattr(ndarray, f"__r{_op}__", _binary(_uf, reflected=True))
    setattr(ndarray, f"__i{_op}__", _binary(_uf, in_place=True))
for _op, _uf in {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                 "gt": np.greater, "ge": np.greater_equal}.items():
    setattr(ndarray, f"__{_op}__", _binary(_uf))


# conversions through the host, as CuPy's: each waits for the device (get())
for _name, _convert in {"__float__": float, "__int__": int, "__complex__": complex,
                        "__bool__": bool, "__repr__": repr, "__str__": str}.items():
    setattr(ndarray, _name, lambda self, convert=_convert: convert(self.get()))


def _unary(np_ufunc):
    def op(self):
        from . import _namespace
        return _namespace.UFUNC_OBJECTS[np_ufunc.__name__](self)
    return op


ndarray.__neg__ = _unary(np.negative)
ndarray.__pos__ = _unary(np.positive)
ndarray.__abs__ = _unary(np.absolute)
ndarray.__invert__ = _unary(np.invert)

