"""Substrate fields: what diffuses, decays, leaks from vessels, is taken up and secreted.

For each substrate c the simulator solves, implicitly over a step with the cells frozen,

    ∂c/∂t = ∇·(D(x)∇c) − a(x) c + b(x)

    D(x) = D / (1 + h F(x)/capacity)                        desmoplastic hindrance by CAFs
    a(x) = λ + v(x) p + φ Σ_j u_j n_j · K/(K + c*)           decay, vessel exchange, uptake
    b(x) = v(x) p c_blood(t) + φ Σ_j s_j n_j                vessel supply, secretion

with φ = V_cell/V_voxel (per-cell rates act on the cell's own volume, as in PhysiCell).
Uptake with ``uptake_km = K`` is Michaelis–Menten with V_max = u·K, linearised around
c* (the start-of-step value, or a midpoint estimate on Picard passes); with K null it is
linear, u·c. The vessel term v p (c_blood − c) is split as −(v p) c + v p c_blood.
"""
from __future__ import annotations

from ..config import SubstrateConfig, boundary_of
from .boundary import Boundary
from .grid import Grid
from .state import CELL_TYPES


class Substrate:
    def __init__(self, name: str, cfg: SubstrateConfig, grid: Grid, capacity: float,
                 cell_volume: float, vessels, xp, is_drug: bool = False):
        self.name, self.cfg, self.grid, self.xp = name, cfg, grid, xp
        self.is_drug = is_drug
        self.capacity = capacity
        self.phi = cell_volume / grid.voxel_volume
        self.vessels = vessels
        self.exchange = cfg.permeability * vessels if cfg.permeability > 0 else 0.0
        self.kinds = tuple((boundary_of(cfg, ax + "-"), boundary_of(cfg, ax + "+"))
                           for ax in grid.axes)

    def boundary(self, blood: float) -> Boundary:
        value = self.cfg.boundary_value if self.cfg.boundary_value is not None else blood
        return Boundary(self.kinds, float(value))

    def diffusivity(self, cells: dict):
        if self.cfg.hindrance > 0:
            return self.cfg.diffusion / (1.0 + self.cfg.hindrance * cells["F"] / self.capacity)
        return self.cfg.diffusion

    def sink_and_source(self, c_lin, cells: dict, blood: float):
        """a(x) (1/min) and b(x) (units/min); ``c_lin`` is where uptake is linearised."""
        cfg = self.cfg
        uptake = sum(rate * cells[j] for j, rate in cfg.uptake.items() if rate > 0)
        a = cfg.decay + self.exchange
        if not isinstance(uptake, int):  # some cell type takes this substrate up
            if cfg.uptake_km is not None:
                uptake = uptake * (cfg.uptake_km / (cfg.uptake_km + self.xp.maximum(c_lin, 0.0)))
            a = a + self.phi * uptake
        b = self.exchange * blood if cfg.permeability > 0 else 0.0
        secretion = sum(rate * cells[j] for j, rate in cfg.secretion.items() if rate > 0)
        if not isinstance(secretion, int):
            b = b + self.phi * secretion
        return a, b

    def coefficients(self, state, c_lin, blood: float):
        """``(D, a, b)`` of this substrate's implicit step with the cells of ``state``.

        The reference of ``kernels/substrate_coefficients.cu``.
        """
        cells = {n: state[n] for n in CELL_TYPES}
        a, b = self.sink_and_source(c_lin, cells, blood)
        return self.diffusivity(cells), a, b
