"""Backend ``cupy``: the state on an NVIDIA GPU, stepped by the kernels of ``kernels/``.

The kernels are compiled when the backend is made, by CuPy's NVRTC (``cupy.RawModule``),
one module per precision, with the local headers inlined into the source so that CuPy's
on-disk kernel cache (``~/.cupy/kernel_cache``, or ``$CUPY_CACHE_DIR``) is keyed by
everything the kernels read: later runs, and the other jobs of a sweep, load the cached
binaries (CuPy writes each cache entry atomically, so parallel jobs may share the folder).
CuPy itself compiles lazily, at a module's first ``get_function``; compiling at
construction instead turns a compile error into :class:`BackendUnavailable` with NVRTC's
log, which ``backend=auto`` reports before falling back to ``cpu``, rather than an error
in the middle of a step. The whole state stays on the device;
per step only the observable sums (a few dozen doubles) come back to the host, and output
frames are copied on a side stream into pinned memory so that the run file is written while
the next steps compute.

Install: ``pip install "spatialdtp[gpu]"`` (``cupy-cuda12x[ctk]``: CuPy for CUDA 12 with the
runtime compiler NVRTC from PyPI); on a CUDA 13 driver stack ``pip install
"spatialdtp[gpu13]"`` (``cupy-cuda13x[ctk]``). Either needs an NVIDIA driver.
"""
from __future__ import annotations

import numpy as np

from .base import Backend, BackendUnavailable, register
from .kernels import KernelLibrary, block_threads, module_source

INSTALL_HINT = ("install the GPU extra: pip install 'spatialdtp[gpu]' (CuPy for CUDA 12), or "
                "pip install 'spatialdtp[gpu13]' (cupy-cuda13x) for CUDA 13; it needs an "
                "NVIDIA GPU and driver")

_BLOCKS_PER_SM = 32     # the grid's cap: enough blocks in flight; kernels stride beyond it


def import_cupy():
    """CuPy, if it is installed and sees a usable GPU; else BackendUnavailable saying why."""
    try:
        import cupy
    except ImportError as err:
        raise BackendUnavailable(f"backend cupy: CuPy is not installed ({err}); "
                                 + INSTALL_HINT) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError without a driver, e.g.
        raise BackendUnavailable(f"backend cupy: CuPy {cupy.__version__} is installed but "
                                 f"finds no usable GPU ({err}); " + INSTALL_HINT) from None
    if count < 1:
        raise BackendUnavailable("backend cupy: CuPy sees no GPU on this machine; "
                                 + INSTALL_HINT)
    try:   # the kernels compile at first launch: without NVRTC that would fail mid-run
        cupy.cuda.nvrtc.getVersion()
    except Exception as err:
        raise BackendUnavailable(f"backend cupy: CuPy {cupy.__version__} finds no NVRTC "
                                 f"library to compile the kernels ({err}); install the CUDA "
                                 "toolkit's NVRTC, e.g. pip install 'cuda-toolkit[nvrtc]' "
                                 "matching CuPy's CUDA major version") from None
    return cupy


def nvrtc_options(dtype) -> tuple:
    """The options the kernels of ``dtype`` are compiled with (CuPy adds its own: see
    ``tests/test_backends.py``, which compiles with both to check the sm_90 binary)."""
    real = "float" if np.dtype(dtype) == np.float32 else "double"
    return (f"-DSDTP_REAL={real}", "--std=c++14")


class CupyKernelLibrary(KernelLibrary):
    """The kernels of one precision as one ``cupy.RawModule``, compiled and loaded here."""

    sums_in_kernel = True

    def __init__(self, cupy, dtype):
        source = module_source()
        super().__init__(dtype, source)
        self.cp = cupy
        self.options = nvrtc_options(self.dtype)
        # threads per block: kernels/sdtp.h's SDTP_BLOCK_THREADS, each kernel's launch bound
        self.block_threads = block_threads(source)
        self.module = cupy.RawModule(code=source, options=self.options)
        try:
            self.module.compile()
            self._functions = {name: self.module.get_function(name) for name in self.signatures}
        except cupy.cuda.compiler.CompileException as err:
            raise BackendUnavailable(
                f"backend cupy: NVRTC could not compile kernels/*.cu for {self.dtype} "
                f"(options {' '.join(self.options)}):\n{str(err)[-4000:]}") from None
        except Exception as err:  # noqa: BLE001  (no binary for this GPU, headers missing…)
            raise BackendUnavailable(
                f"backend cupy: the kernels for {self.dtype} could not be compiled or "
                f"loaded ({type(err).__name__}: {err})") from None
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        self.sms = int(props["multiProcessorCount"])
        self._np_real = np.float32 if self.dtype == np.float32 else np.float64

    def function(self, name):
        return self._functions[name]

    def reduction_chunks(self, n: int) -> int:
        # enough threads to fill every SM several times over, but each summing at least 64
        # voxels, so that the partials stay far smaller than the fields
        return max(1, min(int(n) // 64 + 1, 8 * self.block_threads * self.sms))

    def _idx(self, v):
        return np.int64(v)

    def _real(self, v):
        return self._np_real(v)

    def _null(self):
        return np.uint64(0)

    def _reals(self, values):
        # a NumPy structured scalar: CuPy passes its bytes by value, as the struct
        # `{ real v[N]; }` the kernel declares
        record = np.zeros((), dtype=[("v", self._np_real, (len(values),))])
        record["v"] = values
        return record[()]

    def _pointer(self, a):
        if not isinstance(a, self.cp.ndarray):
            raise TypeError(f"backend cupy: kernels take CuPy arrays, got {type(a).__name__}")
        return a

    def _call(self, name, n, args):
        threads = self.block_threads
        blocks = min((n + threads - 1) // threads, _BLOCKS_PER_SM * self.sms)
        self.function(name)((blocks,), (threads,), tuple(args))


class _PendingCopy:
    """A device-to-host copy in flight on a side stream; ``result()`` waits for it.

    The device-side snapshot is taken on the compute stream, in order with the kernels
    that wrote ``a`` and before any later kernel overwrites it; only the transfer of that
    private copy into pinned memory runs on ``stream``, so the next steps compute while it
    travels. ``result()`` may be called from another thread (the run file's writer).
    """

    def __init__(self, cupy, a, stream):
        compute = cupy.cuda.get_current_stream()
        device_copy = a.copy()                # C order, on the compute stream: in step order
        pinned = cupy.cuda.alloc_pinned_memory(device_copy.nbytes)
        self._host = np.frombuffer(pinned, device_copy.dtype, device_copy.size).reshape(a.shape)
        stream.wait_event(compute.record())   # the copy exists before the transfer starts
        device_copy.get(stream=stream, out=self._host, blocking=False)
        self._done = stream.record()
        self._keep = device_copy              # alive until the transfer is done

    def result(self):
        self._done.synchronize()
        self._keep = None
        return self._host


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self):
        super().__init__()
        self.cp = import_cupy()
        self.xp = self.cp
        self._libraries = {}
        self._copy_stream = None
        for dtype in (np.float32, np.float64):      # compile now: a failure says why here
            self.library(dtype)

    def library(self, dtype) -> CupyKernelLibrary:
        dtype = np.dtype(dtype)
        if dtype not in self._libraries:
            self._libraries[dtype] = CupyKernelLibrary(self.cp, dtype)
        return self._libraries[dtype]

    def _make_ops(self, dtype):
        from .compiled_ops import CompiledOps
        return CompiledOps(self.library(dtype), self.xp, self.counters)

    def asarray(self, a, dtype=None):
        return self.cp.asarray(a, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        return self.cp.asnumpy(a) if isinstance(a, self.cp.ndarray) else np.asarray(a)

    def snapshot(self, a):
        # one side stream for every snapshot: the memory pool keeps a free list per stream,
        # so a new stream per frame would strand each frame's buffer in its own list
        if self._copy_stream is None:
            self._copy_stream = self.cp.cuda.Stream(non_blocking=True)
        return _PendingCopy(self.cp, a, self._copy_stream)

    def free_memory(self):
        # memory CuPy's pool holds but does not use is free for this run too
        pool = self.cp.get_default_memory_pool()
        free, _total = self.cp.cuda.runtime.memGetInfo()
        return int(free + pool.free_bytes())

    def device(self):
        cp = self.cp
        dev = cp.cuda.Device()
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        _free, total = cp.cuda.runtime.memGetInfo()
        return (f"GPU {dev.id}: {name}, {total / 2**30:.0f} GiB, compute capability "
                f"{dev.compute_capability}; CuPy {cp.__version__}")

    def synchronize(self):
        self.cp.cuda.get_current_stream().synchronize()


@register("cupy")
def _make():
    return CupyBackend()
