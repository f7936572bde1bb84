"""The schema of the cell model: the rates of S, P, R, F and M (1/min), the S ⇄ P ⇄ R
switching and the oxygen/glucose gates. The equations are in :mod:`spatialdtp.model.cells`;
every default's source is in ``docs/parameters.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .checks import choice, fail, fraction, nonneg, nonneg_numbers, positive

#: the cell fields: sensitive, persister and resistant tumour cells, CAFs, TAMs
CELL_TYPES = ("S", "P", "R", "F", "M")
KILL_MODELS = ("constant", "norton_simon")


@dataclass
class TumourCellConfig:
    growth: float = 7.2e-4             # 1/min at full oxygen/glucose and free space
    death: float = 5.32e-5             # 1/min turnover (apoptosis)
    kill: float = 2.0e-3               # 1/min maximal kill by the targeted drug (E = 1)
    motility: float = 0.005            # µm²/min random motility (into free space only)


@dataclass
class ResistantCellConfig:
    fitness_cost: float = 0.3          # r_R = r_S (1 - fitness_cost)
    death: float = 5.32e-5
    kill: float = 0.0
    motility: float = 0.005


@dataclass
class FibroblastConfig:
    # dF/dt = growth·max(0, 1 − F/K_F)·F − death·F with K_F = carrying_density·capacity:
    # turnover balanced at F* = K_F (1 − death/growth). The defaults (0, 0) are quiescent
    # activated fibroblasts: F stays where the tissue put it.
    growth: float = 0.0                # 1/min division rate of a sparse CAF population
    death: float = 0.0                 # 1/min
    carrying_density: float = 0.5      # fraction of capacity: K_F
    motility: float = 0.0              # CAFs are stromal and largely static


@dataclass
class MacrophageConfig:
    death: float = 2.3e-4              # 1/min (≈3-day lifespan)
    # monocyte influx at a vessel voxel (cells/voxel/min, times free space): a baseline
    # (CSF-1/CCL2 of the tumour and stroma, lumped) plus the persister-chemokine part
    baseline_recruitment: float = 5.0e-5
    recruitment: float = 1.0e-3        # cells/voxel/min from a vessel voxel at full chemokine
    chemokine_k: float = 1.0           # nM, half-maximal recruitment
    chemotaxis: float = 50.0           # µm²/min/nM, drift = chi ∇chemokine
    motility: float = 2.0


@dataclass
class SwitchingConfig:
    alpha0: float = 2.0e-7             # 1/min spontaneous S→P (pre-existing persisters)
    alpha_drug: float = 2.0e-6         # 1/min drug-induced S→P at E = 1
    beta_hgf: float = 1.0              # fold boost of drug-induced entry by MET signal
    beta_hypoxia: float = 1.0          # fold boost of drug-induced entry by hypoxia
    rho0: float = 7.0e-5               # 1/min P→S reversion without drug
    mu: float = 5.0e-6                 # 1/min P→R under drug at E = 1
    theta: float = 0.8                 # fraction of the drug kill of P removed by full MET signal
    theta_sensitive: float = 0.5       # the same for the drug kill of S
    hgf_k: float = 1.43                # ng/mL free HGF of half-maximal MET signal (MET K_D)


@dataclass
class EnvironmentResponseConfig:
    o2_proliferation_threshold: float = 5.0     # mmHg, growth stops below
    o2_proliferation_saturation: float = 160.0  # mmHg, growth at its full rate above
    o2_hypoxic: float = 15.0                    # mmHg, hypoxia signal starts below
    o2_hypoxic_full: float = 4.0                # mmHg, hypoxia signal saturates below
    o2_necrosis_onset: float = 5.0              # mmHg
    o2_necrosis_max: float = 2.5                # mmHg
    necrosis_rate: float = 1.0 / 360.0          # 1/min maximal hypoxic death
    glucose_k: float = 0.5                      # mM, half-maximal glucose growth permission
    glucose_starvation: float = 0.05            # mM, starvation death below
    starvation_rate: float = 1.0 / 360.0        # 1/min maximal starvation death


@dataclass
class CellsConfig:
    cell_volume: float = 2494.0        # µm³
    capacity: Optional[float] = None   # cells/voxel; null: voxel volume / cell volume
    kill_model: str = "constant"       # constant | norton_simon
    # Contact inhibition: growth (and TAM influx) scale with free = 1 − N/capacity. False:
    # free = 1 (unlimited exponential growth, the linear model of in-vitro fits).
    crowding: bool = True
    # µm²/min D_p: tumour cells (S, P, R together) are pushed down the gradient of their own
    # crowding, u = −D_p ∇(T/K), T = S + P + R (proliferation pressure, a porous medium)
    pressure_mobility: float = 0.45
    sensitive: TumourCellConfig = field(default_factory=TumourCellConfig)
    persister: TumourCellConfig = field(default_factory=lambda: TumourCellConfig(
        growth=3.6e-5, death=1.0e-5, kill=5.5e-5, motility=0.005))
    resistant: ResistantCellConfig = field(default_factory=ResistantCellConfig)
    fibroblast: FibroblastConfig = field(default_factory=FibroblastConfig)
    macrophage: MacrophageConfig = field(default_factory=MacrophageConfig)
    switching: SwitchingConfig = field(default_factory=SwitchingConfig)
    environment: EnvironmentResponseConfig = field(default_factory=EnvironmentResponseConfig)


def validate_cells(c: CellsConfig) -> None:
    positive("cells.cell_volume", c.cell_volume)
    nonneg("cells.pressure_mobility", c.pressure_mobility)
    if c.capacity is not None:
        positive("cells.capacity", c.capacity)
    choice("cells.kill_model", c.kill_model, KILL_MODELS)
    if not isinstance(c.crowding, bool):
        fail("cells.crowding", c.crowding, "must be true or false")
    for sub in ("sensitive", "persister", "resistant", "fibroblast", "macrophage",
                "switching", "environment"):
        nonneg_numbers(f"cells.{sub}", getattr(c, sub))
    fraction("cells.resistant.fitness_cost", c.resistant.fitness_cost)
    fraction("cells.switching.theta", c.switching.theta)
    fraction("cells.switching.theta_sensitive", c.switching.theta_sensitive)
    fraction("cells.fibroblast.carrying_density", c.fibroblast.carrying_density)
    positive("cells.fibroblast.carrying_density", c.fibroblast.carrying_density)
    positive("cells.switching.hgf_k", c.switching.hgf_k)
    positive("cells.macrophage.chemokine_k", c.macrophage.chemokine_k)
    e = c.environment
    if e.o2_proliferation_saturation <= e.o2_proliferation_threshold:
        fail("cells.environment.o2_proliferation_saturation", e.o2_proliferation_saturation,
             f"must exceed cells.environment.o2_proliferation_threshold "
             f"({e.o2_proliferation_threshold})")
    if e.o2_hypoxic <= e.o2_hypoxic_full:
        fail("cells.environment.o2_hypoxic", e.o2_hypoxic,
             f"must exceed cells.environment.o2_hypoxic_full ({e.o2_hypoxic_full})")
    if e.o2_necrosis_onset <= e.o2_necrosis_max:
        fail("cells.environment.o2_necrosis_onset", e.o2_necrosis_onset,
             f"must exceed cells.environment.o2_necrosis_max ({e.o2_necrosis_max})")
