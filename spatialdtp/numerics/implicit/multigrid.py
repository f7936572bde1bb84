"""The geometric multigrid hierarchy of the implicit step, and its V-cycle.

* coarsening halves every axis that still has ≥ 2 cells and is not already much coarser
  than the others (an odd axis keeps its last cell as a single, so 127 × 65 or 3 × 50
  coarsen too); it stops at ≤ 64 cells, where the coarse matrix is inverted densely;
* restriction sums the children, prolongation is its transpose (piecewise constant);
* coarse operators are rediscretised: the mass sums the children, a coarse face's
  transmissibility sums the fine faces it covers scaled by the ratio of centre distances
  (for a uniform grid, the face-averaged D over the coarse spacing); fixed and periodic
  faces are coarsened the same way, so every level keeps the boundary conditions;
* smoothing: two damped-Jacobi sweeps before and two after the coarse correction, so the
  V-cycle is a symmetric positive definite preconditioner.

The level operators (stencil, smoother, transfers) are ``ops``: array expressions
(:class:`~.stencil.ArrayStencils`) or a backend's compiled kernels.
"""
from __future__ import annotations

import itertools

import numpy

from .stencil import (
    _coarse_widths,
    _coarsen_shape,
    _ix,
    _Level,
    _pair_sum,
    _with,
    apply_stencil,
)

_JACOBI_SWEEPS = 2           # pre- and post-smoothing sweeps (equal: a symmetric V-cycle)
_JACOBI_OMEGA = {2: 0.8, 3: 6.0 / 7.0}   # best smoothing factor of damped Jacobi, 2D/3D
_COARSEST_CELLS = 64         # invert the coarsest matrix densely at or below this size


class Multigrid:
    """The levels of one grid shape and dtype, their operators, and the V-cycle.

    ``levels[0]`` is the fine grid. :meth:`setup_fine` sets its faces from D and the
    boundary, :meth:`setup` the mass, the coarse operators and the Jacobi weights of every
    level; :meth:`vcycle` then approximates ``(mass + K)^{-1} b``.
    """

    def __init__(self, shape, xp, dtype, ops):
        self.shape, self.xp, self.dtype, self.ops = tuple(shape), xp, numpy.dtype(dtype), ops
        self.ndim = len(self.shape)
        self.omega = _JACOBI_OMEGA[self.ndim]
        self.levels = [_Level(self.shape, [numpy.ones(n) for n in self.shape], xp, self.dtype)]
        while self.levels[-1].size > _COARSEST_CELLS:
            fine = self.levels[-1]
            axes = _coarsen_shape(fine.shape, fine.widths)
            if not axes:
                break
            cshape = tuple((n + 1) // 2 if k in axes else n for k, n in enumerate(fine.shape))
            cw = [_coarse_widths(w) if k in axes else w for k, w in enumerate(fine.widths)]
            coarse = _Level(cshape, cw, xp, self.dtype)
            fine.coarse, fine.coarse_axes = coarse, axes
            fine.pairs = self._transfer_slices(fine.shape, axes)
            self._face_ratios(fine, coarse, axes)
            self.levels.append(coarse)

    @staticmethod
    def _transfer_slices(shape, axes):
        """Children of each parity: fine slice and the coarse block it adds into."""
        nd = len(shape)
        pairs = []
        for parity in itertools.product((0, 1), repeat=len(axes)):
            fs = [slice(None)] * nd
            cs = [slice(None)] * nd
            for k, p in zip(axes, parity):
                fs[k] = slice(p, None, 2)
                cs[k] = slice(None) if p == 0 else slice(0, shape[k] // 2)
            pairs.append(((Ellipsis,) + tuple(fs), (Ellipsis,) + tuple(cs)))
        return tuple(pairs)

    def _face_ratios(self, fine, coarse, axes):
        """Fine-to-coarse centre-distance ratios of the faces of each coarsened axis."""
        xp, nd = self.xp, self.ndim
        for k in axes:
            w, W = fine.widths[k], coarse.widths[k]
            shape = [1] * nd
            if len(W) >= 2:
                # coarse face F (1..N-1) is fine face 2F: between fine cells 2F-1 and 2F
                F = numpy.arange(1, len(W))
                ratio = (w[2 * F - 1] + w[2 * F]) / (W[F - 1] + W[F])
                shape[k] = len(ratio)
                coarse.ratio_in[k] = xp.asarray(ratio.reshape(shape), dtype=self.dtype)
            # Python floats: a NumPy float64 scalar would promote float32 faces to float64
            coarse.ratio_fixed[k] = (float(w[0] / W[0]), float(w[-1] / W[-1]))
            coarse.ratio_wrap[k] = float((w[-1] + w[0]) / (W[-1] + W[0]))

    def setup_fine(self, D, boundary, scale):
        """Level-0 faces: ``scale ×`` the harmonic mean of the two voxels' D.

        A fixed face lies half a voxel from its voxel's centre: ``2·scale·D`` of that voxel.
        """
        xp, lev = self.xp, self.levels[0]
        lev.set_modes(boundary.kinds)
        if isinstance(D, float):
            def face(k, n, _a, _b, factor):
                return xp.full(_with(self.shape, k, n), factor * scale * D, self.dtype)
        else:
            def face(k, n, a, b, factor):
                if b is None:
                    return (factor * scale) * D[a]
                out = xp.multiply(D[a], D[b])
                out /= D[a] + D[b]
                out *= 2.0 * factor * scale
                return out
        for k, n in enumerate(self.shape):
            lo, hi = lev.lo[k], lev.hi[k]
            lev.tin[k] = face(k, n - 1, lev.head[k], lev.tail[k], 1.0)
            kind_lo, kind_hi = lev.modes[k]
            lev.tlo[k] = lev.thi[k] = None
            if kind_lo == "periodic":
                lev.tlo[k] = lev.thi[k] = face(k, 1, hi, lo, 1.0)
                continue
            if kind_lo == "fixed":
                lev.tlo[k] = face(k, 1, lo, None, 2.0)
            if kind_hi == "fixed":
                lev.thi[k] = face(k, 1, hi, None, 2.0)

    def scale_fine(self, factor):
        lev = self.levels[0]
        for k in range(self.ndim):
            lev.tin[k] *= factor
            if lev.tlo[k] is not None:
                lev.tlo[k] *= factor
            if lev.thi[k] is not None and lev.thi[k] is not lev.tlo[k]:
                lev.thi[k] *= factor

    def setup(self, a, theta_dt, kinds):
        """Mass and faces of every level, Jacobi weights, and the coarsest dense inverse."""
        xp = self.xp
        fine = self.levels[0]
        fine.mass[...] = a
        fine.mass *= theta_dt
        fine.mass += 1.0
        for lev in self.levels[1:]:
            lev.set_modes(kinds)
        for lev in self.levels:
            self._set_jacobi(lev)
            c = lev.coarse
            if c is None:
                break
            axes = lev.coarse_axes
            c.mass[...] = self._sum_children(lev.mass, axes)
            for k in range(self.ndim):
                perp = tuple(j for j in axes if j != k)
                if c.shape[k] >= 2:
                    t = lev.tin[k]
                    if k in axes:
                        t = t[_ix(self.ndim, k, slice(1, None, 2))] * c.ratio_in[k]
                    c.tin[k] = self._sum_children(t, perp)
                else:
                    c.tin[k] = None
                lo_kind, hi_kind = c.modes[k]
                if lo_kind == "periodic":
                    r = c.ratio_wrap[k] if k in axes else 1.0
                    c.tlo[k] = c.thi[k] = self._sum_children(lev.tlo[k], perp) * r
                    continue
                r_lo, r_hi = c.ratio_fixed[k] if k in axes else (1.0, 1.0)
                c.tlo[k] = (self._sum_children(lev.tlo[k], perp) * r_lo
                            if lo_kind == "fixed" else None)
                c.thi[k] = (self._sum_children(lev.thi[k], perp) * r_hi
                            if hi_kind == "fixed" else None)
        coarsest = self.levels[-1]
        m = coarsest.size
        eye = xp.eye(m, dtype=numpy.float64).reshape((m,) + coarsest.shape)
        A = xp.empty_like(eye)
        apply_stencil(xp, coarsest, eye, A)
        coarsest.inverse = xp.linalg.inv(A.reshape(m, m)).astype(self.dtype)

    def _sum_children(self, x, axes):
        for k in axes:
            x = _pair_sum(self.xp, x, k)
        return x

    def _set_jacobi(self, lev):
        xp = self.xp
        diag = lev.mass.copy()
        for k in range(self.ndim):
            if lev.tin[k] is not None:
                diag[lev.head[k]] += lev.tin[k]
                diag[lev.tail[k]] += lev.tin[k]
            if lev.tlo[k] is not None:
                diag[lev.lo[k]] += lev.tlo[k]
            if lev.thi[k] is not None:
                diag[lev.hi[k]] += lev.thi[k]
        xp.divide(self.omega, diag, out=lev.winv)

    # ------------------------------------------------------------------ the V-cycle
    def vcycle(self, lev, b):
        """Approximate ``(mass + K)^{-1} b`` on ``lev``; the result is ``lev.x``.

        A compiled Jacobi sweep writes ``lev.r`` and swaps it with ``lev.x`` (no copy back),
        so the iterate is always read from ``lev.x``, never kept across a sweep.
        """
        xp, ops = self.xp, self.ops
        if lev.coarse is None:
            xp.matmul(lev.inverse, b.reshape(-1), out=lev.x.reshape(-1))
            return lev.x
        xp.multiply(lev.winv, b, out=lev.x)         # first Jacobi sweep from x = 0
        for _ in range(_JACOBI_SWEEPS - 1):
            ops.jacobi(lev, b, lev.x, lev.winv)
        r = ops.stencil(lev, lev.x, lev.r, rhs=b)
        c = lev.coarse
        ops.restrict(lev, r, c.b)
        xc = self.vcycle(c, c.b)
        ops.prolong(lev, xc, lev.x)
        for _ in range(_JACOBI_SWEEPS):
            ops.jacobi(lev, b, lev.x, lev.winv)
        return lev.x
