"""Backend ``cpu``: the kernels of ``kernels/*.cu`` compiled for the host.

The same sources the GPU runs are compiled by a C++ compiler (``$CXX``, default ``g++``)
with OpenMP into one shared library per precision and called through ctypes (which lets
go of the GIL during a call, so the run-file writer thread keeps going). ``sdtp.h`` turns
each kernel into a plain function whose voxel loop is an OpenMP parallel loop; threads
follow ``OMP_NUM_THREADS`` (default: all cores). Threads wait passively between loops
(``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT``): OpenMP's default spin-waiting made a 48³ spheroid run 2.2x slower on 2
cores shared with two busy processes (26.5 s against 12.1 s passive) and gained nothing
idle (7.4 s spinning, 6.7 s passive; one measurement each, 3 s of start-up included). The
setting is read when OpenMP starts, so it cannot change once a library using libgomp is
loaded in the process.

Libraries are cached under ``$SPATIALDTP_KERNEL_CACHE`` (default
``~/.cache/spatialdtp/kernels``), keyed by the source text, compiler version and flags, so
a run compiles only the first time; a changed kernel or header rebuilds. Builds write to a
temporary file and rename, so that parallel jobs of a sweep can share the cache.
"""
from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .base import Backend, BackendUnavailable, register
from .kernels import KernelLibrary, module_source, source_digest
from .numpy_backend import host_description, host_memory_available

#: no -ffast-math: the kernels rely on IEEE expm1/exp and on NaN reaching the checks
#: (-fno-trapping-math only lets selects vectorise; no value changes)
CXX_FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-fPIC", "-shared",
             "-std=c++17", "-x", "c++")


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "g++"))


def cache_dir() -> Path:
    root = os.environ.get("SPATIALDTP_KERNEL_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "spatialdtp" / "kernels"


def _compiler_version(cxx: str) -> str:
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else cxx


def build_library(dtype, *, cxx: str | None = None, directory: Path | None = None) -> Path:
    """Compile the kernels for ``dtype`` (or find them in the cache); the library's path."""
    cxx = cxx or compiler()
    if cxx is None:
        raise BackendUnavailable(
            f"backend cpu needs a C++ compiler with OpenMP; {os.environ.get('CXX', 'g++')!r} "
            "was not found (install g++, e.g. `apt install g++`, or set CXX)")
    real = "float" if np.dtype(dtype) == np.float32 else "double"
    flags = CXX_FLAGS + (f"-DSDTP_REAL={real}",)
    key = source_digest(" ".join(flags) + _compiler_version(cxx) + os.uname().machine, directory)
    target = cache_dir() / f"libsdtp_{real}_{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # the first run is otherwise silent for the whole build
    logging.getLogger("spatialdtp").info(
        "backend cpu: compiling the %s kernels with %s (first use only, about a minute on "
        "2 cores; cached in %s)", real, cxx, target.parent)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "kernels.cu"
        src.write_text(module_source(directory))
        out = Path(tmp) / target.name
        proc = subprocess.run([cxx, *flags, str(src), "-o", str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BackendUnavailable(
                f"backend cpu: compiling kernels/*.cu with {cxx} failed:\n{proc.stderr[-4000:]}")
        os.replace(out, target)
    return target


class HostKernelLibrary(KernelLibrary):
    """The kernels compiled for the host, called through ctypes."""

    def __init__(self, dtype, directory: Path | None = None):
        super().__init__(dtype, module_source(directory))
        self.path = build_library(dtype, directory=directory)
        passive_wait_unless_set(os.environ)
        self._dll = ctypes.CDLL(str(self.path))
        self._functions = {}
        real = ctypes.c_float if self.dtype == np.float32 else ctypes.c_double
        ctype = {"pointer": ctypes.c_void_p, "idx": ctypes.c_longlong, "real": real}
        for name, params in self.signatures.items():
            fn = getattr(self._dll, name)
            fn.restype = None
            # with argtypes set, ctypes converts plain ints and floats itself (fast)
            fn.argtypes = [ctype[p.kind] for p in params]
            self._functions[name] = fn
        self.threads = _threads()

    def reduction_chunks(self, n: int) -> int:
        return max(1, min(int(n), 4 * self.threads))

    def _idx(self, v):
        return v

    def _real(self, v):
        return v

    def _null(self):
        return None

    def _pointer(self, a):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"backend cpu: kernels take NumPy arrays, got {type(a).__name__}")
        return a.ctypes.data

    def _call(self, name, n, args):
        self._functions[name](*args)


def passive_wait_unless_set(env) -> None:
    """OpenMP threads sleep between loops instead of spinning, unless the user chose."""
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["OMP_WAIT_POLICY"] = "PASSIVE"


def _threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.split(",")[0].strip().isdigit():
        return max(1, int(env.split(",")[0]))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class CpuBackend(Backend):
    """NumPy arrays on the host, stepped by the compiled kernels."""

    name = "cpu"
    xp = np

    def __init__(self):
        super().__init__()
        self._libraries = {}
        # fail now, with the compiler's message, rather than at the first step
        self.library(np.float32)

    def library(self, dtype) -> HostKernelLibrary:
        dtype = np.dtype(dtype)
        if dtype not in self._libraries:
            self._libraries[dtype] = HostKernelLibrary(dtype)
        return self._libraries[dtype]

    def _make_ops(self, dtype):
        from .compiled_ops import CompiledOps
        return CompiledOps(self.library(dtype), self.xp)

    def free_memory(self):
        return host_memory_available()

    def device(self):
        return f"{host_description()}, {_threads()} OpenMP threads, kernels from {compiler()}"


@register("cpu")
def _make():
    return CpuBackend()
