"""Substrate fields: what diffuses, decays, leaks from vessels, is taken up and secreted.

For each substrate c the simulator solves, implicitly over a step with the cells frozen,

    ∂c/∂t = ∇·(D(x)∇c) − a(x) c + b(x)

    D(x) = (D/R) / (1 + h F(x)/capacity)                    desmoplastic hindrance by CAFs
    a(x) = [λ + κ λ_b + v(x) p + φ Σ_j u_j n_j · K/(K + c*)] / R
                                                 decay (free, bound), vessel exchange, uptake
    b(x) = [v(x) p c_blood(t) + φ Σ_j s_j n_j] / R          vessel supply, secretion

with φ = V_cell/V_voxel (per-cell rates act on the cell's own volume, as in PhysiCell).
Uptake with ``uptake_km = K`` is Michaelis–Menten with V_max = u·K, linearised around
c* (the start-of-step value, or a midpoint estimate on Picard passes); with K null it is
linear, u·c. The vessel term v p (c_blood − c) is split as −(v p) c + v p c_blood.

**Binding to immobile sites** (``binding``: sites B_T, dissociation constant K_D, loss
λ_b of the bound form; HGF on heparan sulfate). Free c and bound b obey

    ∂c/∂t = ∇·(D∇c) − λ c − k_on (B_T − b) c + k_off b + (uptake, exchange, secretion)
    ∂b/∂t =                k_on (B_T − b) c − k_off b − λ_b b

When binding is fast against the step and linear (c ≪ K_D = k_off/k_on, so b ≪ B_T),
b = κ c with κ = B_T/K_D at every moment. Adding the two equations gives one for c alone,

    (1 + κ) ∂c/∂t = ∇·(D∇c) − (λ + κ λ_b) c + (uptake, exchange, secretion),

which is the equation above with the retardation R = 1 + κ: binding slows diffusion and
every source and sink by R, and adds the loss of the bound form. Its steady range is
ℓ = √(D/(λ + κ λ_b)): binding alone (λ_b = 0) leaves ℓ = √(D/λ) (it only slows the
approach), only the loss of bound HGF shortens it. The field holds the free level c; the
total (free + bound) is R c. Without ``binding`` R = 1 and κ = 0.

**Maps from files** (``maps``, :meth:`Substrate.with_maps`): a diffusivity map D_map(x)
replaces D in D(x) (hindrance and R still act); an uptake map u_map(x) (1/min) adds
u_map/R to a(x), linear whatever ``uptake_km``; a secretion map s_map(x) (units/min) adds
s_map/R to b(x). A fixed-value map (NaN where the field is free) holds its voxels at their
values: a penalty rate P added to a(x) and P·value to b(x) (:meth:`Substrate._hold`).
"""
from __future__ import annotations

import numpy

from ..config import SubstrateConfig, boundary_of
from .boundary import Boundary
from .grid import Grid
from .state import CELL_TYPES


class Substrate:
    def __init__(self, name: str, cfg: SubstrateConfig, grid: Grid, capacity: float,
                 cell_volume: float, vessels, xp, is_drug: bool = False, maps=None):
        self.name, self.cfg, self.grid, self.xp = name, cfg, grid, xp
        self.is_drug = is_drug
        self.capacity = capacity
        b = cfg.binding
        self.kappa = b.sites / b.kd if b is not None else 0.0    # bound / free
        self.retardation = 1.0 + self.kappa                      # R = 1 + κ
        # the constants of the free-level equation, divided by R (exact when R = 1)
        self.diffusion = cfg.diffusion / self.retardation
        self.decay = (cfg.decay + (self.kappa * b.bound_decay if b is not None else 0.0)) \
            / self.retardation
        self.permeability = cfg.permeability / self.retardation
        self.phi = cell_volume / grid.voxel_volume / self.retardation
        self.vessels = vessels
        self.exchange = self.permeability * vessels if cfg.permeability > 0 else 0.0
        self.kinds = tuple((boundary_of(cfg, ax + "-"), boundary_of(cfg, ax + "+"))
                           for ax in grid.axes)
        # coefficient maps (device arrays), already divided by R
        maps = dict(maps or {})
        fixed = maps.pop("fixed", None)
        self.maps = {kind: m / self.retardation for kind, m in maps.items()}
        #: ``(mask, values)`` of the fixed-value voxels, or None: the step puts the values
        #: back exactly after each solve (the penalty alone leaves them within the solver's
        #: tolerance, and Crank–Nicolson's explicit half would carry that error on)
        self.fixed_voxels = None
        if fixed is not None:
            self.maps["hold"] = self._hold(fixed)
            self.fixed_voxels = (~xp.isnan(fixed), xp.where(xp.isnan(fixed), 0.0, fixed)
                                 .astype(fixed.dtype))

    def _hold(self, fixed):
        """The fixed-value voxels as a penalty ``(P·[held], P·value·[held])`` added to a(x)
        and b(x): in a held voxel the implicit step gives

            x_i − v = [c_i − v + θΔt (b_i − a_i v) + Σ_j T_ij (x_j − v)] / (1 + θΔt (a_i + P) + Σ_j T_ij),

        so a rate P = S/u, S bounding every other rate of the voxel (faces 2d·D/dx², decay,
        vessel exchange, uptake by cells at capacity and from a map) and u the unit
        round-off, makes the exact solution of the step's system v to about u·|x_j − v| at
        any Δt (the start c_i is v: the simulation sets it, the step restores it), so the
        free voxels next to it see the value v. The solvers' stopping test
        scales each residual by its own diagonal, so the large rows do not hide the free
        voxels' residuals. Multigrid's coarse levels leave the held voxels out (the step
        hands it :attr:`fixed_voxels`' mask; see
        :mod:`spatialdtp.numerics.implicit.batched_multigrid`): summed into a coarse mass,
        P would make every coarse cell with a held child nearly fixed too."""
        xp = self.xp
        held = ~xp.isnan(fixed)
        D = float(self.maps["diffusion"].max()) if "diffusion" in self.maps else self.diffusion
        rates = (2 * self.grid.ndim * D / self.grid.dx ** 2 + self.decay + self.permeability
                 + self.phi * self.capacity * sum(r for r in self.cfg.uptake.values() if r > 0)
                 + (float(self.maps["uptake"].max()) if "uptake" in self.maps else 0.0))
        P = max(rates, 1.0) / (float(numpy.finfo(fixed.dtype).eps) / 2)
        return xp.where(held, P, 0.0).astype(fixed.dtype), \
            xp.where(held, P * xp.nan_to_num(fixed), 0.0).astype(fixed.dtype)

    def boundary(self, blood: float) -> Boundary:
        value = self.cfg.boundary_value if self.cfg.boundary_value is not None else blood
        return Boundary(self.kinds, float(value))

    @property
    def range(self) -> float:
        """Steady diffusion length √(D/(λ + κ λ_b)) in cell-free tissue (µm; inf without
        decay)."""
        return (self.diffusion / self.decay) ** 0.5 if self.decay > 0 else float("inf")

    def varying(self) -> tuple[bool, bool, bool]:
        """Which of D, a, b vary in space (with the cells and vessels): D with CAF
        hindrance, a with uptake or vessel exchange, b with secretion or vessel exchange.
        The others are the numbers of :meth:`uniform`."""
        cfg = self.cfg
        return (cfg.hindrance > 0 and cfg.diffusion != 0,
                any(r > 0 for r in cfg.uptake.values()) or cfg.permeability > 0,
                any(r > 0 for r in cfg.secretion.values()) or cfg.permeability > 0)

    def uniform(self) -> tuple[float, float, float]:
        """D, a, b where they do not vary (:meth:`varying`): the free level's D0/R and
        (λ + κ λ_b)/R, and no source."""
        return float(self.diffusion), float(self.decay), 0.0

    def diffusivity(self, cells: dict):
        if self.cfg.hindrance > 0:
            return self.diffusion / (1.0 + self.cfg.hindrance * cells["F"] / self.capacity)
        return self.diffusion

    def sink_and_source(self, c_lin, cells: dict, blood: float):
        """a(x) (1/min) and b(x) (units/min); ``c_lin`` is where uptake is linearised."""
        cfg = self.cfg
        uptake = sum(rate * cells[j] for j, rate in cfg.uptake.items() if rate > 0)
        a = self.decay + self.exchange
        if not isinstance(uptake, int):  # some cell type takes this substrate up
            if cfg.uptake_km is not None:
                uptake = uptake * (cfg.uptake_km / (cfg.uptake_km + self.xp.maximum(c_lin, 0.0)))
            a = a + self.phi * uptake
        b = self.exchange * blood if cfg.permeability > 0 else 0.0
        secretion = sum(rate * cells[j] for j, rate in cfg.secretion.items() if rate > 0)
        if not isinstance(secretion, int):
            b = b + self.phi * secretion
        return a, b

    def with_maps(self, D, a, b, state):
        """``(D, a, b)`` with this substrate's coefficient maps applied (new arrays; the
        inputs, which a backend may reuse, are not written)."""
        m = self.maps
        if "diffusion" in m:
            D = m["diffusion"]
            if self.cfg.hindrance > 0:
                D = D / (1.0 + self.cfg.hindrance * state["F"] / self.capacity)
        if "uptake" in m:
            a = a + m["uptake"]
        if "secretion" in m:
            b = b + m["secretion"]
        if "hold" in m:
            a, b = a + m["hold"][0], b + m["hold"][1]
        return D, a, b

    def coefficients(self, state, c_lin, blood: float):
        """``(D, a, b)`` of this substrate's implicit step with the cells of ``state``.

        The reference of ``kernels/substrate_coefficients.cu``.
        """
        cells = {n: state[n] for n in CELL_TYPES}
        a, b = self.sink_and_source(c_lin, cells, blood)
        return self.diffusivity(cells), a, b
