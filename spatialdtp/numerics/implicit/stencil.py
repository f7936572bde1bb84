"""One multigrid level and its operators: the NumPy twin of ``kernels/stencil.cu``.

A level holds the linear system ``(mass + K) x = b`` of the implicit step on its grid
(:class:`_Level`), with ``K u = −∇·(D∇u)`` in flux form: ``Σ_faces T·(x_i − x_j)`` over
the faces of each voxel, ``T`` the face transmissibility. The operators are whole-array
expressions (NumPy or CuPy through ``xp``):

* :func:`apply_stencil`: ``(mass + K) x``, or the residual ``b − (mass + K) x``;
* :func:`jacobi_sweep`: one damped-Jacobi sweep ``x ← x + ω D⁻¹ (b − A x)``;
* :func:`restrict_children` and :func:`prolong_add`: the piecewise-constant transfers
  between a level and the next coarser one (restriction sums the children, prolongation
  is its transpose).

:class:`ArrayStencils` gathers them behind the interface the solver calls (``ops``), so
that the solver runs without a backend; :mod:`spatialdtp.backends` puts compiled kernels
behind the same interface.
"""
from __future__ import annotations

import numpy

_MAX_ASPECT = 1.5            # coarsen an axis only if its cells are not much wider already


# --------------------------------------------------------------------------- index helpers
def _ix(ndim: int, axis: int, s) -> tuple:
    """Index ``s`` along ``axis`` of the last ``ndim`` axes (leading batch axes pass)."""
    return (Ellipsis, s) + (slice(None),) * (ndim - 1 - axis)


def _with(shape: tuple, axis: int, n: int) -> tuple:
    return shape[:axis] + (n,) + shape[axis + 1:]


def _pair_sum(xp, x, axis: int):
    """Sum neighbouring pairs (0,1), (2,3), ... along ``axis``; an odd last cell stays single."""
    n = x.shape[axis]
    half = n // 2
    out = xp.empty(_with(x.shape, axis, (n + 1) // 2), dtype=x.dtype)
    xp.add(x[_ix(x.ndim, axis, slice(0, 2 * half, 2))],
           x[_ix(x.ndim, axis, slice(1, 2 * half, 2))], out=out[_ix(x.ndim, axis, slice(0, half))])
    if n % 2:
        out[_ix(x.ndim, axis, slice(half, half + 1))] = x[_ix(x.ndim, axis, slice(n - 1, n))]
    return out


# --------------------------------------------------------------------------- one level
class _Level:
    """Shape, cell widths and the linear system ``(mass + K) x = b`` of one multigrid level.

    Widths are in fine voxels. ``tin[k]`` holds the transmissibilities of the interior faces
    along axis ``k`` (``n_k − 1`` of them), ``tlo[k]``/``thi[k]`` those of the two boundary
    faces (for a periodic axis both are the wrap-around face). All are already multiplied
    by ``θ·dt/dx²`` and by face area / centre distance in fine-voxel units.
    """

    def __init__(self, shape, widths, xp, dtype):
        self.shape = tuple(shape)
        self.ndim = len(shape)
        self.size = int(numpy.prod(shape))
        self.widths = [numpy.asarray(w, dtype=float) for w in widths]
        self.mass = xp.empty(self.shape, dtype)
        self.winv = xp.empty(self.shape, dtype)      # ω / diagonal
        self.x = xp.empty(self.shape, dtype)
        self.b = xp.empty(self.shape, dtype)
        self.r = xp.empty(self.shape, dtype)
        self.tin = [None] * self.ndim
        self.tlo = [None] * self.ndim
        self.thi = [None] * self.ndim
        self.modes = [("no_flux", "no_flux")] * self.ndim
        # one scratch buffer for the face fluxes of every axis (used one axis at a time)
        fshapes = [_with(self.shape, k, n - 1) for k, n in enumerate(self.shape)]
        buf = xp.empty(max(int(numpy.prod(f)) for f in fshapes), dtype)
        self.flux = [buf[:int(numpy.prod(f))].reshape(f) if n >= 2 else None
                     for f, n in zip(fshapes, self.shape)]
        nd = self.ndim
        self.head = [_ix(nd, k, slice(0, n - 1)) for k, n in enumerate(self.shape)]
        self.tail = [_ix(nd, k, slice(1, n)) for k, n in enumerate(self.shape)]
        self.lo = [_ix(nd, k, slice(0, 1)) for k in range(nd)]
        self.hi = [_ix(nd, k, slice(n - 1, n)) for k, n in enumerate(self.shape)]
        self.coarse = None          # the next level, if any
        self.pairs = ()             # (fine slices, coarse slices) of the transfers
        self.coarse_axes = ()
        self.inverse = None         # dense inverse, on the coarsest level
        # fine-to-coarse centre-distance ratios of the faces, per coarsened axis (set by
        # the solver on the coarse level): interior, (low, high) fixed, periodic wrap
        self.ratio_in, self.ratio_fixed, self.ratio_wrap = {}, {}, {}

    def set_modes(self, kinds):
        """Boundary kinds on this level; a periodic axis of one cell couples to itself only."""
        self.modes = [("no_flux", "no_flux") if lo == "periodic" and n == 1 else (lo, hi)
                      for (lo, hi), n in zip(kinds, self.shape)]


def _coarsen_shape(shape, widths):
    """Axes to coarsen: ≥ 2 cells and not already wider than the narrowest such axis."""
    open_axes = [k for k, n in enumerate(shape) if n >= 2]
    if not open_axes:
        return ()
    wmax = [float(widths[k].max()) for k in range(len(shape))]
    narrowest = min(wmax[k] for k in open_axes)
    return tuple(k for k in open_axes if wmax[k] <= _MAX_ASPECT * narrowest)


def _coarse_widths(w):
    half = len(w) // 2
    out = [w[2 * i] + w[2 * i + 1] for i in range(half)]
    if len(w) % 2:
        out.append(w[-1])
    return numpy.asarray(out)


# --------------------------------------------------------------------------- the stencil
def apply_stencil(xp, lev, x, out, rhs=None, mass=None):
    """``out = (mass + K) x``, or the residual ``out = rhs − (mass + K) x`` if rhs given.

    K is applied in flux form, ``Σ_faces T·(x_i − x_j)``: differences of neighbouring
    values are exact in floating point, so a huge ``T`` does not amplify rounding of x.
    ``mass`` defaults to the level's; ``x`` may carry leading batch axes. This is the
    reference of ``kernels/stencil.cu``.
    """
    batched = x.ndim > lev.ndim
    xp.multiply(lev.mass if mass is None else mass, x, out=out)
    sign = 1.0
    if rhs is not None:
        xp.subtract(rhs, out, out=out)
        sign = -1.0
    for k in range(lev.ndim):
        head, tail, lo, hi = lev.head[k], lev.tail[k], lev.lo[k], lev.hi[k]
        if lev.tin[k] is not None:
            F = xp.subtract(x[tail], x[head]) if batched else \
                xp.subtract(x[tail], x[head], out=lev.flux[k])
            F *= lev.tin[k]
            if sign > 0:      # (K x)_i gains T(x_i − x_{i+1}) = −F, (K x)_{i+1} gains +F
                out[head] -= F
                out[tail] += F
            else:
                out[head] += F
                out[tail] -= F
        lo_kind, _ = lev.modes[k]
        if lo_kind == "periodic":
            F = (x[lo] - x[hi]) * lev.tlo[k]      # wrap face: cell n−1 → cell 0
            out[hi] -= sign * F
            out[lo] += sign * F
            continue
        if lev.tlo[k] is not None:
            out[lo] += sign * lev.tlo[k] * x[lo]
        if lev.thi[k] is not None:
            out[hi] += sign * lev.thi[k] * x[hi]
    return out


def jacobi_sweep(xp, lev, b, x, winv):
    """One damped-Jacobi sweep in place: ``x ← x + (ω/diag)·(b − A x)``."""
    r = apply_stencil(xp, lev, x, lev.r, rhs=b)
    r *= winv
    x += r


def restrict_children(xp, lev, fine, coarse):
    """``coarse`` = the sum of the children of each cell of ``lev.coarse`` in ``fine``.

    The reference of ``restrict_sum`` in ``kernels/stencil.cu``.
    """
    (fs0, _), *rest = lev.pairs
    coarse[...] = fine[fs0]
    for fs, cs in rest:
        coarse[cs] += fine[fs]
    return coarse


def prolong_add(xp, lev, coarse, fine):
    """``fine`` += the value of its parent cell in ``coarse`` (the transpose of the
    restriction). The reference of ``prolong_add`` in ``kernels/stencil.cu``."""
    for fs, cs in lev.pairs:
        fine[fs] += coarse[cs]
    return fine


class ArrayStencils:
    """The level operators as whole-array expressions in ``xp`` (the solver's default ops).

    ``counters`` (:class:`~spatialdtp.numerics.counters.Counters`) counts the host reads
    made through :meth:`read`.
    """

    def __init__(self, xp, counters=None):
        from ..counters import Counters

        self.xp = xp
        self.counters = counters if counters is not None else Counters()

    def read(self, a, site: str):
        """``a`` (a device array or scalar) on the host, counted as one sync at ``site``."""
        self.counters.sync(site)
        return numpy.asarray(a.get() if hasattr(a, "get") else a)

    def stencil(self, level, x, out, rhs=None, mass=None):
        return apply_stencil(self.xp, level, x, out, rhs, mass)

    def jacobi(self, level, b, x, omega_over_diag) -> None:
        jacobi_sweep(self.xp, level, b, x, omega_over_diag)

    def restrict(self, level, fine, coarse):
        return restrict_children(self.xp, level, fine, coarse)

    def prolong(self, level, coarse, fine):
        return prolong_add(self.xp, level, coarse, fine)
