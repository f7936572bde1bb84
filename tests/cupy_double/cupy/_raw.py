"""``cupy.RawModule`` and ``cupy.RawKernel``: CUDA source compiled for the host, launched
with the configuration the caller asks for.

Compilation is CuPy's, on the host compiler: lazy (at ``compile()``, ``get_function`` or the
first launch), with CuPy's own additions to the options (``--std=c++17`` when no standard
is given, ``-ftz=true``, the device's ``-arch``), memoised per process and cached on disk
under ``$CUPY_CACHE_DIR`` (default ``~/.cupy/kernel_cache``) keyed by source and options,
written atomically so that parallel processes share it; a failure raises
``cupy.cuda.compiler.CompileException`` carrying the compiler's log. The source is compiled
after ``cuda_on_host.h`` (NVRTC's macros, so the GPU branch of ``#if defined(__CUDACC__)``
is what runs) with ``-ffp-contract=fast -mfma`` where the CPU has FMA (NVRTC contracts
a·b + c into fused multiply-adds by default; ``--fmad=false`` turns both off).

A launch checks what CuPy and the driver would: ``grid`` and ``block`` are tuples; at most
1024 threads per block (1024, 1024, 64 per axis), grid axes within (2³¹−1, 65535, 65535),
else ``CUDADriverError: CUDA_ERROR_INVALID_VALUE``; a block of more threads than the
kernel's ``__launch_bounds__`` (read from the preprocessed source; ``attributes`` reports it
as ``max_threads_per_block``) is ``CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES``, as the driver
refuses it. Arguments are packed as CuPy's
``_pointer`` packs them (``None`` an 8-byte null pointer, a cupy array its device address,
a NumPy scalar its own bytes, a Python ``float`` a float64, an ``int`` an int64, a ``bool``
one byte) and then compared with the kernel's parameters, which the compiler reports:
the GPU reads each parameter by its declared size, so a float64 for a ``float``, an int32
for a ``long long``, a 4-byte null pointer, or an array of another element type would be
read as garbage there; the double raises TypeError naming the kernel and the parameter.
Every thread of the grid then runs the kernel body with its ``threadIdx``/``blockIdx``
(blocks last-first), with float denormals flushed for kernels with ``float`` parameters
(NVRTC's ``-ftz=true``; on x86 through MXCSR, which also flushes double denormals inside
such a kernel: values below 2.2e-308 only).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ._core import ndarray
from ._device import DEVICE, CUDADriverError

_SHIM = Path(__file__).with_name("cuda_on_host.h")
_DOUBLE_VERSION = "1"
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+'
                     r'(?:__launch_bounds__\s*\(((?:[^()]|\([^()]*\))*)\)\s*)?(\w+)\s*\(([^)]*)\)',
                     re.S)
_MAX_BLOCK = (1024, 1024, 64)
_MAX_GRID = (2**31 - 1, 65535, 65535)
_STRUCT = {("f", 4): "f", ("f", 8): "d", ("i", 8): "q", ("u", 8): "Q", ("i", 4): "i",
           ("u", 4): "I", ("i", 2): "h", ("u", 2): "H", ("i", 1): "b", ("u", 1): "B",
           ("b", 1): "?", ("p", 8): "Q"}
_C_TYPE = {("f", 4): "float", ("f", 8): "double", ("i", 8): "long long",
           ("u", 8): "unsigned long long", ("i", 4): "int", ("u", 4): "unsigned int",
           ("i", 2): "short", ("u", 2): "unsigned short", ("i", 1): "signed char",
           ("u", 1): "unsigned char", ("b", 1): "bool"}


def _cxx():
    return os.environ.get("CXX", "g++")


def _host_has_fma() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return " fma " in f.read().replace("\n", " ")
    except OSError:
        return False


def cache_dir() -> Path:
    return Path(os.environ.get("CUPY_CACHE_DIR", os.path.expanduser("~/.cupy/kernel_cache")))


class _Options:
    """NVRTC options as the host compiler sees them."""

    def __init__(self, options):
        opts = tuple(options)
        if not any("-std=" in o for o in opts):
            opts += ("--std=c++17",)                  # CuPy 14's default
        opts += ("-ftz=true", f"-arch=sm_{DEVICE.compute_capability}",
                 "--device-as-default-execution-space")
        self.all = opts
        self.flags, self.ignored = [], []
        self.ftz, self.fmad = False, True
        std = "c++17"
        for o in opts:
            key, _, value = o.lstrip("-").partition("=")
            if o.startswith("-D") or o.startswith("--define-macro"):
                self.flags.append("-D" + (o[2:] if o.startswith("-D") else value))
            elif o.startswith("-I") or o.startswith("--include-path"):
                self.flags.append("-I" + (o[2:] if o.startswith("-I") else value))
            elif key == "std":
                std = value
            elif key == "ftz":
                self.ftz = value == "true"
            elif key == "fmad":
                self.fmad = value == "true"
            elif key == "use_fast_math":
                self.ftz = True
            else:
                self.ignored.append(o)
        contract = ["-ffp-contract=fast", "-mfma"] if self.fmad and _host_has_fma() \
            else ["-ffp-contract=off"]
        self.fma_emulated = self.fmad and _host_has_fma()
        self.cxx = [f"-std={std}", "-O2", "-fPIC", "-shared", "-fno-math-errno", *contract]


class HostModule:
    """One compiled RawModule: the shared library and its kernels' parameter types."""

    def __init__(self, code: str, options: tuple):
        self.code, self.options = code, _Options(options)
        self.names = self._kernel_names()
        self.path = self._build()
        self.lib = ctypes.CDLL(str(self.path))
        self.params = {}
        for name in self.names:
            describe = getattr(self.lib, f"sdtp_double_describe_{name}")
            describe.argtypes = [ctypes.POINTER(ctypes.c_int)]
            buf = (ctypes.c_int * (5 * 128))()
            n = describe(buf)
            self.params[name] = [tuple(buf[5 * k:5 * k + 5]) for k in range(n)]

    def _run(self, args, what):
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            from .cuda.compiler import CompileException
            log = proc.stderr[-8000:]
            raise CompileException(log, self.code, "kern.cu", self.options.all)
        return proc.stdout

    def _source(self):
        return f'#include "{_SHIM}"\n#line 1 "kern.cu"\n{self.code}\n'

    def _kernel_names(self):
        """extern "C" __global__ kernels of the code, with their parameter names."""
        if shutil.which(_cxx()) is None:
            from .cuda.compiler import CompileException
            raise CompileException(f"the device double compiles with {_cxx()!r}, which is "
                                   "not installed", self.code, "kern.cu", self.options.all)
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "kern.cu"
            src.write_text(self._source())
            text = self._run([_cxx(), "-E", "-P", "-DSDTP_DOUBLE_PREPROCESS", "-x", "c++",
                              *self.options.cxx[:1], *self.options.flags, str(src)],
                             "preprocess")
        self.param_names, self.max_threads = {}, {}
        for bounds, name, params in _KERNEL.findall(text):
            self.param_names[name] = [p.replace("*", " ").split()[-1]
                                      for p in params.split(",") if p.strip()]
            self.max_threads[name] = _launch_bound(name, bounds) if bounds else 1024
        return list(self.param_names)

    def _build(self) -> Path:
        key = hashlib.sha1("\0".join([
            _DOUBLE_VERSION, self.code, " ".join(self.options.all), " ".join(self.options.cxx),
            _SHIM.read_text(), _compiler_version()]).encode()).hexdigest()
        target = cache_dir() / f"{key}.double.so"
        if target.exists():
            DEVICE.counters["compile_cache_hits"] += 1
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        stubs = "".join(f"SDTP_DOUBLE_STUB({n})\n" for n in self.names)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            src = Path(tmp) / "kern.cu"
            src.write_text(self._source() + stubs)
            out = Path(tmp) / target.name
            self._run([_cxx(), "-x", "c++", *self.options.cxx, *self.options.flags, str(src),
                       "-o", str(out)], "compile")
            os.replace(out, target)              # atomic: parallel jobs share the cache
        DEVICE.counters["compiles"] += 1
        return target


def _launch_bound(name, bounds):
    """maxThreadsPerBlock of ``__launch_bounds__(max[, minBlocks[, maxBlocksPerCluster]])``,
    as the preprocessor left it (a number, perhaps in parentheses)."""
    first = bounds.split(",")[0].strip()
    while first.startswith("(") and first.endswith(")"):
        first = first[1:-1].strip()
    try:
        value = int(first, 0)
    except ValueError:
        raise NotImplementedError(f"kernel {name}: the device double reads a __launch_bounds__ "
                                  f"that is a number after preprocessing, not {bounds!r}") from None
    if not 1 <= value <= 1024:
        from .cuda.compiler import CompileException
        raise CompileException(f"kernel {name}: __launch_bounds__({value}) is outside 1..1024",
                               "", "kern.cu", ())
    return value


_VERSION = {}


def _compiler_version():
    if "v" not in _VERSION:
        p = subprocess.run([_cxx(), "--version"], capture_output=True, text=True)
        _VERSION["v"] = p.stdout.splitlines()[0] if p.stdout else _cxx()
    return _VERSION["v"]


_MODULES = {}        # (code, options) -> HostModule: CuPy memoises compiled modules too


def _module(code, options):
    key = (code, tuple(options))
    with DEVICE.lock:
        if key not in _MODULES:
            _MODULES[key] = HostModule(code, tuple(options))
        return _MODULES[key]


class RawModule:
    """``cupy.RawModule(code=..., options=...)``: compiled at first use (or ``compile()``)."""

    def __init__(self, *, code=None, path=None, options=(), backend="nvrtc",
                 translate_cucomplex=False, enable_cooperative_groups=False,
                 name_expressions=None, jitify=None):
        if (code is None) == (path is None):
            raise TypeError("Exactly one of `code` and `path` keyword arguments must be given.")
        if path is not None or name_expressions:
            raise NotImplementedError("the device double compiles source code with extern "
                                      '"C" kernels only')
        if not isinstance(options, tuple):
            raise TypeError(f"Argument 'options' has incorrect type (expected tuple, got "
                            f"{type(options).__name__})")
        self.code, self.options, self.backend = code, options, backend

    @property
    def module(self) -> HostModule:
        DEVICE.require()
        return _module(self.code, self.options)

    def compile(self, log_stream=None):
        self.module  # noqa: B018  (compiles)

    def get_function(self, name):
        mod = self.module
        if name not in mod.names:
            raise CUDADriverError("CUDA_ERROR_NOT_FOUND: named symbol not found")
        return RawKernel._of(mod, name)


class RawKernel:
    """One kernel of a module; ``kernel(grid, block, args)`` launches it."""

    def __init__(self, code, name, options=(), backend="nvrtc", **kwargs):
        self.code, self.name, self.options = code, name, tuple(options)
        self._mod = None
        self._ready = None

    @classmethod
    def _of(cls, mod, name):
        k = cls(mod.code, name, mod.options.all)
        k._mod = mod
        return k

    def _prepare(self):
        """The launch stub, the parameters' types and reusable argument buffers."""
        if self._mod is None:
            self._mod = RawModule(code=self.code, options=self.options).module
            if self.name not in self._mod.names:
                raise CUDADriverError("CUDA_ERROR_NOT_FOUND: named symbol not found")
        fn = getattr(self._mod.lib, f"sdtp_double_launch_{self.name}")
        fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint),
                       ctypes.POINTER(ctypes.c_uint), ctypes.c_int]
        fn.restype = None
        params = self._mod.params[self.name]
        n = max(1, len(params))
        # each parameter's bytes at its own 8-byte aligned offset (a struct by value is
        # larger than 8 bytes), where kernelParams[k] points, as cuLaunchKernel reads them
        offsets, total = [], 0
        for _kind, size, *_rest in params:
            offsets.append(total)
            total += max(8, -(-size // 8) * 8)
        values = (ctypes.c_uint64 * max(1, total // 8))()
        pointers = (ctypes.c_void_p * n)(*[ctypes.addressof(values) + o for o in offsets]
                                         or [ctypes.addressof(values)])
        # per parameter: the NumPy scalar type that packs exactly as it is read, or the
        # element dtypes a pointer parameter reads correctly (the fast path of a launch)
        fast = []
        for kind, size, pkind, psize, const in params:
            kind, pkind = chr(kind), chr(pkind) if pkind else ""
            if kind == "S":
                fast.append(("S", size, None))
            elif kind == "p":
                ok = {np.dtype(t) for t in np.sctypeDict.values()
                      if isinstance(t, type) and np.dtype(t).kind in "biuf"
                      and _same_element(np.dtype(t), pkind, psize)} if psize else None
                fast.append(("p", ok, bool(const)))
            else:
                typ = {("f", 4): np.float32, ("f", 8): np.float64, ("i", 8): np.int64,
                       ("u", 8): np.uint64, ("i", 4): np.int32, ("u", 4): np.uint32,
                       ("b", 1): np.bool_, ("u", 1): np.uint8}.get((kind, size))
                fast.append(("s", typ, _STRUCT.get((kind, size))))
        ftz = any((chr(k) == "f" and s == 4) or (pk and chr(pk) == "f" and ps == 4)
                  for k, s, pk, ps, _c in params) and self._mod.options.ftz
        self._ready = (fn, params, fast, values, pointers, int(ftz), offsets)
        return self._ready

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None,
                 enable_cooperative_groups=False):
        for label, dims in (("grid", grid), ("block", block)):
            if not isinstance(dims, tuple):
                raise TypeError(f"Argument '{label}' has incorrect type (expected tuple, got "
                                f"{type(dims).__name__})")
        grid = tuple(max(1, int(v)) for v in (grid + (1, 1))[:3])
        block = tuple(max(1, int(v)) for v in (block + (1, 1))[:3])
        if (block[0] * block[1] * block[2] > 1024
                or any(b > m for b, m in zip(block, _MAX_BLOCK))
                or any(g > m for g, m in zip(grid, _MAX_GRID))):
            raise CUDADriverError("CUDA_ERROR_INVALID_VALUE: invalid argument (kernel "
                                  f"{self.name}: grid {grid}, block {block}; at most 1024 "
                                  "threads per block, block ≤ (1024, 1024, 64), grid ≤ "
                                  "(2147483647, 65535, 65535))")
        if shared_mem:
            raise NotImplementedError("the device double does not emulate shared memory")
        args = tuple(args)
        with DEVICE.lock:
            DEVICE.require()
            fn, params, fast, values, pointers, ftz, offsets = self._ready or self._prepare()
            bound = self._mod.max_threads[self.name]
            if block[0] * block[1] * block[2] > bound:
                # a block larger than the kernel's __launch_bounds__: ptxas sized its
                # registers for at most `bound` threads, and cuLaunchKernel refuses
                raise CUDADriverError(
                    "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: too many resources requested for "
                    f"launch (kernel {self.name}: block {block}, {block[0] * block[1] * block[2]}"
                    f" threads; its __launch_bounds__ allows {bound})")
            if len(args) != len(params):
                names = self._mod.param_names.get(self.name, [])
                raise TypeError(f"kernel {self.name} has {len(params)} parameters "
                                f"({', '.join(names)}); {len(args)} arguments were given")
            reads, writes = [], []
            for k, arg in enumerate(args):
                how, a, b = fast[k]
                at = offsets[k]
                if how == "p" and type(arg) is ndarray and (a is None or arg._a.dtype in a):
                    struct.pack_into("Q", values, at, arg._address())
                    (reads if b else writes).append(arg._mem)
                elif how == "p" and type(arg) is np.uint64 and arg == 0:     # 8-byte null
                    struct.pack_into("Q", values, at, 0)
                elif how == "s" and type(arg) is a:
                    struct.pack_into(b, values, at, arg)
                elif how == "S":            # a struct by value: a NumPy record of its size
                    memoryview(values).cast("B")[at:at + a] = _struct_bytes(
                        arg, a, self._label(k))
                else:                       # CuPy's general packing, and the reasons it fails
                    fmt, value, mem = _packed(arg, params[k], self._label(k))
                    struct.pack_into(fmt, values, at, value)
                    if mem is not None:
                        (reads if params[k][4] else writes).append(mem)
            s = DEVICE.current_stream() if stream is None else stream
            DEVICE.access(s, reads, writes)
            fn(pointers, (ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), ftz)
            DEVICE.counters["kernel_launches"] += 1
            DEVICE.kernel_counts[self.name] += 1

    def _label(self, k):
        names = self._mod.param_names.get(self.name, [])
        return f"kernel {self.name} parameter {k} ({names[k] if k < len(names) else '?'})"

    @property
    def attributes(self):
        mod = self._mod or RawModule(code=self.code, options=self.options).module
        return {"max_threads_per_block": mod.max_threads.get(self.name, 1024)}

    @property
    def max_threads_per_block(self):
        return self.attributes["max_threads_per_block"]


def _struct_bytes(arg, size, label):
    """The bytes of a struct passed by value: CuPy passes a NumPy structured scalar (or a
    size-one structured array) as its bytes; the kernel reads ``size`` of them."""
    if isinstance(arg, np.ndarray) and arg.size == 1:
        arg = arg.reshape(())[()]
    if not isinstance(arg, np.void):
        raise TypeError(f"{label} is a struct of {size} bytes passed by value; a "
                        f"{type(arg).__name__} was passed (pass a NumPy structured scalar "
                        "of the struct's layout)")
    if arg.dtype.itemsize != size:
        raise TypeError(f"{label} is a struct of {size} bytes passed by value; a record of "
                        f"{arg.dtype.itemsize} bytes ({arg.dtype}) was passed: the GPU would "
                        "read the bytes as another layout")
    return arg.tobytes()


def _packed(arg, param, label):
    """(struct format, value, memory) of one argument, as CuPy packs it, checked against
    the kernel's parameter (kind, size, pointee kind, pointee size, const)."""
    kind, size, psize = chr(param[0]), param[1], param[3]
    pkind = chr(param[2]) if param[2] else ""
    want = f"{_C_TYPE.get((pkind, psize), 'void')}*" if kind == "p" \
        else _C_TYPE.get((kind, size), "?")
    # ---- CuPy's packing (cupy/cuda/function.pyx: _pointer; _scalar.pyx: CScalar)
    if arg is None:
        akind, asize, value, mem, dtype = "p", 8, 0, None, None
    elif isinstance(arg, ndarray):
        akind, asize, value, mem, dtype = "p", 8, arg._address(), arg._mem, arg.dtype
    else:
        if isinstance(arg, np.ndarray):
            if arg.size != 1:
                raise TypeError(
                    f"You are trying to pass a numpy.ndarray of shape {arg.shape} as a kernel "
                    "parameter. Only numpy.ndarrays of size one can be passed by value. If you "
                    "meant to pass a pointer to __global__ memory, you need to pass a "
                    "cupy.ndarray instead.")
            arg = arg.reshape(())[()]
        if type(arg) is bool:
            arg = np.bool_(arg)
        elif type(arg) is float:
            arg = np.float64(arg)
        elif type(arg) is int:
            arg = np.uint64(arg) if arg >= 2**63 else np.int64(arg)
        elif type(arg) is complex:
            arg = np.complex128(arg)
        if not isinstance(arg, np.generic):
            raise TypeError(f"Unsupported type {type(arg)}")
        dtype = arg.dtype
        akind, asize, value, mem = dtype.kind, dtype.itemsize, arg.item(), None
        dtype = None
        if (akind, asize) not in _STRUCT:
            raise TypeError(f"{label}: a {arg.dtype} argument cannot be passed to {want}")
    # ---- what the GPU would read
    if kind == "p":
        if akind == "p":
            if dtype is not None and psize and not _same_element(dtype, pkind, psize):
                raise TypeError(f"{label} is {want}; a {dtype} array was passed, whose "
                                "elements the kernel would read as another type")
            return "Q", value, mem
        if akind in "iu" and value == 0:
            if asize != 8:
                raise TypeError(f"{label} is a pointer ({want}, 8 bytes); a {asize}-byte "
                                "null was passed: the GPU would read 8 bytes there")
            return "Q", 0, None
        raise TypeError(f"{label} is a pointer ({want}); a {_C_TYPE.get((akind, asize))} "
                        "value was passed")
    if akind == "p":
        raise TypeError(f"{label} is {want}, passed by value; a pointer was passed")
    if asize != size or (akind == "f") != (kind == "f") or (akind == "b") != (kind == "b"):
        got = _C_TYPE.get((akind, asize), f"{akind}{asize}")
        hint = " (a Python float is packed as a double)" if (akind, asize) == ("f", 8) else \
               " (a Python int is packed as a long long)" if (akind, asize) == ("i", 8) else ""
        raise TypeError(f"{label} is {want} ({size} bytes); a {got} ({asize} bytes) was "
                        f"passed{hint}: the GPU would read its bytes as {want}")
    return _STRUCT[(akind, asize)], value, None


def _same_element(dtype, pkind, psize):
    if dtype.itemsize != psize:
        return False
    if pkind == "u" and psize == 1:
        return dtype.kind in "ub"            # bool arrays as unsigned char*: same bytes
    return dtype.kind == pkind or (pkind in "iu" and dtype.kind in "iu")
