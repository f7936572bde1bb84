"""The hot loops as whole-array expressions: the reference every compiled kernel matches.

Each method is the readable definition, written in the model's own modules; this class
only gathers them behind the interface that :class:`.compiled_ops.CompiledOps` also has.
With ``xp = numpy`` it is the ``numpy`` backend; with ``xp = cupy`` it is the
straightforward array-expression GPU implementation the benchmarks compare the fused
kernels with.
"""
from __future__ import annotations

from .. import diffusion, observables, reactions, transport


class ReferenceOps:
    compiled = False

    def __init__(self, xp):
        self.xp = xp

    # cells ------------------------------------------------------------------------
    def react_cells(self, state, kinetics, treatment_cfg, tau: float) -> None:
        """Pointwise cell kinetics over τ minutes, substrates frozen (in place)."""
        reactions.react_state(state, kinetics, treatment_cfg, tau)

    def move_cells(self, state, motilities, chi: float, tau: float) -> None:
        """Motility of every cell type and TAM chemotaxis over τ minutes (in place)."""
        transport.move_state(state, motilities, chi, tau)

    # substrates -------------------------------------------------------------------
    def coefficients(self, substrate, state, c_lin, blood: float):
        """``(D, a, b)`` of one substrate's implicit step (see :mod:`spatialdtp.substrates`)."""
        return substrate.coefficients(state, c_lin, blood)

    # multigrid --------------------------------------------------------------------
    def stencil(self, level, x, out, rhs=None, mass=None):
        """``out = (mass + K) x``, or ``rhs − (mass + K) x`` when rhs is given."""
        return diffusion.apply_stencil(self.xp, level, x, out, rhs, mass)

    def jacobi(self, level, b, x, omega_over_diag) -> None:
        """One damped-Jacobi sweep ``x ← x + ω D⁻¹ (b − A x)`` (in place)."""
        diffusion.jacobi_sweep(self.xp, level, b, x, omega_over_diag)

    def restrict(self, level, fine, coarse):
        """``coarse`` = the sum of the children of each coarse cell (multigrid restriction)."""
        return diffusion.restrict_children(self.xp, level, fine, coarse)

    def prolong(self, level, coarse, fine):
        """``fine`` += the value of its parent cell in ``coarse`` (multigrid prolongation)."""
        return diffusion.prolong_add(self.xp, level, coarse, fine)

    # observables ------------------------------------------------------------------
    def observable_sums(self, observer, state, near, tumour_floor):
        """The float64 sums the observables are made of, as one host array."""
        return observer.sums_reference(state, near, tumour_floor)
