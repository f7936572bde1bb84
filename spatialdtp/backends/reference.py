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

from ..numerics import cell_kinetics, transport
from ..numerics.implicit.stencil import ArrayStencils


class ReferenceOps(ArrayStencils):
    """``stencil``, ``jacobi``, ``restrict`` and ``prolong`` (the multigrid pieces) come
    from :class:`~spatialdtp.numerics.implicit.stencil.ArrayStencils`."""

    compiled = False

    # cells ------------------------------------------------------------------------
    def react_cells(self, state, kinetics, treatment_cfg, tau: float) -> None:
        """Pointwise cell kinetics over τ minutes, substrates frozen (in place)."""
        cell_kinetics.react_state(state, kinetics, treatment_cfg, tau)

    def move_cells(self, state, motilities, chi: float, tau: float, capacity: float,
                   pressure: float = 0.0) -> None:
        """The tumour's pressure-driven expansion (mobility ``pressure``, µm²/min), then
        crowding-limited motility of every cell type and TAM chemotaxis, over τ minutes (in
        place); ``capacity`` in cells per voxel."""
        transport.move_state(state, motilities, chi, tau, capacity, pressure)

    # substrates -------------------------------------------------------------------
    def coefficients(self, substrate, state, c_lin, blood: float):
        """``(D, a, b)`` of one substrate's implicit step (see
        :mod:`spatialdtp.model.substrate_coefficients`)."""
        return substrate.coefficients(state, c_lin, blood)

    # observables ------------------------------------------------------------------
    def observable_sums(self, observer, state, labels, T0, n_labels: int):
        """The float64 sums the observables are made of, as one host array."""
        return observer.sums_reference(state, labels, T0, n_labels)
