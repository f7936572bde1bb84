"""Launchers of the multigrid kernels (``kernels/stencil.cu``): the operator/residual, the
damped-Jacobi sweep and the two transfers of one level of :mod:`spatialdtp.numerics.implicit.stencil`.

A level is handed to the kernels padded to three axes (a 2D level is ``(1, ny, nx)``), each
axis as its interior faces, its two boundary faces (``None``: none there) and a periodic
flag. What the kernels do not take (a batch axis, a view that is not C-contiguous, another
dtype) goes to the references in :mod:`spatialdtp.numerics.implicit.stencil` (``apply_stencil``,
``jacobi_sweep``, ``restrict_children``, ``prolong_add``).
"""
from __future__ import annotations

import numbers

import numpy as np

from ..numerics.implicit import stencil as reference


def _padded_shape(level):
    return (1,) * (3 - level.ndim) + tuple(level.shape)


def _faces(level):
    """The 12 face arguments (tin, tlo, thi, periodic per padded axis)."""
    args = [None, None, None, 0] * (3 - level.ndim)
    for k in range(level.ndim):
        periodic = level.modes[k][0] == "periodic"
        args += [level.tin[k], level.tlo[k], None if periodic else level.thi[k], int(periodic)]
    return args


def _fits(ops, level, *arrays):
    """Every array is a C-contiguous array of the level's shape and the library's dtype."""
    for a in arrays:
        if a is None:
            continue
        if (a.dtype != ops.dtype or not a.flags.c_contiguous
                or tuple(a.shape) != level.shape):
            return False
    return True


def _faces_fit(ops, level, faces):
    """The face arrays are C-contiguous, of the library's dtype and of the sizes the kernel
    indexes (interior: n_k − 1 along axis k, boundary: 1)."""
    size = level.size
    for j, a in enumerate(faces):
        if a is None or isinstance(a, int):
            continue
        n = _padded_shape(level)[j // 4]
        want = size // n * (n - 1 if j % 4 == 0 else 1)
        if a.dtype != ops.dtype or not a.flags.c_contiguous or a.size != want:
            return False
    return True


def stencil(ops, level, x, out, rhs=None, mass=None):
    """``out = (mass + K) x``, or ``out = rhs − (mass + K) x`` when ``rhs`` is given."""
    mass = level.mass if mass is None else mass
    mass_array = None if isinstance(mass, numbers.Real) else mass
    rhs_array = None if rhs is None or isinstance(rhs, numbers.Real) else rhs
    faces = _faces(level)
    if not (_fits(ops, level, x, out, mass_array, rhs_array) and _faces_fit(ops, level, faces)):
        return reference.apply_stencil(ops.xp, level, x, out, rhs, mass)
    rhs_value = 0.0 if rhs is None or rhs_array is not None else float(rhs)
    mass_value = 0.0 if mass_array is not None else float(mass)
    ops.lib.launch("stencil_apply", level.size, *_padded_shape(level), x, out,
                   rhs_array, rhs_value, int(rhs is not None), mass_array, mass_value, *faces)
    return out


def jacobi(ops, level, b, x, omega_over_diag):
    """One damped-Jacobi sweep ``x ← x + w·(b − A x)``.

    The kernel writes a second buffer (a sweep reads its neighbours' old values). When
    ``x`` is ``level.x`` that buffer is ``level.r`` and the two swap: afterwards
    ``level.x`` holds the swept values (the V-cycle reads them from there). Any other
    ``x`` (or a ``b`` that is ``level.r``) goes through a scratch array, copied back.
    """
    faces = _faces(level)
    if not (_fits(ops, level, b, x, omega_over_diag, level.mass, level.r)
            and _faces_fit(ops, level, faces)):
        reference.jacobi_sweep(ops.xp, level, b, x, omega_over_diag)
        return
    swap = x is level.x and b is not level.r and omega_over_diag is not level.r
    x_new = level.r if swap else ops.xp.empty_like(x)
    ops.lib.launch("jacobi_sweep", level.size, *_padded_shape(level), x, x_new, b,
                   omega_over_diag, level.mass, *faces)
    if swap:
        level.x, level.r = x_new, x
    else:
        x[...] = x_new


def _transfer_args(ops, level, fine, coarse):
    """Fine shape and coarsened-axis flags (padded to three axes), or None where the
    kernels do not apply."""
    if level.coarse is None or not (_fits(ops, level, fine) and _fits(ops, level.coarse, coarse)):
        return None
    flags = [0] * (3 - level.ndim) + [int(k in level.coarse_axes) for k in range(level.ndim)]
    return (*_padded_shape(level), *flags)


def restrict(ops, level, fine, coarse):
    """``coarse`` = the sum of the children of each coarse cell of ``fine`` (on ``level``)."""
    args = _transfer_args(ops, level, fine, coarse)
    if args is None:
        return reference.restrict_children(ops.xp, level, fine, coarse)
    ops.lib.launch("restrict_sum", level.coarse.size, *args, fine, coarse)
    return coarse


def prolong(ops, level, coarse, fine):
    """``fine`` += the value of each fine cell's parent in ``coarse``."""
    args = _transfer_args(ops, level, fine, coarse)
    if args is None:
        return reference.prolong_add(ops.xp, level, coarse, fine)
    ops.lib.launch("prolong_add", level.size, *args, coarse, fine)
    return fine


# --------------------------------------------------------------------------- the batched solve
class BatchedKernels:
    """The batched multigrid operators of :mod:`spatialdtp.numerics.implicit.batched_multigrid`
    as the kernels of ``kernels/batched_multigrid.cu``: the same interface as its
    ``ArrayBatchedOps``. Level 0's mass and faces are built on the fly by every kernel from
    the coefficient maps (or numbers) of the batch; coarser levels' are written by
    ``bmg_coarsen`` into arrays kept here, one set per grid and batch size. The coarsest
    level's dense inverse is built by the reference from those arrays (≤ 64 cells). The
    batch's fixed-value masks go to the level-0 transfers as one (B, N) block of bytes
    (``held``; null without any)."""

    compiled = True

    def __init__(self, ops):
        self.ops, self.xp, self.dtype, self.lib = ops, ops.xp, ops.dtype, ops.lib
        self.counters = ops.counters
        self._masks = {}
        self._held, self._held_of = None, None

    def read(self, a, site):
        return self.ops.read(a, site)

    # ------------------------------------------------------------------ packing
    def _mask(self, active, B):
        key = tuple(bool(v) for v in active) if active is not None else (True,) * B
        if key not in self._masks:
            self._masks[key] = self.xp.asarray(np.asarray(key, dtype=np.int64))
        return self._masks[key]

    def _pack(self, batch):
        """q (per substrate: the six face kinds of the padded axes, D/a/b maps) and p."""
        from ..numerics.implicit.batched_multigrid import Batch  # noqa: F401 (the type)

        codes = {"no_flux": 0, "fixed": 1, "periodic": 2}
        q, p = [], []
        nd = len(batch.kinds[0])
        for s in range(batch.size):
            kinds = [(0, 0)] * (3 - nd) + [(codes[lo], codes[hi]) for lo, hi in batch.kinds[s]]
            q += [c for pair in kinds for c in pair]
            q += [int(batch.d_map[s]), int(batch.a_map[s]), int(batch.b_map[s])]
            p += [batch.t_uniform[s], batch.t_fixed[s], batch.values[s],
                  batch.a[s] if not batch.a_map[s] else 0.0,
                  batch.b[s] if not batch.b_map[s] else 0.0]
        xp = self.xp
        return (xp.asarray(np.asarray(p, dtype=self.dtype)),
                xp.asarray(np.asarray(q, dtype=np.int64)))

    def _block(self, batch, which):
        """The (B, N) block whose rows are the batch's ``which`` maps (D, a or b), or None
        when no substrate has that map: ``batch.blocks`` where the caller kept its maps in
        one block, else a copy."""
        rows = {"D": batch.D, "a": batch.a, "b": batch.b}[which]
        flags = {"D": batch.d_map, "a": batch.a_map, "b": batch.b_map}[which]
        if not any(flags):
            return None
        blocks = getattr(batch, "blocks", None)
        if blocks is not None:
            block = blocks["Dab".index(which)]
            if all(r is None or not m or _is_row(r, block, s)
                   for s, (r, m) in enumerate(zip(rows, flags))):
                return block
        block = self.xp.zeros((batch.size,) + tuple(np.shape(next(
            r for r, m in zip(rows, flags) if m))), self.dtype)
        for s, (r, m) in enumerate(zip(rows, flags)):
            if m:
                block[s] = r
        return block

    def _held_block(self, batch, shape):
        """The (B, *shape) uint8 block of the batch's fixed-value masks, or None without
        any; rebuilt only when a substrate's mask is another array (a run keeps its
        substrates' masks for good, so a step reuses the block)."""
        held = list(batch.held)
        if all(h is None for h in held):
            return None
        if self._held_of is None or len(self._held_of) != len(held) or any(
                a is not b for a, b in zip(self._held_of, held)):
            block = self.xp.zeros((batch.size,) + tuple(shape), np.uint8)
            for s, h in enumerate(held):
                if h is not None:
                    block[s] = h
            self._held, self._held_of = block, held
        return self._held

    def _level0_held(self, level):
        """The held block for a level-0 transfer, None (a null pointer) on coarser ones."""
        return self._held_now if self._index.get(id(level), 0) == 0 else None

    def _padded(self, level):
        return (1,) * (3 - level.ndim) + tuple(level.shape)

    def _op(self, level, index):
        """The op arguments of ``kernels/batched_multigrid.cu`` (BMG_OP_PARAMS) for a level."""
        B, pad = self._B, 3 - level.ndim
        n0, n1, n2 = self._padded(level)
        if index == 0:
            faces = [None] * 12
            return (B, n0, n1, n2, 1, self._a, self._D, self._p, self._q,
                    self._tdt, self._tmap, None, *faces)
        tin = [None] * pad + list(level.tin)
        wrap = [None] * pad + list(level.twrap)
        lo = [None] * pad + list(level.tlo)
        hi = [None] * pad + list(level.thi)
        return (B, n0, n1, n2, 0, None, None, self._p, self._q, self._tdt, self._tmap,
                level.mass, *tin, *wrap, *lo, *hi)

    def _flags(self, level):
        pad = 3 - level.ndim
        return [0] * pad + [int(k in level.coarse_axes) for k in range(level.ndim)]

    def _interp(self, level):
        """(parent, other) and (w_parent, w_other) pairs per padded fine index."""
        key = ("bmg_interp", id(level))
        if key not in self.ops._cache:
            ip, w = [], []
            for k, n in enumerate(self._padded(level)):
                ax = k - (3 - level.ndim)
                if ax >= 0 and ax in level.interp:
                    p, q, wp, wq = level.interp[ax]
                    ip += [v for pair in zip(p, q) for v in pair]
                    w += [v for pair in zip(wp, wq) for v in pair]
                else:
                    ip += [v for i in range(n) for v in (i, i)]
                    w += [1.0, 0.0] * n
            self.ops._cache[key] = (level, self.xp.asarray(np.asarray(ip, dtype=np.int64)),
                                    self.xp.asarray(np.asarray(w, dtype=self.dtype)))
        return self.ops._cache[key][1:]

    def _ratios(self, fine):
        key = ("bmg_ratios", id(fine))
        if key not in self.ops._cache:
            c, pad = fine.coarse, 3 - fine.ndim
            ratio, fixed = [], []
            for k, m in enumerate(self._padded(c)):
                ax = k - pad
                r = np.ones(m)
                if ax >= 0 and ax in fine.coarse_axes and ax in c.ratio_in:
                    r[:m - 1] = c.ratio_in[ax]
                ratio += list(r)
                if ax >= 0 and ax in fine.coarse_axes:
                    fixed += [*c.ratio_fixed[ax], c.ratio_wrap[ax]]
                else:
                    fixed += [1.0, 1.0, 1.0]
            self.ops._cache[key] = (fine, self.xp.asarray(np.asarray(ratio, dtype=self.dtype)),
                                    self.xp.asarray(np.asarray(fixed, dtype=self.dtype)))
        return self.ops._cache[key][1:]

    def _arrays(self, level, batch):
        """Allocate (once per batch shape) the coarse level's mass and face arrays."""
        xp, B, nd = self.xp, batch.size, level.ndim
        key = (B,) + tuple((batch.has(k, "periodic"), batch.has(k, "fixed")) for k in range(nd))
        if getattr(level, "_bmg_key", None) == key:
            return
        level._bmg_key = key
        level.mass = xp.empty((B,) + level.shape, self.dtype)
        for k, n in enumerate(level.shape):
            face = level.shape[:k] + (n - 1,) + level.shape[k + 1:]
            plane = level.shape[:k] + (1,) + level.shape[k + 1:]
            level.tin[k] = xp.empty((B,) + face, self.dtype) if n >= 2 else None
            level.twrap[k] = xp.empty((B,) + plane, self.dtype) if batch.has(k, "periodic") \
                else None
            fixed = batch.has(k, "fixed")
            level.tlo[k] = xp.empty((B,) + plane, self.dtype) if fixed else None
            level.thi[k] = xp.empty((B,) + plane, self.dtype) if fixed else None

    # ------------------------------------------------------------------ set-up
    def setup(self, levels, batch):
        from ..numerics.implicit import batched_multigrid as bmg

        fine = levels[0]
        self._B = batch.size
        self._p, self._q = self._pack(batch)
        self._tdt, self._tmap = batch.theta_dt, batch.t_map
        self._a, self._D, self._b = (self._block(batch, w) for w in ("a", "D", "b"))
        self._index = {id(lev): i for i, lev in enumerate(levels)}
        self._held_now = self._held_block(batch, fine.shape)
        if fine.coarse is None:               # a grid of ≤ 64 cells: dense, by the reference
            bmg.set_fine(fine, batch, self.xp, self.dtype)
            bmg.coarsest_inverse(self.xp, fine)
            return
        for i, lev in enumerate(levels[:-1]):
            c = lev.coarse
            self._arrays(c, batch)
            ratio, fixed = self._ratios(lev)
            pad = 3 - c.ndim
            outs = ([None] * pad + list(c.tin) + [None] * pad + list(c.twrap)
                    + [None] * pad + list(c.tlo) + [None] * pad + list(c.thi))
            self.lib.launch("bmg_coarsen", self._B * c.size, *self._op(lev, i),
                            *self._flags(lev), ratio, fixed, c.mass, *outs,
                            self._level0_held(lev))
        bmg.coarsest_inverse(self.xp, levels[-1])

    def _chunks(self, level):
        return self.lib.reduction_chunks(level.size)

    def _finish(self, partial, chunks):
        """(B, 5) norms from the per-chunk partials: maxima, the clamped total a sum."""
        from ..numerics.implicit import batched_multigrid as bmg

        xp = self.xp
        part = partial.reshape(self._B, bmg.NORMS, chunks)
        out = part.max(axis=2)
        out[:, bmg.CLAMPED] = part[:, bmg.CLAMPED].sum(axis=1)
        bad = out[:, bmg.NONFINITE] > 0
        for col in (bmg.R, bmg.M, bmg.X):
            out[:, col] = xp.where(bad, 0.0, out[:, col])
        return out

    def _partial(self, chunks):
        from ..numerics.implicit import batched_multigrid as bmg

        key = ("bmg_partial", self._B, chunks)
        return self.ops.cached(key, lambda: self.xp.empty(self._B * bmg.NORMS * chunks,
                                                         np.float64))

    # ------------------------------------------------------------------ operators
    def step_rhs(self, levels, batch, c, rhs, theta):
        fine = levels[0]
        chunks = self._chunks(fine)
        partial = self._partial(chunks)
        w = 0.0 if theta == 1.0 else (1.0 - theta) / theta
        self.lib.launch("bmg_step_rhs", chunks, *self._op(fine, 0), self._b, c, rhs, w,
                        partial)
        return self._finish(partial, chunks)

    def predict(self, x, prev, beta, active=None):
        N = x[0].size
        self.lib.launch("bmg_predict", x.size, N, x, prev, beta, self._mask(active, x.shape[0]))

    def restart(self, x, prev, rows):
        rows = list(rows)
        if rows:
            B = x.shape[0]
            self.lib.launch("bmg_restart", x.size, x[0].size, x, prev,
                            self._mask([s in rows for s in range(B)], B))

    def smooth(self, level, x, b, y, omega, active=None, record=False):
        i = self._index.get(id(level), 0)
        chunks = self._chunks(level)
        partial = self._partial(chunks) if record else None
        self.lib.launch("bmg_smooth", chunks, *self._op(level, i), x, b, y,
                        self._mask(active, self._B), omega, partial)
        return self._finish(partial, chunks) if record else None

    def residual_restrict(self, level, x, b, coarse_b, active=None):
        i = self._index.get(id(level), 0)
        self.lib.launch("bmg_residual_restrict", self._B * level.coarse.size,
                        *self._op(level, i), *self._flags(level), x, b, coarse_b,
                        self._mask(active, self._B), self._level0_held(level))
        return coarse_b

    def prolong_smooth(self, level, x, e, b, y, omega, active=None):
        i = self._index.get(id(level), 0)
        ip, w = self._interp(level)
        scratch = self.ops.cached(("bmg_scratch", self._B, level.shape),
                                  lambda: self.xp.empty((self._B,) + level.shape, self.dtype))
        self.lib.launch("bmg_prolong_smooth", self._B * level.size, *self._op(level, i),
                        *self._flags(level), ip, w, x, e, b, y, self._mask(active, self._B),
                        omega, None if getattr(self.lib, "cp", None) is not None else scratch,
                        self._level0_held(level))

    def coarsest_solve(self, level, b, x, active=None):
        """On a coarse level every row at once (one product, one write): a converged
        substrate's coarse correction is computed but never read (the prolongation skips
        its row). On a grid that is its own coarsest level ``x`` is the state: only the
        active rows are written."""
        from ..numerics.implicit import batched_multigrid as bmg

        coarse = self._index.get(id(level), 0) > 0
        return bmg.coarsest_solve(self.xp, level, b, x, None if coarse else active)

    def residual_norms(self, level, x, b, clamp=False, active=None):
        i = self._index.get(id(level), 0)
        chunks = self._chunks(level)
        partial = self._partial(chunks)
        self.lib.launch("bmg_residual_norms", chunks, *self._op(level, i), x, b,
                        self._mask(active, self._B), int(clamp), partial)
        return self._finish(partial, chunks)


def _is_row(row, block, s):
    """Is ``row`` the memory of ``block[s]`` (NumPy or CuPy)?"""
    target = block[s]
    if hasattr(row, "__array_interface__"):
        return (row.__array_interface__["data"][0] == target.__array_interface__["data"][0]
                and row.shape == target.shape and row.dtype == target.dtype)
    return row.data.ptr == target.data.ptr and row.shape == target.shape
