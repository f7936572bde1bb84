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
