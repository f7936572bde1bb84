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

Loading a library runs its code, so a cached one is loaded only once it is verified
(:func:`verified_library`): the cache directory and both files belong to this user and
nobody else can write them, and the library's SHA-256 equals the one recorded beside it
(``<library>.sha256``, written atomically after each build). A truncated or corrupt
library (a 0-byte file from a full disk), one planted under the expected name, or one
in a directory others can write, is rebuilt, never loaded. The verified file is loaded
through its open descriptor (``/proc/self/fd/N``), so it cannot be swapped in between.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .base import Backend, BackendUnavailable, register
from .kernels import KernelLibrary, module_source, source_digest
from .numpy_backend import host_description, host_memory_available

log = logging.getLogger("spatialdtp")

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


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else."""
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _trusted_dir(directory: Path) -> bool:
    try:
        st = os.stat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and _private(st)


def _digest_of(fd: int) -> str:
    h = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        h.update(chunk)
    return h.hexdigest()


def _sidecar(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def verified_library(library: Path) -> int | None:
    """An open descriptor of ``library`` if it can be trusted (see the module docstring),
    else None. The caller loads it through that descriptor and closes it."""
    if not _trusted_dir(library.parent):
        return None
    try:
        fd = os.open(library, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        side = _sidecar(library)
        side_st = os.lstat(side)
        if not (stat.S_ISREG(st.st_mode) and _private(st) and st.st_size > 0
                and stat.S_ISREG(side_st.st_mode) and _private(side_st)):
            raise OSError("not a private regular file")
        if side.read_text().strip() != _digest_of(fd):
            raise OSError("content differs from its recorded hash")
    except (OSError, UnicodeDecodeError):
        os.close(fd)
        return None
    return fd


def _compile(cxx: str, flags, directory, target: Path) -> None:
    """Build ``target`` (and its hash beside it) through temporary files and renames."""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "kernels.cu"
        src.write_text(module_source(directory))
        out = Path(tmp) / target.name
        proc = subprocess.run([cxx, *flags, str(src), "-o", str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BackendUnavailable(
                f"backend cpu: compiling kernels/*.cu with {cxx} failed:\n{proc.stderr[-4000:]}")
        os.chmod(out, 0o755)
        fd = os.open(out, os.O_RDONLY)
        try:
            digest = _digest_of(fd)
        finally:
            os.close(fd)
        side = Path(tmp) / (target.name + ".sha256")
        side.write_text(digest + "\n")
        os.chmod(side, 0o644)
        # a reader between the two renames sees a library and a hash that disagree, and
        # rebuilds: never a library taken for verified that is not
        os.replace(out, target)
        os.replace(side, _sidecar(target))


def build_library(dtype, *, cxx: str | None = None, directory: Path | None = None) -> Path:
    """Compile the kernels for ``dtype`` (or find them, verified, in the cache); the
    library's path. A cache directory other users can write is not used: the library is
    built in a private temporary directory instead."""
    cxx = cxx or compiler()
    if cxx is None:
        raise BackendUnavailable(
            f"backend cpu needs a C++ compiler with OpenMP; {os.environ.get('CXX', 'g++')!r} "
            "was not found (install g++, e.g. `apt install g++`, or set CXX)")
    real = "float" if np.dtype(dtype) == np.float32 else "double"
    flags = CXX_FLAGS + (f"-DSDTP_REAL={real}",)
    key = source_digest(" ".join(flags) + _compiler_version(cxx) + os.uname().machine, directory)
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        pass
    if not _trusted_dir(cache):
        log.warning("kernel cache %s is not a directory owned by this user and closed to "
                    "others; building the cpu kernels in a private temporary directory "
                    "(set SPATIALDTP_KERNEL_CACHE to a private directory to cache them)", cache)
        cache = Path(tempfile.mkdtemp(prefix="spatialdtp-kernels-"))
    target = cache / f"libsdtp_{real}_{key}.so"
    fd = verified_library(target)
    if fd is not None:
        os.close(fd)
        return target
    if target.exists():
        log.warning("cached kernel library %s failed verification (truncated, corrupt or not "
                    "written by this user); rebuilding it", target)
    # the first run is otherwise silent for the whole build
    log.info("backend cpu: compiling the %s kernels with %s (first use only, about a minute "
             "on 2 cores; cached in %s)", real, cxx, target.parent)
    _compile(cxx, flags, directory, target)
    return target


def load_library(path: Path) -> ctypes.CDLL:
    """``ctypes.CDLL`` of a verified library, through the descriptor that was verified."""
    fd = verified_library(path)
    if fd is None:
        raise BackendUnavailable(f"backend cpu: the kernel library {path} changed after it "
                                 "was built and verified; it is not loaded (run again)")
    proc_path = f"/proc/self/fd/{fd}"
    if not os.path.exists(proc_path):
        os.close(fd)
        return ctypes.CDLL(str(path))
    # The descriptor stays open for the life of the process: the dynamic loader knows a
    # library by the name it was opened under, so a closed and reused descriptor number
    # would hand the next library (the other precision) this one's handle.
    _LOADED_DESCRIPTORS.append(fd)
    return ctypes.CDLL(proc_path)


#: descriptors of the loaded libraries (never closed; see :func:`load_library`)
_LOADED_DESCRIPTORS: list[int] = []


class HostKernelLibrary(KernelLibrary):
    """The kernels compiled for the host, called through ctypes."""

    def __init__(self, dtype, directory: Path | None = None):
        super().__init__(dtype, module_source(directory))
        self.path = build_library(dtype, directory=directory)
        passive_wait_unless_set(os.environ)
        self._dll = load_library(self.path)
        self._functions = {}
        real = ctypes.c_float if self.dtype == np.float32 else ctypes.c_double
        ctype = {"pointer": ctypes.c_void_p, "idx": ctypes.c_longlong, "real": real}
        for name, params in self.signatures.items():
            fn = getattr(self._dll, name)
            fn.restype = None
            # with argtypes set, ctypes converts plain ints and floats itself (fast)
            fn.argtypes = [self._reals_type(p.pointee) if p.kind == "reals" else ctype[p.kind]
                           for p in params]
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

    def _reals_type(self, count: int):
        """The ctypes struct ``{ real v[count]; }`` (passed by value)."""
        types = self.__dict__.setdefault("_reals_types", {})
        if count not in types:
            real = ctypes.c_float if self.dtype == np.float32 else ctypes.c_double
            types[count] = type(f"Reals{count}", (ctypes.Structure,),
                                {"_fields_": [("v", real * count)]})
        return types[count]

    def _reals(self, values):
        struct = self._reals_type(len(values))()
        struct.v[:] = values.tolist()
        return struct

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
        return CompiledOps(self.library(dtype), self.xp, self.counters)

    def free_memory(self):
        return host_memory_available()

    def device(self):
        return f"{host_description()}, {_threads()} OpenMP threads, kernels from {compiler()}"


@register("cpu")
def _make():
    return CpuBackend()
