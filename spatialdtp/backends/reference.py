"""The hot loops as whole-array expressions: the reference every compiled kernel matches.

Each method is the readable definition, written in the model's own modules (each named
like its kernel: :mod:`spatialdtp.numerics.cell_kinetics`, :mod:`spatialdtp.numerics.transport`,
:mod:`spatialdtp.model.substrate_coefficients`, :mod:`spatialdtp.numerics.implicit.stencil`,
:mod:`spatialdtp.run.observables`); this class only gathers them behind the interface that
:class:`.compiled_ops.CompiledOps` also has. With ``xp = numpy`` it is the ``numpy``
backend; with ``xp = cupy`` it is the straightforward array-expression GPU implementation
the benchmarks compare the fused kernels with.
"""
from __future__ import annotations

from ..numerics import cell_kinetics, distance, niche_labels, transport
from ..numerics.implicit.batched_multigrid import ArrayBatchedOps
from ..numerics.implicit.stencil import ArrayStencils


class ReferenceOps(ArrayStencils):
    """``stencil``, ``jacobi``, ``restrict`` and ``prolong`` (the multigrid pieces) come
    from :class:`~spatialdtp.numerics.implicit.stencil.ArrayStencils`; the batched
    multigrid operators from :class:`~spatialdtp.numerics.implicit.batched_multigrid.
    ArrayBatchedOps` (:meth:`batched_ops`)."""

    compiled = False

    def batched_ops(self, dtype):
        """The batched multigrid operators for arrays of ``dtype``."""
        return ArrayBatchedOps(self.xp, dtype, self.counters)

    # cells ------------------------------------------------------------------------
    def react_cells(self, state, kinetics, treatment_cfg, tau: float) -> None:
        """Pointwise cell kinetics over τ minutes, substrates frozen (in place)."""
        cell_kinetics.react_state(state, kinetics, treatment_cfg, tau)

    def move_cells(self, state, motilities, chi: float, tau: float, capacity: float,
                   pressure: float = 0.0) -> None:
        """The tumour's pressure-driven expansion (mobility ``pressure``, µm²/min), then
        crowding-limited motility of every cell type and TAM chemotaxis, over τ minutes (in
        place); ``capacity`` in cells per voxel.

        With chemotaxis the reference reads the largest drift speed back to the host once
        (``float(...)`` in :func:`~spatialdtp.numerics.transport.move_cells`, which has no
        ops to count through): counted here."""
        if chi > 0:
            self.counters.sync("transport: largest drift speed")
        transport.move_state(state, motilities, chi, tau, capacity, pressure)

    # substrates -------------------------------------------------------------------
    def coefficients(self, substrate, state, c_lin, blood: float, out=None):
        """``(D, a, b)`` of one substrate's implicit step (see
        :mod:`spatialdtp.model.substrate_coefficients`); with ``out`` (D or None, a, b
        arrays) the maps among them are copied there (scalars stay scalars)."""
        coefficients = substrate.coefficients(state, c_lin, blood)
        if out is None:
            return coefficients
        return tuple(v if isinstance(v, float) or o is None else self._into(o, v)
                     for v, o in zip(coefficients, out))

    def coefficients_batch(self, substrates, state, c_lin, levels, blocks, active):
        """Every active substrate's ``(D, a, b)`` (:meth:`coefficients` each, ``c_lin[s]``
        its linearisation point, ``levels[s]`` its blood level), the maps in its rows of
        ``blocks`` (D, a, b); None for one not active. The caller takes the uniform
        coefficients' numbers from :meth:`Substrate.uniform`."""
        return [self.coefficients(sub, state, c_lin[s], levels[s],
                                  out=tuple(blk[s] for blk in blocks)) if on else None
                for s, (sub, on) in enumerate(zip(substrates, active))]

    def _into(self, out, value):
        out[...] = value
        return out

    # observables ------------------------------------------------------------------
    def min_plus_pass(self, d2, axis: int, top: int):
        """One axis of the squared voxel distance (see
        :func:`~spatialdtp.numerics.distance.min_plus_pass`), into a new array."""
        return distance.min_plus_pass(d2, axis, top, self.xp)

    def niche_mask(self, F, M, threshold: float):
        """The niche voxels, ``(F + M) >= threshold`` (see
        :func:`~spatialdtp.numerics.niche_labels.niche_mask`)."""
        return niche_labels.niche_mask(F, M, threshold, self.xp)

    def label_voxels(self, niche, k, code, n_strata: int, near_cut: float, far_cut: float):
        """The niche contrast's labels (see
        :func:`~spatialdtp.numerics.niche_labels.label_voxels`)."""
        return niche_labels.label_voxels(niche, k, code, n_strata, near_cut, far_cut,
                                         self.xp)

    def observable_sums(self, observer, state, labels, T0, n_labels: int):
        """The float64 sums the observables are made of, as one host array (one read,
        counted here: :meth:`~spatialdtp.run.observables.Observer.sums_reference` makes it)."""
        self.counters.sync("observable sums")
        return observer.sums_reference(state, labels, T0, n_labels)
