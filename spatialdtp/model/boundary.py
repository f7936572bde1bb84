"""Boundary conditions of a substrate on the faces of the tissue block.

Each axis has a low and a high face, each ``no_flux``, ``fixed`` (the value ``value`` on
the face itself) or ``periodic`` (both faces of the axis). The implicit solver
(:mod:`spatialdtp.numerics.implicit`) imposes them; a substrate's config names them
(``substrates.<name>.boundary``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import BOUNDARY_KINDS


@dataclass(frozen=True)
class Boundary:
    """Boundary condition of each axis: ``kinds[axis] = (low face, high face)``.

    Kinds: ``"no_flux"``, ``"fixed"`` (the value ``value`` on the face), ``"periodic"``
    (must be set on both faces of its axis). Axes are ordered like the grid: (y, x) or
    (z, y, x).
    """

    kinds: tuple[tuple[str, str], ...]
    value: float = 0.0

    def __post_init__(self):
        try:
            kinds = tuple((str(lo), str(hi)) for lo, hi in self.kinds)
        except (TypeError, ValueError):
            raise ValueError(f"Boundary.kinds={self.kinds!r}: give one (low, high) pair of "
                             f"kinds per axis, kinds from {list(BOUNDARY_KINDS)}") from None
        for axis, (lo, hi) in enumerate(kinds):
            for face, kind in (("low", lo), ("high", hi)):
                if kind not in BOUNDARY_KINDS:
                    raise ValueError(f"Boundary.kinds[{axis}] {face} face={kind!r}: "
                                     f"allowed kinds are {list(BOUNDARY_KINDS)}")
            if (lo == "periodic") != (hi == "periodic"):
                raise ValueError(f"Boundary.kinds[{axis}]={[lo, hi]}: periodic must be set "
                                 "on both faces of an axis")
        try:
            value = float(self.value)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"Boundary.value={self.value!r}: must be a finite number")
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "value", value)

    @classmethod
    def uniform(cls, ndim: int, kind: str = "no_flux", value: float = 0.0) -> "Boundary":
        """The same kind on every face of an ``ndim``-dimensional grid."""
        return cls(tuple((kind, kind) for _ in range(ndim)), value)

    @property
    def ndim(self) -> int:
        return len(self.kinds)
