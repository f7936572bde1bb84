"""The level operators of the batched multigrid solver: the NumPy twin of
``kernels/batched_multigrid.cu``.

Every substrate of a step is one member of a batch ``s`` (arrays carry a leading batch
axis). On a level the batch solves

    A_s x_s = b_s,    A_s = mass_s + K_s,    (K_s x)_i = Σ_f T_f (x_i − x_j)

in the flux form of :mod:`.stencil`, the faces ``T`` already multiplied by θΔt/dx².
On the tissue grid (level 0) ``mass = 1 + θΔt·a`` and the faces come from D: the
harmonic mean of the two voxels' D times 2θΔt/dx² (a D map), or one number D·θΔt/dx² (a
uniform D); a fixed face is 2θΔt/dx²·D of its voxel, a periodic axis has one wrap face.
The kernels build these on the fly; :meth:`Level.set_fine` materialises them here, with
the same operations in the same order, so that both give the same numbers. Coarser
levels hold mass and faces as arrays (:func:`coarsen`): the mass sums the children, a
coarse face sums the fine faces it covers times the ratio of centre distances (as
:mod:`.multigrid`); a boundary face absent for a substrate is a face of 0.

**Held voxels** (fixed-value voxels, ``substrates.<name>.maps.fixed``). The step holds them
by a penalty rate P = S/u in a(x) (``Substrate._hold`` in
:mod:`spatialdtp.model.substrate_coefficients`), so their rows of A outweigh any other by
about 1/u. Level 0 solves them as they are (one sweep leaves them at their value to about
u); but summed into a coarse mass, that penalty makes every coarse cell with a held child
nearly fixed too, although its free children still need their correction: the cycles then
contract by only 0.75–0.8. So the coarse levels solve the error equation of the free voxels
alone, the held ones being Dirichlet values of zero correction (their error is zero to
within u). Level 0's coarsening (:func:`_free_operator`) turns a face between a free voxel
and a held one into mass of the free voxel (the Dirichlet condition e_j = 0 of its
neighbour), sets every face touching a held voxel to 0 and gives a held voxel mass 1 (any
positive number: it only keeps a coarse cell of held children regular); a held voxel's
residual is not restricted (:func:`residual_restrict`) and no correction is prolonged to it
(:func:`prolong_smooth`). ``Level.held`` (B, *shape) marks them on level 0, from the
batch's masks (:class:`Batch`); None where the batch has none, and then nothing changes.

The operators (each adds terms per voxel in the order of ``kernels/batched_multigrid.cu``:
base, then per axis the upper face, the lower face, the wrap face, the fixed low and high
faces):

* :func:`smooth`: one damped-Jacobi sweep ``y = x + ω (b − A x)/d`` (``d`` the diagonal
  of A); with ``x = None`` the sweep from zero, ``y = ω b/d``; it also reduces the
  scaled residual of its input (:func:`residual_norms` without the floor);
* :func:`residual_restrict`: ``b_coarse = R (b − A x)``, R summing the children (a held
  voxel's residual taken as 0);
* :func:`prolong_smooth`: ``x' = x + P e_coarse`` (P: linear interpolation between coarse
  cell centres, separable, the coarsened axes in ascending order; constant next to the
  domain's faces; 0 at a held voxel), then a sweep of ``x'``;
* :func:`residual_norms`: per substrate ``R = max_i |r_i|/d_i`` (the true residual,
  diagonally scaled: each voxel's residual in its own units, so that a vessel voxel's
  Δt·p·c_blood cannot hide the rest), ``M = max_i m_i/d_i`` with ``m_i`` the sum of the
  magnitudes of the terms of ``r_i`` (what rounding can leave: the precision floor),
  ``X = max_i |x_i|`` and a flag for any non-finite value;
* :func:`step_rhs`: the right-hand side ``c + θΔt f + (1 − θ)Δt L(c)`` of a θ-step
  (``f`` = b plus the fixed faces' sources) and the scaled residual of ``x = c``;
* :func:`predict`: ``x ← c + β (c − c_prev)``, ``c_prev ← c`` (pointwise);
* :func:`coarsest_solve`: the dense inverse of the coarsest level, per substrate.

Active flags (one per substrate) let a launch skip the substrates that have converged.
"""
from __future__ import annotations

import itertools

import numpy

from .multigrid import _COARSEST_CELLS, _JACOBI_OMEGA
from .stencil import _coarse_widths, _coarsen_shape

#: the floor of the stopping test, in units of u·M (u the unit round-off, M the largest
#: scaled term magnitude of the residual): a residual of ≤ 8 terms (3D: rhs, mass·x and
#: six faces) is computed to within γ_8 ≈ 8u of their magnitude, and storing the iterate
#: rounds it by u|x| (≤ 2u·M more through A); 16 covers both.
FLOOR_ULPS = 16
#: columns of the norm reductions: scaled residual, floor magnitude, field maximum,
#: non-finite flag, total clamped
R, M, X, NONFINITE, CLAMPED = range(5)
NORMS = 5


# --------------------------------------------------------------------------- index helpers
def _ax(nd, k, s):
    """Index ``s`` along spatial axis ``k`` of a batched array (leading axes pass)."""
    return (Ellipsis, s) + (slice(None),) * (nd - 1 - k)


def _sp(nd, k, s):
    """Index ``s`` along axis ``k`` of an unbatched array of ``nd`` axes."""
    return tuple(s if j == k else slice(None) for j in range(nd))


def _shape_with(shape, k, n):
    return shape[:k] + (n,) + shape[k + 1:]


def _pair_sum(xp, x, nd, k):
    """Sum neighbouring pairs along spatial axis ``k``; an odd last cell stays single."""
    n = x.shape[x.ndim - nd + k]
    half = n // 2
    shape = list(x.shape)
    shape[x.ndim - nd + k] = (n + 1) // 2
    out = xp.empty(tuple(shape), dtype=x.dtype)
    xp.add(x[_ax(nd, k, slice(0, 2 * half, 2))], x[_ax(nd, k, slice(1, 2 * half, 2))],
           out=out[_ax(nd, k, slice(0, half))])
    if n % 2:
        out[_ax(nd, k, slice(half, half + 1))] = x[_ax(nd, k, slice(n - 1, n))]
    return out


# --------------------------------------------------------------------------- geometry
class Level:
    """One level of the batched hierarchy: its geometry, and the batch's operator on it.

    Geometry (fixed for a grid): ``shape``, ``widths`` (cell widths in tissue voxels per
    axis), the next level ``coarse`` and the axes halved to reach it, the transfer slices
    ``pairs`` (children of each parity), the interpolation ``interp[k] = (p, q, wp, wq)``
    of each coarsened axis (fine cell i takes ``wp[i]·e[p[i]] + wq[i]·e[q[i]]``), and the
    centre-distance ratios of the coarse faces. Operator (set each step, batch of B):
    ``mass`` (B, *shape), ``tin[k]`` (B, faces along k), ``tlo[k]``, ``thi[k]`` (fixed
    faces) and ``twrap[k]`` (periodic wrap face), each (B, plane) or None where no
    substrate of the batch has that face, ``diag`` (B, *shape), and on level 0 ``held``
    (B, *shape) bool: the fixed-value voxels, or None where the batch has none.
    """

    def __init__(self, shape, widths):
        self.shape = tuple(int(n) for n in shape)
        self.ndim = len(self.shape)
        self.size = int(numpy.prod(self.shape))
        self.widths = [numpy.asarray(w, dtype=float) for w in widths]
        self.coarse = None
        self.coarse_axes = ()
        self.pairs = ()
        self.interp = {}
        self.ratio_in, self.ratio_fixed, self.ratio_wrap = {}, {}, {}
        nd = self.ndim
        self.head = [_ax(nd, k, slice(0, n - 1)) for k, n in enumerate(self.shape)]
        self.tail = [_ax(nd, k, slice(1, n)) for k, n in enumerate(self.shape)]
        self.lo = [_ax(nd, k, slice(0, 1)) for k in range(nd)]
        self.hi = [_ax(nd, k, slice(n - 1, n)) for k, n in enumerate(self.shape)]
        self.mass = self.diag = self.inverse = self.held = None
        self.tin = [None] * nd
        self.tlo = [None] * nd
        self.thi = [None] * nd
        self.twrap = [None] * nd

    def faces(self, k):
        """The four face arrays of axis ``k``: interior, wrap, fixed low, fixed high."""
        return self.tin[k], self.twrap[k], self.tlo[k], self.thi[k]


def hierarchy(shape):
    """The levels of ``shape``, fine first: every axis with ≥ 2 cells that is not already
    much wider than the others is halved (an odd axis keeps its last cell single) until a
    level has at most 64 cells, which is solved densely (as :mod:`.multigrid`)."""
    levels = [Level(shape, [numpy.ones(n) for n in shape])]
    while levels[-1].size > _COARSEST_CELLS:
        fine = levels[-1]
        axes = _coarsen_shape(fine.shape, fine.widths)
        if not axes:
            break
        cshape = tuple((n + 1) // 2 if k in axes else n for k, n in enumerate(fine.shape))
        widths = [_coarse_widths(w) if k in axes else w for k, w in enumerate(fine.widths)]
        coarse = Level(cshape, widths)
        fine.coarse, fine.coarse_axes = coarse, axes
        fine.pairs = _transfer_slices(fine.ndim, fine.shape, axes)
        for k in axes:
            fine.interp[k] = _interpolation(fine.widths[k], coarse.widths[k])
            _face_ratios(fine, coarse, k)
        levels.append(coarse)
    return levels


def _transfer_slices(nd, shape, axes):
    """(fine slice, coarse slice) of the children of each parity, in itertools.product
    order (the last coarsened axis fastest): the order restriction adds them in."""
    pairs = []
    for parity in itertools.product((0, 1), repeat=len(axes)):
        fs = [slice(None)] * nd
        cs = [slice(None)] * nd
        for k, p in zip(axes, parity):
            fs[k] = slice(p, None, 2)
            cs[k] = slice(None) if p == 0 else slice(0, shape[k] // 2)
        pairs.append(((Ellipsis,) + tuple(fs), (Ellipsis,) + tuple(cs)))
    return tuple(pairs)


def _interpolation(w, W):
    """Linear interpolation along one axis from coarse cells (widths W) to fine cells
    (widths w), between coarse centres; next to a domain face (or a lone coarse cell) a
    fine cell takes its parent's value. Returns (parent, neighbour, w_parent, w_other)."""
    xf = numpy.cumsum(w) - w / 2
    edges = numpy.r_[0.0, numpy.cumsum(W)]
    xc = edges[:-1] + W / 2
    parent = numpy.searchsorted(edges, xf, side="right") - 1
    other = numpy.where(xf < xc[parent], parent - 1, parent + 1)
    inside = (other >= 0) & (other < len(W)) & (xf != xc[parent])
    other = numpy.where(inside, other, parent)
    dist = numpy.abs(xc[other] - xc[parent])
    wp = numpy.where(inside, 1.0 - numpy.abs(xf - xc[parent]) / numpy.where(inside, dist, 1.0),
                     1.0)
    return parent.astype(numpy.int64), other.astype(numpy.int64), wp, 1.0 - wp


def _face_ratios(fine, coarse, k):
    """Fine-to-coarse centre-distance ratios of the faces of coarsened axis ``k``."""
    w, W = fine.widths[k], coarse.widths[k]
    if len(W) >= 2:
        F = numpy.arange(1, len(W))        # coarse face F is fine face 2F
        coarse.ratio_in[k] = (w[2 * F - 1] + w[2 * F]) / (W[F - 1] + W[F])
    coarse.ratio_fixed[k] = (float(w[0] / W[0]), float(w[-1] / W[-1]))
    coarse.ratio_wrap[k] = float((w[-1] + w[0]) / (W[-1] + W[0]))


# --------------------------------------------------------------------------- the batch
class Batch:
    """What one step's batch of substrates solves, as the kernels get it.

    ``theta_dt`` (min) and ``dx`` (µm) are shared; per substrate ``kinds`` (boundary kinds
    per axis), ``value`` (the fixed faces' value), ``D`` (a float, or an array of the grid:
    a map), ``a`` and ``b`` (floats or arrays). Derived: ``scale = θΔt/dx²`` and the
    per-substrate face numbers of uniform D (``D·scale``, ``2·D·scale``), in Python double
    as the kernels' parameters are. ``blocks``: the (B, *grid) arrays whose rows the
    maps are (the kernels read a batch's maps from one block; without it they are copied).
    ``held``: per substrate the mask of its fixed-value voxels (those whose penalty is in
    ``a``), or None; the coarse levels leave them out (see the module docstring).
    """

    def __init__(self, theta_dt, dx, kinds, values, D, a, b, blocks=None, held=None):
        self.theta_dt, self.dx = float(theta_dt), float(dx)
        self.blocks = blocks          # (D, a, b) blocks whose rows are the maps, if any
        self.held = list(held) if held is not None else [None] * len(kinds)
        self.kinds = [tuple(tuple(p) for p in k) for k in kinds]
        self.values = [float(v) for v in values]
        self.D, self.a, self.b = list(D), list(a), list(b)
        self.size = len(self.kinds)
        self.scale = self.theta_dt / self.dx**2
        self.d_map = [not isinstance(d, float) for d in self.D]
        self.a_map = [not isinstance(v, float) for v in self.a]
        self.b_map = [not isinstance(v, float) for v in self.b]
        # face numbers: a uniform D's interior and fixed faces; a map's factor 2θΔt/dx²
        self.t_uniform = [0.0 if m else d * self.scale for d, m in zip(self.D, self.d_map)]
        self.t_fixed = [0.0 if m else 2.0 * d * self.scale for d, m in zip(self.D, self.d_map)]
        self.t_map = 2.0 * self.scale

    def has(self, k, kind):
        """Does any substrate have a ``kind`` face on axis ``k`` (either side)?"""
        return any(kind in kinds[k] for kinds in self.kinds)


def set_fine(level, batch, xp, dtype):
    """Materialise level 0's mass, faces and diagonal for ``batch`` (what the kernels
    compute on the fly)."""
    B, nd, shape = batch.size, level.ndim, level.shape
    real = numpy.dtype(dtype).type
    mass = xp.empty((B,) + shape, dtype)
    for s in range(B):
        mass[s] = batch.a[s]
        mass[s] *= batch.theta_dt
        mass[s] += 1.0
    level.mass = mass
    for k, n in enumerate(shape):
        fshape = (B,) + _shape_with(shape, k, n - 1)
        level.tin[k] = xp.empty(fshape, dtype) if n >= 2 else None
        plane = (B,) + _shape_with(shape, k, 1)
        wrap = xp.zeros(plane, dtype) if batch.has(k, "periodic") else None
        lo = xp.zeros(plane, dtype) if batch.has(k, "fixed") else None
        hi = xp.zeros(plane, dtype) if batch.has(k, "fixed") else None
        for s in range(B):
            kind_lo, kind_hi = batch.kinds[s][k]
            D = batch.D[s]
            head, tail = _sp(nd, k, slice(0, n - 1)), _sp(nd, k, slice(1, n))
            first, last = _sp(nd, k, slice(0, 1)), _sp(nd, k, slice(n - 1, n))
            if batch.d_map[s]:
                if n >= 2:
                    level.tin[k][s] = _harmonic(xp, D[head], D[tail], batch.t_map, real)
                if kind_lo == "periodic":
                    wrap[s] = _harmonic(xp, D[last], D[first], batch.t_map, real)
                if kind_lo == "fixed":
                    lo[s] = real(batch.t_map) * D[first]
                if kind_hi == "fixed":
                    hi[s] = real(batch.t_map) * D[last]
            else:
                if n >= 2:
                    level.tin[k][s] = batch.t_uniform[s]
                if kind_lo == "periodic":
                    wrap[s] = batch.t_uniform[s]
                if kind_lo == "fixed":
                    lo[s] = batch.t_fixed[s]
                if kind_hi == "fixed":
                    hi[s] = batch.t_fixed[s]
        level.twrap[k], level.tlo[k], level.thi[k] = wrap, lo, hi
    level.diag = _diagonal(xp, level)
    level.held = None
    if any(h is not None for h in batch.held):
        level.held = xp.zeros((B,) + shape, bool)
        for s, h in enumerate(batch.held):
            if h is not None:
                level.held[s] = h


def _harmonic(xp, Da, Db, factor, real):
    """``((Da·Db)/(Da + Db))·factor``: the kernels' face from the two voxels' D."""
    out = xp.multiply(Da, Db)
    out /= Da + Db
    out *= real(factor)
    return out


def _diagonal(xp, level):
    """``mass + Σ_f T_f`` per voxel, faces in the stencil's order."""
    d = level.mass.copy()
    for k in range(level.ndim):
        tin, wrap, lo, hi = level.faces(k)
        if tin is not None:
            d[level.head[k]] += tin
            d[level.tail[k]] += tin
        if wrap is not None:
            d[level.hi[k]] += wrap
            d[level.lo[k]] += wrap
        if lo is not None:
            d[level.lo[k]] += lo
        if hi is not None:
            d[level.hi[k]] += hi
    return d


def _free_operator(xp, level):
    """``level``'s mass and faces with its held voxels taken out: the operator of the
    error equation whose correction is 0 at a held voxel. A face between a free voxel and a
    held one is added to the free voxel's mass, every face touching a held voxel is 0, a
    held voxel's mass is 1. Returns ``(mass, [faces(k) per axis])``, ``level``'s own where
    it holds none. The mass gathers its terms per voxel in the stencil's order (upper face,
    lower face, the wrap face at the high cell, at the low cell), as the kernel adds them."""
    h = level.held
    if h is None:
        return level.mass, [level.faces(k) for k in range(level.ndim)]
    mass = level.mass.copy()
    faces = []
    for k in range(level.ndim):
        head, tail, lo, hi = level.head[k], level.tail[k], level.lo[k], level.hi[k]
        tin, wrap, tlo, thi = level.faces(k)
        if tin is not None:
            mass[head] += xp.where(h[tail], tin, 0.0)
            mass[tail] += xp.where(h[head], tin, 0.0)
            tin = xp.where(h[head] | h[tail], 0.0, tin)
        if wrap is not None:
            mass[hi] += xp.where(h[lo], wrap, 0.0)
            mass[lo] += xp.where(h[hi], wrap, 0.0)
            wrap = xp.where(h[lo] | h[hi], 0.0, wrap)
        tlo = None if tlo is None else xp.where(h[lo], 0.0, tlo)
        thi = None if thi is None else xp.where(h[hi], 0.0, thi)
        faces.append((tin, wrap, tlo, thi))
    mass[h] = 1.0
    return mass, faces


def coarsen(xp, level):
    """The next level's mass, faces and diagonal from ``level``'s (as
    :meth:`.multigrid.Multigrid.setup`: sums of the children, times the face ratios), its
    held voxels left out (:func:`_free_operator`)."""
    c, nd, axes = level.coarse, level.ndim, level.coarse_axes

    def children(x, along):
        for k in along:
            x = _pair_sum(xp, x, nd, k)
        return x

    mass, faces = _free_operator(xp, level)
    c.mass = children(mass, axes)
    for k in range(nd):
        perp = tuple(j for j in axes if j != k)
        tin, wrap, lo, hi = faces[k]
        if c.shape[k] >= 2:
            t = tin
            if k in axes:
                ratio = c.ratio_in[k].reshape((-1,) + (1,) * (nd - 1 - k))
                t = t[_ax(nd, k, slice(1, None, 2))] * xp.asarray(ratio, dtype=t.dtype)
            c.tin[k] = children(t, perp)
        else:
            c.tin[k] = None
        r_lo, r_hi = c.ratio_fixed[k] if k in axes else (1.0, 1.0)
        r_wrap = c.ratio_wrap[k] if k in axes else 1.0
        c.twrap[k] = None if wrap is None else children(wrap, perp) * r_wrap
        c.tlo[k] = None if lo is None else children(lo, perp) * r_lo
        c.thi[k] = None if hi is None else children(hi, perp) * r_hi
    c.diag = _diagonal(xp, c)


def coarsest_inverse(xp, level):
    """The dense inverse of the coarsest level's matrix, per substrate (B, m, m), built
    in float64 by applying the stencil to the identity."""
    B, m = level.mass.shape[0], level.size
    eye = xp.broadcast_to(xp.eye(m, dtype=numpy.float64).reshape((1, m) + level.shape),
                          (B, m) + level.shape)
    A = xp.empty((B, m) + level.shape, numpy.float64)
    _stencil(xp, level, eye, A, batch_axes=2)
    level.inverse = xp.linalg.inv(A.reshape(B, m, m)).astype(level.mass.dtype)


# --------------------------------------------------------------------------- the stencil
def _stencil(xp, level, x, out, rhs=None, batch_axes=1):
    """``out = A x`` or ``out = rhs − A x``, per voxel base then the faces in order.

    ``batch_axes`` leading axes (the substrate, and for the dense inverse the unit vector)
    pass; the operator's arrays broadcast over the extra ones.
    """
    nd = level.ndim

    def op(a):
        return a if a is None or batch_axes == 1 else a.reshape(
            a.shape[:1] + (1,) * (batch_axes - 1) + a.shape[1:])

    xp.multiply(op(level.mass), x, out=out)
    sign = 1.0
    if rhs is not None:
        xp.subtract(rhs, out, out=out)
        sign = -1.0
    for k in range(nd):
        head, tail, lo, hi = level.head[k], level.tail[k], level.lo[k], level.hi[k]
        tin, wrap, tlo, thi = (op(f) for f in level.faces(k))
        if tin is not None:
            F = xp.subtract(x[tail], x[head])
            F *= tin
            if sign > 0:
                out[head] -= F
                out[tail] += F
            else:
                out[head] += F
                out[tail] -= F
        if wrap is not None:
            F = xp.subtract(x[lo], x[hi])
            F *= wrap
            if sign > 0:
                out[hi] -= F
                out[lo] += F
            else:
                out[hi] += F
                out[lo] -= F
        if tlo is not None:
            out[lo] += sign * (tlo * x[lo])
        if thi is not None:
            out[hi] += sign * (thi * x[hi])
    return out


def _magnitude(xp, level, x, rhs):
    """Σ |terms| of ``rhs − A x`` per voxel, in the stencil's order."""
    mag = xp.abs(rhs) + xp.abs(level.mass * x)
    for k in range(level.ndim):
        head, tail, lo, hi = level.head[k], level.tail[k], level.lo[k], level.hi[k]
        tin, wrap, tlo, thi = level.faces(k)
        if tin is not None:
            F = xp.abs((x[tail] - x[head]) * tin)
            mag[head] += F
            mag[tail] += F
        if wrap is not None:
            F = xp.abs((x[lo] - x[hi]) * wrap)
            mag[hi] += F
            mag[lo] += F
        if tlo is not None:
            mag[lo] += xp.abs(tlo * x[lo])
        if thi is not None:
            mag[hi] += xp.abs(thi * x[hi])
    return mag


def _rows(active, B):
    return range(B) if active is None else [s for s in range(B) if active[s]]


def _write(xp, out, value, active):
    """``out[s] = value[s]`` for the active substrates (all of them: one operation)."""
    if active is None or all(active):
        out[...] = value
        return
    for s in _rows(active, out.shape[0]):
        out[s] = value[s]


def _norms(xp, r, d, mag, x, clamped=None):
    """(B, 5) float64 per substrate: max |r|/d, max mag/d, max |x|, a non-finite flag and
    the total clamped away (see :func:`residual_norms`)."""
    B = r.shape[0]
    flat = lambda a: a.reshape(B, -1)  # noqa: E731
    finite = xp.isfinite(flat(r)).all(axis=1) & xp.isfinite(flat(x)).all(axis=1)
    out = xp.zeros((B, NORMS), numpy.float64)
    out[:, R] = xp.where(finite, flat(xp.abs(r) / d).max(axis=1), 0.0)
    if mag is not None:
        out[:, M] = xp.where(finite, flat(mag / d).max(axis=1), 0.0)
    out[:, X] = xp.where(finite, flat(xp.abs(x)).max(axis=1), 0.0)
    out[:, NONFINITE] = ~finite
    if clamped is not None:
        out[:, CLAMPED] = clamped
    return out


# --------------------------------------------------------------------------- the operators
def smooth(xp, level, x, b, y, omega, active=None, record=False):
    """One damped-Jacobi sweep into ``y``: ``y = x + ω (b − A x)/d`` (``x`` None: from
    zero). With ``record``, returns the norms of ``x``'s residual (without the floor)."""
    winv = omega / level.diag
    if x is None:
        _write(xp, y, b * winv, active)
        return None
    r = _stencil(xp, level, x, xp.empty_like(x), rhs=b)
    norms = _norms(xp, r, level.diag, None, x) if record else None
    r *= winv
    r += x
    _write(xp, y, r, active)
    return norms


def residual_restrict(xp, level, x, b, coarse_b, active=None):
    """``coarse_b = R (b − A x)``: the residual summed over each coarse cell's children,
    a held voxel's taken as 0 (the coarse levels do not correct it)."""
    r = _stencil(xp, level, x, xp.empty_like(x), rhs=b)
    if level.held is not None:
        r[level.held] = 0.0
    (fs0, _), *rest = level.pairs
    out = r[fs0].copy()
    for fs, cs in rest:
        out[cs] += r[fs]
    _write(xp, coarse_b, out, active)
    return coarse_b


def prolong(xp, level, e):
    """``P e``: separable linear interpolation, coarsened axes in ascending order."""
    nd = level.ndim
    out = e
    for k in level.coarse_axes:
        p, q, wp, wq = level.interp[k]
        shape = (-1,) + (1,) * (nd - 1 - k)
        axis = out.ndim - nd + k
        wp = xp.asarray(wp.reshape(shape), dtype=e.dtype)
        wq = xp.asarray(wq.reshape(shape), dtype=e.dtype)
        out = wp * xp.take(out, xp.asarray(p), axis=axis) + wq * xp.take(out, xp.asarray(q),
                                                                         axis=axis)
    return out


def prolong_smooth(xp, level, x, e, b, y, omega, active=None):
    """``x' = x + P e`` (nothing added at a held voxel), then one sweep of ``x'`` into
    ``y``."""
    correction = prolong(xp, level, e)
    if level.held is not None:
        correction[level.held] = 0.0
    corrected = x + correction
    smooth(xp, level, corrected, b, y, omega, active)


def residual_norms(xp, level, x, b, clamp=False, active=None):
    """(B, 5) norms of ``b − A x``: R, M (the floor's magnitude), X, non-finite, clamped.

    ``clamp`` (θ = 1 solves, whose exact solution is non-negative): first set negative
    values of ``x`` to zero in place (an iteration error: clearing it only brings x
    closer), record their total per substrate, and measure the residual of the result.
    ``active``: the substrates checked (default all); the others' ``x`` is not touched
    and their rows of the result mean nothing (the kernel leaves them unwritten).
    """
    clamped = None
    if clamp:
        B = x.shape[0]
        clamped = -xp.minimum(x, 0.0).reshape(B, -1).sum(axis=1, dtype=numpy.float64)
        if active is None or all(active):
            xp.maximum(x, 0.0, out=x)
        else:
            for s in _rows(active, B):
                xp.maximum(x[s], 0.0, out=x[s])
    r = _stencil(xp, level, x, xp.empty_like(x), rhs=b)
    return _norms(xp, r, level.diag, _magnitude(xp, level, x, b), x, clamped)


def coarsest_solve(xp, level, b, x, active=None):
    """``x = A⁻¹ b`` on the coarsest level, per substrate."""
    B = b.shape[0]
    out = xp.matmul(level.inverse, b.reshape(B, -1, 1)).reshape(b.shape)
    _write(xp, x, out, active)
    return x


def step_rhs(xp, level, batch, c, rhs, theta):
    """The right-hand side of the θ-step from ``c`` into ``rhs``; returns the norms of the
    residual of ``x = c`` (``Δt·L(c)``, the plain warm start).

    With s = θΔt·(b + fixed-face sources) and q = s + c − A c (= θΔt L(c)):
    ``rhs = c + s`` for θ = 1, else ``rhs = c + s + ((1 − θ)/θ)·q``.
    """
    B = batch.size
    src = xp.empty_like(c)
    for s in range(B):
        src[s] = batch.b[s]
        src[s] *= batch.theta_dt
    nd = level.ndim
    for k, n in enumerate(level.shape):
        _tin, _wrap, lo, hi = level.faces(k)
        for face, sl in ((lo, _sp(nd, k, slice(0, 1))), (hi, _sp(nd, k, slice(n - 1, n)))):
            if face is None:
                continue
            for s in range(B):
                if batch.values[s] != 0.0:
                    src[s][sl] += batch.values[s] * face[s]
    Ac = _stencil(xp, level, c, xp.empty_like(c))
    xp.add(c, src, out=rhs)
    if theta != 1.0:
        q = src + c
        q -= Ac
        q *= (1.0 - theta) / theta
        rhs += q
    r = rhs - Ac
    return _norms(xp, r, level.diag, _magnitude(xp, level, c, rhs), c)


def predict(xp, x, prev, beta, active=None):
    """``x ← x + β (x − prev)``, ``prev ← x`` (the old x), pointwise, per active row."""
    for s in _rows(active, x.shape[0]):
        old = x[s].copy()
        if beta != 0.0:
            x[s] += beta * (old - prev[s])
        prev[s] = old


def restart(xp, x, prev, rows):
    """``x ← prev`` for the given rows (a rejected predictor, a fallback)."""
    for s in rows:
        x[s] = prev[s]


class ArrayBatchedOps:
    """The batched multigrid operators as array expressions in ``xp`` (the reference)."""

    compiled = False

    def __init__(self, xp, dtype, counters=None):
        self.xp, self.dtype, self.counters = xp, numpy.dtype(dtype), counters

    def setup(self, levels, batch):
        xp = self.xp
        set_fine(levels[0], batch, xp, self.dtype)
        for lev in levels[:-1]:
            coarsen(xp, lev)
        coarsest_inverse(xp, levels[-1])

    def step_rhs(self, levels, batch, c, rhs, theta):
        return step_rhs(self.xp, levels[0], batch, c, rhs, theta)

    def predict(self, x, prev, beta, active=None):
        predict(self.xp, x, prev, beta, active)

    def restart(self, x, prev, rows):
        restart(self.xp, x, prev, rows)

    def smooth(self, level, x, b, y, omega, active=None, record=False):
        return smooth(self.xp, level, x, b, y, omega, active, record)

    def residual_restrict(self, level, x, b, coarse_b, active=None):
        return residual_restrict(self.xp, level, x, b, coarse_b, active)

    def prolong_smooth(self, level, x, e, b, y, omega, active=None):
        prolong_smooth(self.xp, level, x, e, b, y, omega, active)

    def coarsest_solve(self, level, b, x, active=None):
        return coarsest_solve(self.xp, level, b, x, active)

    def residual_norms(self, level, x, b, clamp=False, active=None):
        return residual_norms(self.xp, level, x, b, clamp, active)

    def read(self, a, site):
        """``a`` on the host: a device→host read, counted as one sync at ``site``."""
        if self.counters is not None:
            self.counters.sync(site)
        return numpy.asarray(a.get() if hasattr(a, "get") else a)


__all__ = ["ArrayBatchedOps", "Batch", "FLOOR_ULPS", "Level", "NORMS", "hierarchy",
           "_JACOBI_OMEGA"]
