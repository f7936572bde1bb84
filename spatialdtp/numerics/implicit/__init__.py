"""The implicit substrate solve: one θ-scheme step of ∂c/∂t = ∇·(D∇c) − a c + b per
substrate, solved by multigrid-preconditioned CG.

:mod:`.solver` (the step and CG) · :mod:`.multigrid` (hierarchy, V-cycle) ·
:mod:`.stencil` (one level's operators: the NumPy twin of ``kernels/stencil.cu``).
"""
from ...model.boundary import Boundary
from .solver import ImplicitSolver, SolveInfo
from .stencil import apply_stencil, jacobi_sweep, prolong_add, restrict_children

__all__ = ["Boundary", "ImplicitSolver", "SolveInfo", "apply_stencil", "jacobi_sweep",
           "prolong_add", "restrict_children"]
