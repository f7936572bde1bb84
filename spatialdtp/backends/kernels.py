"""The kernels of ``kernels/*.cu``: finding them, reading their signatures, calling them.

Every kernel is written once, against ``kernels/sdtp.h``, and compiled twice: for the GPU
through CuPy (:mod:`.cupy_backend`) and for the host with g++/OpenMP (:mod:`.cpu_backend`).
Both launchers share this module: the source (with local ``#include "..."`` expanded, so a
changed header changes the source and its cache key), the signature of each kernel parsed
from that source, and the checks on every argument before a launch — a float64 array handed
to a float32 kernel, a missing argument or a non-contiguous view raise here, naming the
kernel and the argument, instead of reading the wrong memory.

Conventions of a kernel (see ``kernels/README.md``):

* ``SDTP_KERNEL name(idx_t n, ...)``: the first argument is the number of items its
  ``FOR_EACH``/``FOR_EACH_CHUNK`` loop covers; the GPU launcher sizes its grid from it;
* arguments are pointers (``real*``, ``const real*``, ``double*``, ``const idx_t*``,
  ``const unsigned char*``; ``None`` passes a null pointer), ``idx_t`` or ``real``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..resources import kernels_dir

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.M)
_KERNEL = re.compile(r"SDTP_KERNEL(?:_MIN_BLOCKS\s*\([^)]*\))?\s+(\w+)\s*\(([^)]*)\)", re.S)
#: a block of real parameters passed by value: ``struct Name { real v[36]; };`` (a literal)
_PARAM_STRUCT = re.compile(r"struct\s+(\w+)\s*\{\s*real\s+v\s*\[\s*(\d+)\s*\]\s*;\s*\}\s*;")
_BLOCK_THREADS = re.compile(r"^\s*#\s*define\s+SDTP_BLOCK_THREADS\s+(\d+)\s*$", re.M)

#: pointer element types and the NumPy dtypes they accept ("real": the library's dtype)
_POINTEE = {"real": "real", "double": np.float64, "float": np.float32, "idx_t": np.int64,
            "unsigned char": np.uint8}


def kernel_sources(directory: Path | None = None) -> list[Path]:
    d = Path(directory) if directory is not None else kernels_dir()
    return sorted(d.glob("*.cu"))


def expand_includes(path: Path, seen: set | None = None) -> str:
    """The text of ``path`` with its ``#include "local.h"`` lines replaced by the files."""
    seen = set() if seen is None else seen
    path = Path(path)

    def include(m):
        target = (path.parent / m.group(1)).resolve()
        if target in seen:
            return ""
        seen.add(target)
        return expand_includes(target, seen)
    return _INCLUDE.sub(include, path.read_text())


def module_source(directory: Path | None = None) -> str:
    """All kernels as one translation unit (each header once)."""
    seen: set = set()
    return "\n".join(expand_includes(p, seen) for p in kernel_sources(directory))


def block_threads(source: str | None = None) -> int:
    """Threads per block of every GPU launch: ``SDTP_BLOCK_THREADS`` of ``kernels/sdtp.h``
    (in ``source``, the module text, when given), which every kernel also declares as its
    ``__launch_bounds__``: the launcher reads it here, so the two cannot drift apart."""
    text = module_source() if source is None else source
    found = _BLOCK_THREADS.findall(text)
    if len(set(found)) != 1:
        raise ValueError("kernels/sdtp.h must #define SDTP_BLOCK_THREADS once, as a number "
                         f"(found {found or 'none'})")
    threads = int(found[0])
    if not (threads % 32 == 0 and 32 <= threads <= 1024):
        raise ValueError(f"SDTP_BLOCK_THREADS={threads}: a multiple of 32 from 32 to 1024")
    return threads


def source_digest(extra: str = "", directory: Path | None = None) -> str:
    h = hashlib.sha256(module_source(directory).encode())
    h.update(extra.encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str            # "pointer" | "idx" | "real" | "reals" (a struct of reals by value)
    pointee: object = None   # the element type of a pointer; the count of "reals"
    const: bool = False


def parse_signatures(source: str) -> dict[str, tuple[Param, ...]]:
    """``{kernel name: parameters}`` of every ``SDTP_KERNEL`` in ``source``."""
    out = {}
    text = re.sub(r"/\*.*?\*/", " ", source, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    structs = {name: int(count) for name, count in _PARAM_STRUCT.findall(text)}
    for name, args in _KERNEL.findall(text):
        params = []
        for raw in (a.strip() for a in args.split(",")):
            if not raw:
                continue
            raw = raw.replace("SDTP_RESTRICT", " ")
            pointer = "*" in raw
            words = raw.replace("*", " ").split()
            pname, ctype = words[-1], [w for w in words[:-1] if w != "const"]
            ctype = " ".join(ctype)
            if pointer:
                if ctype not in _POINTEE:
                    raise TypeError(f"kernel {name}: parameter {pname!r} points to {ctype!r}; "
                                    f"allowed are {list(_POINTEE)}")
                params.append(Param(pname, "pointer", _POINTEE[ctype], "const" in words))
            elif ctype == "idx_t":
                params.append(Param(pname, "idx"))
            elif ctype == "real":
                params.append(Param(pname, "real"))
            elif ctype in structs:
                params.append(Param(pname, "reals", structs[ctype], True))
            else:
                raise TypeError(f"kernel {name}: parameter {pname!r} has type {ctype!r}; "
                                "kernels take pointers, idx_t, real and structs "
                                "`struct Name { real v[N]; };` of reals by value only")
        if not params or params[0].kind != "idx":
            raise TypeError(f"kernel {name}: the first parameter must be `idx_t n`, the "
                            "number of items its loop covers")
        out[name] = tuple(params)
    return out


class KernelLibrary:
    """The kernels of one precision on one device; ``lib.launch(name, n, ...)`` runs one.

    Subclasses provide ``_pointer(array)`` (device address or host pointer), ``_scalar``
    conversions and ``_call(name, n, converted_args)``.
    """

    #: a :class:`~spatialdtp.numerics.counters.Counters` that counts every launch (set by
    #: the ops that use this library)
    counters = None
    #: whether a kernel sums a neighbourhood's planes itself where it reads them (the GPU:
    #: bound by DRAM bytes, its caches serve the repeated loads) rather than reading a sum
    #: the launcher made in a pass of its own (the host: bound by loads per voxel in its
    #: vectorised loops); ``transport_substep``'s other cell types
    sums_in_kernel = False

    def __init__(self, dtype, source: str):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype={self.dtype}: kernels exist for float32 and float64")
        self.signatures = parse_signatures(source)

    def has(self, name: str) -> bool:
        return name in self.signatures

    def _params(self, name: str) -> tuple[Param, ...]:
        try:
            return self.signatures[name]
        except KeyError:
            raise KeyError(f"no kernel {name!r} in kernels/*.cu; kernels are "
                           f"{sorted(self.signatures)}") from None

    def _convert(self, name: str, params, args) -> list:
        converted = []
        for p, value in zip(params, args):
            kind = p.kind
            if kind == "pointer":
                converted.append(self._null() if value is None else self._checked(name, p, value))
            elif kind == "idx":
                converted.append(self._idx(int(value)))
            elif kind == "real":
                converted.append(self._real(float(value)))
            else:
                values = np.asarray(value, dtype=np.float64)
                if values.shape != (p.pointee,):
                    raise TypeError(f"kernel {name}: argument {p.name!r} is "
                                    f"{p.pointee} reals by value, got shape {values.shape}")
                converted.append(self._reals(values))
        return converted

    def launch(self, name: str, *args) -> None:
        """Run kernel ``name`` with ``args`` (the first is n, the item count)."""
        params = self._params(name)
        if len(args) != len(params):
            raise TypeError(f"kernel {name} takes {len(params)} arguments "
                            f"({', '.join(p.name for p in params)}), got {len(args)}")
        # this runs thousands of times per step on small grids: keep it lean
        converted = self._convert(name, params, args)
        n = int(args[0])
        if n > 0:
            self._dispatch(name, n, converted)

    def _dispatch(self, name: str, n: int, converted) -> None:
        """The one place every launch, bound or not, goes through (and is counted)."""
        if self.counters is not None:
            self.counters.launch(name)
        self._call(name, n, converted)

    def bind(self, name: str, *leading) -> "BoundKernel":
        """Kernel ``name`` with its first ``len(leading)`` arguments checked and packed
        now, once: calling the result with the remaining arguments checks and packs only
        those. For launches repeated with the same level geometry, faces and parameter
        arrays (a multigrid level's operator within a step), so that the per-launch
        Python glue is paid once per level instead of once per launch. The bound arrays are
        kept alive by the result; bind again when any of them is replaced."""
        params = self._params(name)
        if not 1 <= len(leading) <= len(params):
            raise TypeError(f"kernel {name}: bind takes 1 to {len(params)} leading "
                            f"arguments, got {len(leading)}")
        return BoundKernel(self, name, params, leading,
                           self._convert(name, params[:len(leading)], leading))

    def _checked(self, kernel, p: Param, value):
        want = self.dtype if p.pointee == "real" else np.dtype(p.pointee)
        dtype = value.dtype
        if dtype != want and not (want == np.uint8 and dtype == np.bool_):
            raise TypeError(f"kernel {kernel}: argument {p.name!r} must be a {want} array, "
                            f"got {dtype}")
        flags = value.flags
        if not flags.c_contiguous:
            raise ValueError(f"kernel {kernel}: argument {p.name!r} must be C-contiguous")
        # CuPy's flags have no `writeable` (device arrays always are)
        if not (p.const or getattr(flags, "writeable", True)):
            raise ValueError(f"kernel {kernel}: argument {p.name!r} is written and must be "
                             "writeable")
        return self._pointer(value)

    def reduction_chunks(self, n: int) -> int:
        """How many partial results a reduction kernel over n items should produce."""
        raise NotImplementedError

    # launcher-specific
    def _idx(self, v):
        raise NotImplementedError

    def _real(self, v):
        raise NotImplementedError

    def _null(self):
        raise NotImplementedError

    def _reals(self, values: np.ndarray):
        """A struct of ``len(values)`` reals, passed by value."""
        raise NotImplementedError

    def _pointer(self, a):
        raise NotImplementedError

    def _call(self, name, n, args):
        raise NotImplementedError


class BoundKernel:
    """A kernel with its leading arguments checked and packed (:meth:`KernelLibrary.bind`).

    ``bound(*rest)`` launches it with ``rest`` as the remaining arguments, which are checked
    like :meth:`KernelLibrary.launch` checks all of them."""

    __slots__ = ("lib", "name", "params", "n", "_keep", "_packed", "_rest")

    def __init__(self, lib: KernelLibrary, name: str, params, leading, packed):
        self.lib, self.name, self.params = lib, name, params
        self.n = int(leading[0])
        self._keep = leading                  # the arrays must outlive the packed pointers
        self._packed = packed
        self._rest = params[len(leading):]

    def __call__(self, *rest) -> None:
        if len(rest) != len(self._rest):
            raise TypeError(f"kernel {self.name} (bound): takes {len(self._rest)} more "
                            f"arguments ({', '.join(p.name for p in self._rest)}), "
                            f"got {len(rest)}")
        if self.n > 0:
            lib = self.lib
            lib._dispatch(self.name, self.n,
                      self._packed + lib._convert(self.name, self._rest, rest) if rest
                      else self._packed)
