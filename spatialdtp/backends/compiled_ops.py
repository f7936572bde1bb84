"""The hot loops as compiled kernels: the same interface as :class:`.reference.ReferenceOps`.

One :class:`CompiledOps` serves the ``cpu`` backend (kernels compiled for the host, NumPy
arrays) and the ``cupy`` backend (the same kernels on the GPU, CuPy arrays): it packs the
model's parameters into the flat arrays the kernels read and launches them through a
:class:`~.kernels.KernelLibrary`. Each concept's packing lives beside its kernel's
launcher in the module named after it.
"""
from __future__ import annotations

from . import (
    compiled_cells,
    compiled_multigrid,
    compiled_observables,
    compiled_transport,
)


class CompiledOps:
    compiled = True

    def __init__(self, library, xp, counters=None):
        from ..numerics.counters import Counters

        self.lib = library
        self.xp = xp
        self.dtype = library.dtype
        self._cache = {}         # packed parameters, keyed by the objects they describe
        self.counters = counters if counters is not None else Counters()
        library.counters = self.counters          # every launch is counted there

    def read(self, a, site: str):
        """``a`` on the host: one device→host read, counted as a sync at ``site``."""
        import numpy as np

        self.counters.sync(site)
        return np.asarray(a.get() if hasattr(a, "get") else a)

    def batched_ops(self, dtype):
        """The batched multigrid kernels (``kernels/batched_multigrid.cu``)."""
        return compiled_multigrid.BatchedKernels(self)

    def cached(self, key, build):
        """``build()`` once per ``key`` (parameters do not change during a run)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def react_cells(self, state, kinetics, treatment_cfg, tau: float) -> None:
        compiled_cells.react_cells(self, state, kinetics, treatment_cfg, tau)

    def move_cells(self, state, motilities, chi: float, tau: float, capacity: float,
                   pressure: float = 0.0) -> None:
        # one sync via ops.read: the largest chemotactic drift speed
        compiled_transport.move_cells(self, state, motilities, chi, tau, capacity, pressure)

    def coefficients(self, substrate, state, c_lin, blood: float, out=None):
        return compiled_cells.coefficients(self, substrate, state, c_lin, blood, out)

    def coefficients_batch(self, substrates, state, c_lin, levels, blocks, active):
        return compiled_cells.coefficients_batch(self, substrates, state, c_lin, levels,
                                                 blocks, active)

    def stencil(self, level, x, out, rhs=None, mass=None):
        return compiled_multigrid.stencil(self, level, x, out, rhs, mass)

    def jacobi(self, level, b, x, omega_over_diag) -> None:
        compiled_multigrid.jacobi(self, level, b, x, omega_over_diag)

    def restrict(self, level, fine, coarse):
        return compiled_multigrid.restrict(self, level, fine, coarse)

    def prolong(self, level, coarse, fine):
        return compiled_multigrid.prolong(self, level, coarse, fine)

    def min_plus_pass(self, d2, axis: int, top: int):
        return compiled_observables.min_plus_pass(self, d2, axis, top)

    def niche_mask(self, F, M, threshold: float):
        return compiled_observables.niche_mask(self, F, M, threshold)

    def label_voxels(self, niche, k, code, n_strata: int, near_cut: float, far_cut: float):
        return compiled_observables.label_voxels(self, niche, k, code, n_strata, near_cut,
                                                 far_cut)

    def observable_sums(self, observer, state, labels, T0, n_labels: int):
        """One host read (the sums), counted here: the launcher returns them on the host."""
        self.counters.sync("observable sums")
        return compiled_observables.observable_sums(self, observer, state, labels, T0,
                                                    n_labels)
