"""Clocks, copy bandwidth, peak memory and the backends the suite compares.

Every clock reading is taken after ``backend.synchronize()``, so that a GPU's queued work
is counted where it runs. Copy bandwidth, the roofline's reference, is measured in the same
run as the figures it divides: ``(read + written bytes) / time`` of a copy of an array far
larger than the caches, the best of several (the STREAM convention).
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import re
import resource
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: the backends the suite knows, in report order; "cupy-arrays" is the GPU baseline
BACKENDS = ("numpy", "cpu", "cupy", "cupy-arrays")

DESCRIPTIONS = {
    "numpy": "NumPy array expressions (the reference; on the CPU also the array-expression "
             "baseline)",
    "cpu": "compiled kernels on the host (g++, OpenMP)",
    "cupy": "compiled kernels on the GPU (CuPy RawModule)",
    "cupy-arrays": "CuPy array expressions (the GPU array-expression baseline: the reference "
                   "code with xp = cupy)",
    "cpu-1thread": "the cpu backend on one OpenMP thread (omp_set_num_threads(1)), beside "
                   "one-thread peer figures (substrate-only problem)",
}


# --------------------------------------------------------------------------- backends
def make_backend(name: str):
    """The backend called ``name``; raises BackendUnavailable where it cannot run.

    ``cupy-arrays`` is the ``cupy`` backend whose ops are the reference array expressions
    (:class:`spatialdtp.backends.reference.ReferenceOps` with ``xp = cupy``): the same
    step, without the fused kernels.
    """
    from spatialdtp.backends import get_backend

    if name == "cpu-1thread":
        backend = get_backend("cpu")
        backend.name = "cpu-1thread"
        backend.omp_threads = 1
        return backend
    if name != "cupy-arrays":
        return get_backend(name)
    from spatialdtp.backends.cupy_backend import CupyBackend
    from spatialdtp.backends.reference import ReferenceOps

    class ArrayExpressionBackend(CupyBackend):
        def _make_ops(self, dtype):
            return ReferenceOps(self.xp)

    backend = ArrayExpressionBackend()
    backend.name = "cupy-arrays"
    return backend


def is_gpu(backend) -> bool:
    return backend.xp is not np


# --------------------------------------------------------------------------- clocks
def timed(backend, fn, *args, **kwargs):
    """``(seconds, result)`` of one call, the device synchronised on both sides."""
    backend.synchronize()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    backend.synchronize()
    return time.perf_counter() - t0, out


def repeat_timed(backend, fn, *, min_repeats=3, max_repeats=50, min_seconds=0.2,
                 batch=1):
    """Median seconds per call of ``fn()`` over repeated timings of ``batch`` calls each
    (a GPU's launch latency is amortised over a batch), and the number of calls."""
    times = []
    start = time.perf_counter()
    while len(times) < max_repeats:
        backend.synchronize()
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        backend.synchronize()
        times.append((time.perf_counter() - t0) / batch)
        if len(times) >= min_repeats and time.perf_counter() - start >= min_seconds:
            break
    return statistics.median(times), len(times) * batch


def summary_of(times):
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "n": len(times)}


@contextlib.contextmanager
def omp_threads(n: int | None):
    """Run the ``with`` block's OpenMP loops on ``n`` threads (None: leave them alone).

    ``omp_set_num_threads`` of the libgomp that the compiled kernels load sets the thread
    count of the parallel regions the calling (main) thread starts from now on.
    """
    if n is None:
        yield
        return
    lib = ctypes.CDLL("libgomp.so.1")
    old = lib.omp_get_max_threads()
    lib.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        lib.omp_set_num_threads(old)


# --------------------------------------------------------------------------- copy bandwidth
def host_threads() -> int:
    """The threads the ``cpu`` backend's OpenMP loops use (OMP_NUM_THREADS or all cores)."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def host_copy_bandwidth(nbytes: int, threads: int, repeats: int = 7) -> dict:
    """Copy bandwidth of the host: ``np.copyto`` over ``threads`` threads, each copying
    its contiguous share (NumPy lets go of the GIL while it copies)."""
    n = max(threads, nbytes // 8)
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    parts = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    times = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            if threads == 1:
                np.copyto(dst, src)
            else:
                list(pool.map(lambda p: np.copyto(*p), parts))
            times.append(time.perf_counter() - t0)
    moved = 2 * src.nbytes
    best = min(times)
    return {"bytes_moved": moved, "array_bytes": src.nbytes, "threads": threads,
            "best_s": best, "median_s": statistics.median(times),
            "bandwidth_Bps": moved / best}


def device_copy_bandwidth(cp, nbytes: int, repeats: int = 10) -> dict:
    """Device-to-device copy bandwidth: ``cupy.copyto`` timed with CUDA events."""
    n = nbytes // 8
    src = cp.ones(n, dtype=cp.float64)
    dst = cp.empty_like(src)
    cp.copyto(dst, src)
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        cp.copyto(dst, src)
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
    moved = 2 * src.nbytes
    best = min(times)
    del src, dst
    cp.get_default_memory_pool().free_all_blocks()
    return {"bytes_moved": moved, "array_bytes": n * 8, "best_s": best,
            "median_s": statistics.median(times), "bandwidth_Bps": moved / best}


# --------------------------------------------------------------------------- memory
def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
        return int(m.group(1)) * 1024 if m else None
    except OSError:
        return None


class PeakMemory:
    """Peak host RSS and peak device memory (CuPy's pool) over a ``with`` block.

    The host peak is the kernel's high-water mark (VmHWM), reset at the start by writing
    5 to /proc/self/clear_refs (Linux ≥ 4.0). Where that is not possible the process's
    ``ru_maxrss`` is recorded instead, marked ``"cumulative"`` (a peak since start-up).
    CuPy's pool keeps freed blocks until ``free_all_blocks()``, so its ``total_bytes()`` at
    the end of the block is its peak during the block.
    """

    def __init__(self, backend=None):
        self.cp = getattr(backend, "cp", None)
        self.host_peak = None
        self.host_kind = "peak"
        self.device_peak = None

    def __enter__(self):
        gc.collect()
        if self.cp is not None:
            self.cp.get_default_memory_pool().free_all_blocks()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._reset = True
        except OSError:
            self._reset = False
        return self

    def read(self):
        hwm = _vm_hwm() if self._reset else None
        if hwm is None:
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.host_kind = "cumulative"
        self.host_peak = hwm
        if self.cp is not None:
            self.device_peak = int(self.cp.get_default_memory_pool().total_bytes())
        return self

    def __exit__(self, *exc):
        self.read()
        return False

    def as_dict(self):
        return {"peak_host_rss_bytes": self.host_peak, "host_peak_kind": self.host_kind,
                "peak_device_pool_bytes": self.device_peak}
