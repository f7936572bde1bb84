"""The configuration schema: plain dataclasses, checked before anything is allocated.

Hydra stores these classes in its ConfigStore (see :mod:`spatialdtp.cli`) so that a typo
or a wrong type on the command line is refused by name; the YAML files in ``conf/`` only
select and override values. The model never sees OmegaConf: the CLI turns the composed
config into these dataclasses and calls :func:`validate`.

Units: µm, minutes, mmHg (oxygen), mM (glucose), ng/mL (HGF), nM (chemokine), µM (drugs),
cells per voxel. Every default's source is in ``docs/parameters.md``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional

from .state import CELL_TYPES

BOUNDARY_KINDS = ("no_flux", "fixed", "periodic")
DRUG_CLASSES = ("targeted", "epigenetic", "oxphos", "gpx4", "fao", "met")
PK_MODELS = ("constant", "bolus", "oral", "infusion")
SCHEDULE_KINDS = ("continuous", "intermittent", "adaptive", "doses")
KILL_MODELS = ("constant", "norton_simon")
COMBINATION_RULES = ("bliss", "hsa")
PRECISIONS = ("float32", "float64")
BACKENDS = ("auto", "numpy", "cpu", "cupy")
SCHEMES = ("backward_euler", "tr_bdf2", "crank_nicolson")
BASE_SUBSTRATES = ("oxygen", "glucose", "hgf", "chemokine")


class ConfigError(ValueError):
    """A configuration value is not allowed. The message names key, value and what is allowed."""


# --------------------------------------------------------------------------- substrates
@dataclass
class SubstrateConfig:
    units: str = "a.u."
    diffusion: float = 1000.0          # µm²/min
    decay: float = 0.0                 # 1/min
    blood: float = 0.0                 # level in blood (drugs: set by pharmacokinetics)
    permeability: float = 0.0          # 1/min, exchange rate through a vessel voxel
    initial: float = 0.0               # initial value everywhere (tissue files may override)
    # Uptake by each cell type: first-order rate per cell (1/min, PhysiCell's convention,
    # scaled by cell volume / voxel volume). With uptake_km set, uptake saturates:
    # rate = u·K·c/(K + c) (Michaelis–Menten with Vmax = u·K); with null it stays linear u·c.
    uptake: Dict[str, float] = field(default_factory=dict)
    uptake_km: Optional[float] = None
    # Secretion by each cell type: units/min raised in the cell's own volume (PhysiCell's
    # convention), scaled by cell volume / voxel volume.
    secretion: Dict[str, float] = field(default_factory=dict)
    # Desmoplastic hindrance: D(x) = D / (1 + hindrance · F(x)/capacity).
    hindrance: float = 0.0
    # Boundary per face: keys "default" or a face such as "x-", "x+", "y-", "z+".
    boundary: Dict[str, str] = field(default_factory=lambda: {"default": "no_flux"})
    boundary_value: Optional[float] = None  # for "fixed" faces; null means the blood level


def _oxygen():
    return SubstrateConfig(units="mmHg", diffusion=1.0e5, decay=0.1, blood=38.0,
                           permeability=1000.0, initial=38.0,
                           uptake={"S": 10.0, "P": 10.0, "R": 10.0, "F": 10.0, "M": 10.0})


def _glucose():
    return SubstrateConfig(units="mM", diffusion=2340.0, decay=0.0, blood=5.0,
                           permeability=1.0, initial=5.0,
                           uptake={"S": 1.3, "P": 0.65, "R": 1.3, "F": 0.65, "M": 0.65},
                           uptake_km=2.0)


def _hgf():
    return SubstrateConfig(units="ng/mL", diffusion=600.0, decay=0.027, blood=0.0,
                           permeability=0.0, initial=0.0,
                           uptake={"S": 0.005, "P": 0.005, "R": 0.005},
                           secretion={"F": 1.4, "M": 0.7}, hindrance=1.0)


def _chemokine():
    return SubstrateConfig(units="nM", diffusion=1000.0, decay=0.016, blood=0.0,
                           permeability=0.0, initial=0.0, secretion={"P": 0.1})


def _default_substrates():
    return {"oxygen": _oxygen(), "glucose": _glucose(), "hgf": _hgf(),
            "chemokine": _chemokine()}


# --------------------------------------------------------------------------- cells
@dataclass
class TumourCellConfig:
    growth: float = 7.2e-4             # 1/min at full oxygen/glucose and free space
    death: float = 5.32e-5             # 1/min turnover (apoptosis)
    kill: float = 2.0e-3               # 1/min maximal kill by the targeted drug (E = 1)
    motility: float = 0.5              # µm²/min random motility


@dataclass
class ResistantCellConfig:
    fitness_cost: float = 0.3          # r_R = r_S (1 - fitness_cost)
    death: float = 5.32e-5
    kill: float = 0.0
    motility: float = 0.5


@dataclass
class FibroblastConfig:
    growth: float = 1.0e-4
    death: float = 1.0e-4
    motility: float = 0.0              # CAFs are stromal and largely static


@dataclass
class MacrophageConfig:
    death: float = 2.3e-4              # 1/min (≈3-day lifespan)
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
    theta: float = 0.8                 # fraction of P kill removed by full MET signal
    hgf_k: float = 20.0                # ng/mL half-maximal MET activation


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
    sensitive: TumourCellConfig = field(default_factory=TumourCellConfig)
    persister: TumourCellConfig = field(default_factory=lambda: TumourCellConfig(
        growth=3.6e-5, death=5.32e-5, kill=1.0e-5, motility=0.5))
    resistant: ResistantCellConfig = field(default_factory=ResistantCellConfig)
    fibroblast: FibroblastConfig = field(default_factory=FibroblastConfig)
    macrophage: MacrophageConfig = field(default_factory=MacrophageConfig)
    switching: SwitchingConfig = field(default_factory=SwitchingConfig)
    environment: EnvironmentResponseConfig = field(default_factory=EnvironmentResponseConfig)


# --------------------------------------------------------------------------- treatment
@dataclass
class PKConfig:
    model: str = "constant"            # constant | bolus | oral | infusion
    elimination: float = 3.2e-4        # 1/min first-order plasma elimination (erlotinib t½≈36 h)
    absorption: float = 1.7e-2         # 1/min first-order absorption (oral)


@dataclass
class ScheduleConfig:
    kind: str = "continuous"           # continuous | intermittent | adaptive | doses
    start_day: float = 0.0
    stop_day: Optional[float] = None   # null: until the end of the run
    dose: float = 2.0                  # constant: plasma µM; bolus/oral: µM per dose; infusion: µM/min
    interval_hours: float = 24.0       # time between doses (bolus, oral)
    on_days: float = 7.0               # intermittent
    off_days: float = 7.0              # intermittent
    stop_fraction: float = 0.5         # adaptive: stop below this fraction of baseline burden
    resume_fraction: float = 1.0       # adaptive: resume at this fraction of baseline burden
    check_interval_days: float = 1.0   # adaptive: how often the rule is checked
    doses: List[Any] = field(default_factory=list)  # doses: [[day, amount], ...]
    dose_duration_hours: float = 24.0  # doses with constant/infusion PK: how long each lasts


@dataclass
class DrugConfig:
    drug_class: str = "targeted"       # targeted | epigenetic | oxphos | gpx4 | fao | met
    ec50: float = 0.1                  # µM
    hill: float = 1.0
    emax: float = 1.0
    kill_rate: float = 0.0             # 1/min on P at E = 1 (oxphos, gpx4, fao)
    pk: PKConfig = field(default_factory=PKConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    transport: SubstrateConfig = field(default_factory=lambda: SubstrateConfig(
        units="µM", diffusion=6000.0, decay=0.0, permeability=0.1,
        uptake={"S": 0.01, "P": 0.01, "R": 0.01}, hindrance=1.0))


@dataclass
class TreatmentConfig:
    name: str = "continuous"
    combination: str = "bliss"         # bliss | hsa (highest single agent) within a class
    # Empty here: the treatment presets in conf/treatment name the drugs (a preset with
    # none is the untreated control). A drug is also a substrate of the same name.
    drugs: Dict[str, DrugConfig] = field(default_factory=dict)


# --------------------------------------------------------------------------- tissue
@dataclass
class VesselConfig:
    kind: str = "network"              # network | points | none
    spacing: float = 200.0             # µm, mean distance between vessels
    radius: float = 10.0               # µm
    margin: float = 0.0                # µm kept free of vessels around the tumour centre


@dataclass
class TumourConfig:
    center: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])  # fraction of extent
    radius: float = 400.0              # µm
    density: float = 0.6               # fraction of capacity
    persister_fraction: float = 0.003  # pre-existing DTPs among tumour cells
    resistant_fraction: float = 1.0e-4


@dataclass
class StromaConfig:
    kind: str = "clusters"             # clusters | bands | none
    caf_density: float = 0.5           # fraction of capacity inside a CAF patch
    n_clusters: int = 6
    cluster_radius: float = 120.0      # µm
    band_width: float = 100.0          # µm
    band_spacing: float = 400.0        # µm


@dataclass
class MacrophageSeedConfig:
    density: float = 0.05              # fraction of capacity, near vessels/CAFs
    near: str = "stroma"               # stroma | vessels | uniform


@dataclass
class LabelImageConfig:
    path: Optional[str] = None         # .npy or .tif label image with the grid's shape
    # label value -> one of vessel | tumour | caf | tam | background
    mapping: Dict[str, str] = field(default_factory=dict)


@dataclass
class TissueConfig:
    name: str = "default"
    vessels: VesselConfig = field(default_factory=VesselConfig)
    tumour: TumourConfig = field(default_factory=TumourConfig)
    stroma: StromaConfig = field(default_factory=StromaConfig)
    macrophages: MacrophageSeedConfig = field(default_factory=MacrophageSeedConfig)
    labels: LabelImageConfig = field(default_factory=LabelImageConfig)
    # field name (a substrate, S/P/R/F/M, or "vessels") -> .npy/.tif array of initial values
    files: Dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- numerics
@dataclass
class NumericsConfig:
    # Substrate time stepping: backward_euler (1st order, L-stable, positivity preserving,
    # exact steady states), tr_bdf2 (2nd order, L-stable; two solves a step) or
    # crank_nicolson (2nd order, not L-stable: stiff transients ring; for smooth problems).
    scheme: str = "backward_euler"
    rtol: float = 1.0e-6               # relative residual of the implicit substrate solve
    max_iterations: int = 200
    # Michaelis–Menten uptake is linearised at the start of the step; each extra pass
    # re-linearises at the step's midpoint value (1 pass keeps tr_bdf2 second order).
    picard_iterations: int = 0


@dataclass
class GridConfig:
    shape: List[int] = field(default_factory=lambda: [128, 128])
    dx: float = 20.0                   # µm


@dataclass
class BackendConfig:
    name: str = "auto"                 # auto | numpy | cpu | cupy
    precision: str = "float32"         # float32 | float64


@dataclass
class RunConfig:
    days: float = 21.0                 # simulated time
    dt: float = 10.0                   # minutes per step
    output_interval_hours: float = 12.0  # how often field frames are written
    checkpoint_interval_hours: float = 24.0
    progression_factor: float = 1.2    # progression: burden > factor × baseline
    niche_distance: float = 50.0       # µm, "near a niche" for the niche index
    niche_threshold: float = 0.1       # F + M (cells/voxel) that makes a voxel a niche
    hypoxic_threshold: float = 15.0    # mmHg, for the hypoxic fraction
    mrd_threshold: float = 1.0e-3      # minimal residual disease: burden / baseline below this
    output: str = "run.h5"             # run file name, inside the Hydra run directory
    progress: bool = True
    plot: bool = True


@dataclass
class ViewerConfig:
    mode: str = "none"                 # none | live (napari follows the run as it goes)


@dataclass
class ObjectiveConfig:
    """What a sweep's run returns to Hydra (the Optuna sweeper maximises or minimises it)."""
    metric: str = "time_to_progression_days"   # a key of the end-of-run summary
    censored_value: str = "run_days"           # value when the metric is NaN (never progressed)
    dose_cap: Optional[float] = None           # cap on cumulative plasma exposure, µM·day
    penalty: float = 0.0                       # value returned when the cap is exceeded


@dataclass
class SpatialDTPConfig:
    seed: int = 0
    grid: GridConfig = field(default_factory=GridConfig)
    run: RunConfig = field(default_factory=RunConfig)
    numerics: NumericsConfig = field(default_factory=NumericsConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    substrates: Dict[str, SubstrateConfig] = field(default_factory=_default_substrates)
    cells: CellsConfig = field(default_factory=CellsConfig)
    treatment: TreatmentConfig = field(default_factory=TreatmentConfig)
    tissue: TissueConfig = field(default_factory=TissueConfig)
    viewer: ViewerConfig = field(default_factory=ViewerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    resume: Optional[str] = None       # path of a run file whose checkpoint to resume


# --------------------------------------------------------------------------- validation
def _fail(key: str, value, allowed: str):
    raise ConfigError(f"{key}={value!r}: {allowed}")


def _nonneg(key, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        _fail(key, value, "must be a finite number >= 0")


def _positive(key, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        _fail(key, value, "must be a finite number > 0")


def _fraction(key, value):
    if not (isinstance(value, (int, float)) and 0 <= value <= 1):
        _fail(key, value, "must be a fraction in [0, 1]")


def _choice(key, value, choices):
    if value not in choices:
        _fail(key, value, f"allowed values are {list(choices)}")


def _nonneg_numbers(prefix: str, obj):
    """Every float field of a dataclass must be finite and >= 0 (rates, lengths, levels)."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
            _nonneg(f"{prefix}.{f.name}", v)


def all_substrates(cfg: SpatialDTPConfig) -> Dict[str, SubstrateConfig]:
    """Base substrates followed by one per drug of the treatment (drugs are substrates too)."""
    out = dict(cfg.substrates)
    for name, drug in cfg.treatment.drugs.items():
        out[name] = drug.transport
    return out


def _validate_substrate(key: str, s: SubstrateConfig, ndim: int):
    for attr in ("diffusion", "decay", "blood", "permeability", "initial", "hindrance"):
        _nonneg(f"{key}.{attr}", getattr(s, attr))
    if s.uptake_km is not None:
        _positive(f"{key}.uptake_km", s.uptake_km)
    for kind in ("uptake", "secretion"):
        for cell, rate in getattr(s, kind).items():
            if cell not in CELL_TYPES:
                _fail(f"{key}.{kind}.{cell}", rate, f"cell types are {list(CELL_TYPES)}")
            _nonneg(f"{key}.{kind}.{cell}", rate)
    axes = ("z", "y", "x")[3 - ndim:]
    faces = [a + s_ for a in axes for s_ in "-+"]
    for face, kind in s.boundary.items():
        if face != "default" and face not in faces:
            _fail(f"{key}.boundary.{face}", kind, f"faces of a {ndim}D grid are {['default'] + faces}")
        _choice(f"{key}.boundary.{face}", kind, BOUNDARY_KINDS)
    for ax in axes:
        lo, hi = boundary_of(s, ax + "-"), boundary_of(s, ax + "+")
        if (lo == "periodic") != (hi == "periodic"):
            _fail(f"{key}.boundary.{ax}", [lo, hi], "periodic must be set on both faces of an axis")
    if s.boundary_value is not None:
        _nonneg(f"{key}.boundary_value", s.boundary_value)


def boundary_of(s: SubstrateConfig, face: str) -> str:
    return s.boundary.get(face, s.boundary.get("default", "no_flux"))


def _validate_drug(key: str, d: DrugConfig, ndim: int):
    _choice(f"{key}.drug_class", d.drug_class, DRUG_CLASSES)
    _positive(f"{key}.ec50", d.ec50)
    _positive(f"{key}.hill", d.hill)
    _fraction(f"{key}.emax", d.emax)
    _nonneg(f"{key}.kill_rate", d.kill_rate)
    _choice(f"{key}.pk.model", d.pk.model, PK_MODELS)
    _nonneg(f"{key}.pk.elimination", d.pk.elimination)
    if d.pk.model in ("bolus", "oral", "infusion"):
        _positive(f"{key}.pk.elimination", d.pk.elimination)
    if d.pk.model == "oral":
        _positive(f"{key}.pk.absorption", d.pk.absorption)
    s = d.schedule
    k = f"{key}.schedule"
    _choice(f"{k}.kind", s.kind, SCHEDULE_KINDS)
    _nonneg(f"{k}.start_day", s.start_day)
    _nonneg(f"{k}.dose", s.dose)
    if s.stop_day is not None and s.stop_day < s.start_day:
        _fail(f"{k}.stop_day", s.stop_day, f"must be >= start_day ({s.start_day})")
    if s.kind != "doses" and s.dose <= 0:
        _fail(f"{k}.dose", s.dose, "a schedule with no doses: dose must be > 0")
    if d.pk.model in ("bolus", "oral"):
        _positive(f"{k}.interval_hours", s.interval_hours)
    if s.kind == "intermittent":
        _positive(f"{k}.on_days", s.on_days)
        _nonneg(f"{k}.off_days", s.off_days)
    if s.kind == "adaptive":
        _positive(f"{k}.check_interval_days", s.check_interval_days)
        _fraction(f"{k}.stop_fraction", s.stop_fraction)
        _positive(f"{k}.resume_fraction", s.resume_fraction)
        if s.stop_fraction >= s.resume_fraction:
            _fail(f"{k}.stop_fraction", s.stop_fraction,
                  f"must be below resume_fraction ({s.resume_fraction})")
    if s.kind == "doses":
        if not s.doses:
            _fail(f"{k}.doses", s.doses, "a 'doses' schedule needs at least one [day, amount]")
        for i, entry in enumerate(s.doses):
            if (not isinstance(entry, (list, tuple)) or len(entry) != 2
                    or not all(isinstance(v, (int, float)) and v >= 0 for v in entry)):
                _fail(f"{k}.doses[{i}]", entry, "each dose is [day, amount] with both >= 0")
        if d.pk.model in ("constant", "infusion"):
            _positive(f"{k}.dose_duration_hours", s.dose_duration_hours)
    _validate_substrate(f"{key}.transport", d.transport, ndim)


def validate(cfg: SpatialDTPConfig, free_memory_bytes: Optional[int] = None) -> None:
    """Check every value; raise one ConfigError naming the key, the value and what is allowed.

    Nothing is allocated here; ``free_memory_bytes`` (host or device) bounds the grid.
    """
    g = cfg.grid
    if not (isinstance(g.shape, (list, tuple)) and len(g.shape) in (2, 3)
            and all(isinstance(n, int) and n >= 3 for n in g.shape)):
        _fail("grid.shape", list(g.shape) if isinstance(g.shape, (list, tuple)) else g.shape,
              "2 or 3 integers >= 3: [ny, nx] or [nz, ny, nx]")
    ndim = len(g.shape)
    _positive("grid.dx", g.dx)
    r = cfg.run
    _positive("run.days", r.days)
    _positive("run.dt", r.dt)
    _positive("run.output_interval_hours", r.output_interval_hours)
    _positive("run.checkpoint_interval_hours", r.checkpoint_interval_hours)
    _positive("run.progression_factor", r.progression_factor)
    _nonneg("run.niche_distance", r.niche_distance)
    _nonneg("run.niche_threshold", r.niche_threshold)
    _positive("run.mrd_threshold", r.mrd_threshold)
    _nonneg("run.hypoxic_threshold", r.hypoxic_threshold)
    if not (isinstance(cfg.seed, int) and cfg.seed >= 0):
        _fail("seed", cfg.seed, "must be an integer >= 0")
    n = cfg.numerics
    _choice("numerics.scheme", n.scheme, SCHEMES)
    _positive("numerics.rtol", n.rtol)
    if not (isinstance(n.picard_iterations, int) and 0 <= n.picard_iterations <= 10):
        _fail("numerics.picard_iterations", n.picard_iterations, "must be an integer in [0, 10]")
    if not (isinstance(n.max_iterations, int) and n.max_iterations >= 1):
        _fail("numerics.max_iterations", n.max_iterations, "must be an integer >= 1")
    _choice("backend.name", cfg.backend.name, BACKENDS)
    _choice("backend.precision", cfg.backend.precision, PRECISIONS)
    _choice("viewer.mode", cfg.viewer.mode, ("none", "live"))

    for name in BASE_SUBSTRATES:
        if name not in cfg.substrates:
            _fail(f"substrates.{name}", None, f"the model needs substrates {list(BASE_SUBSTRATES)}")
    for name, s in cfg.substrates.items():
        _validate_substrate(f"substrates.{name}", s, ndim)
    _choice("treatment.combination", cfg.treatment.combination, COMBINATION_RULES)
    reserved = set(CELL_TYPES) | {"vessels"}
    for name in cfg.substrates:
        if name in reserved or name.startswith("auc_"):
            _fail(f"substrates.{name}", name, f"a field name must not be one of "
                  f"{sorted(reserved)} or start with 'auc_' (exposure maps)")
    for name, d in cfg.treatment.drugs.items():
        if name in cfg.substrates:
            _fail(f"treatment.drugs.{name}", name,
                  f"a drug name must differ from the substrates {list(cfg.substrates)}")
        if name in reserved or name.startswith("auc_"):
            _fail(f"treatment.drugs.{name}", name, f"a drug name must not be one of "
                  f"{sorted(reserved)} or start with 'auc_' (exposure maps)")
        _validate_drug(f"treatment.drugs.{name}", d, ndim)

    c = cfg.cells
    _positive("cells.cell_volume", c.cell_volume)
    if c.capacity is not None:
        _positive("cells.capacity", c.capacity)
    _choice("cells.kill_model", c.kill_model, KILL_MODELS)
    for sub in ("sensitive", "persister", "resistant", "fibroblast", "macrophage",
                "switching", "environment"):
        _nonneg_numbers(f"cells.{sub}", getattr(c, sub))
    _fraction("cells.resistant.fitness_cost", c.resistant.fitness_cost)
    _fraction("cells.switching.theta", c.switching.theta)
    _positive("cells.switching.hgf_k", c.switching.hgf_k)
    _positive("cells.macrophage.chemokine_k", c.macrophage.chemokine_k)
    e = c.environment
    if e.o2_proliferation_saturation <= e.o2_proliferation_threshold:
        _fail("cells.environment.o2_proliferation_saturation", e.o2_proliferation_saturation,
              f"must exceed o2_proliferation_threshold ({e.o2_proliferation_threshold})")
    if e.o2_hypoxic <= e.o2_hypoxic_full:
        _fail("cells.environment.o2_hypoxic", e.o2_hypoxic,
              f"must exceed o2_hypoxic_full ({e.o2_hypoxic_full})")
    if e.o2_necrosis_onset <= e.o2_necrosis_max:
        _fail("cells.environment.o2_necrosis_onset", e.o2_necrosis_onset,
              f"must exceed o2_necrosis_max ({e.o2_necrosis_max})")

    t = cfg.tissue
    _choice("tissue.vessels.kind", t.vessels.kind, ("network", "points", "none"))
    _positive("tissue.vessels.spacing", t.vessels.spacing)
    _positive("tissue.vessels.radius", t.vessels.radius)
    _choice("tissue.stroma.kind", t.stroma.kind, ("clusters", "bands", "none"))
    _positive("tissue.stroma.band_spacing", t.stroma.band_spacing)
    _positive("tissue.stroma.band_width", t.stroma.band_width)
    _positive("tissue.stroma.cluster_radius", t.stroma.cluster_radius)
    if not (isinstance(t.stroma.n_clusters, int) and t.stroma.n_clusters >= 0):
        _fail("tissue.stroma.n_clusters", t.stroma.n_clusters, "must be an integer >= 0")
    _choice("tissue.macrophages.near", t.macrophages.near, ("stroma", "vessels", "uniform"))
    _fraction("tissue.tumour.density", t.tumour.density)
    _fraction("tissue.tumour.persister_fraction", t.tumour.persister_fraction)
    _fraction("tissue.tumour.resistant_fraction", t.tumour.resistant_fraction)
    if t.tumour.persister_fraction + t.tumour.resistant_fraction > 1:
        _fail("tissue.tumour.persister_fraction", t.tumour.persister_fraction,
              "persister_fraction + resistant_fraction must not exceed 1")
    _fraction("tissue.stroma.caf_density", t.stroma.caf_density)
    _fraction("tissue.macrophages.density", t.macrophages.density)
    if len(t.tumour.center) < ndim or not all(
            isinstance(v, (int, float)) and 0 <= v <= 1 for v in t.tumour.center[:ndim]):
        _fail("tissue.tumour.center", list(t.tumour.center),
              f"needs {ndim} fractions of the grid's extent, each in [0, 1]")
    _nonneg("tissue.tumour.radius", t.tumour.radius)
    _nonneg("tissue.vessels.margin", t.vessels.margin)
    known = set(all_substrates(cfg)) | set(CELL_TYPES) | {"vessels"}
    for name, path in t.files.items():
        if name not in known:
            _fail(f"tissue.files.{name}", path, f"fields that can be loaded are {sorted(known)}")
    roles = ("vessel", "tumour", "caf", "tam", "background")
    for label, role in t.labels.mapping.items():
        if str(label).lstrip("-").isdigit() is False:
            _fail(f"tissue.labels.mapping.{label}", role, "keys are integer label values")
        _choice(f"tissue.labels.mapping.{label}", role, roles)
    if t.labels.mapping and not t.labels.path:
        _fail("tissue.labels.path", t.labels.path, "a label mapping needs a label image path")

    from .objective import check_objective
    from .observables import SUMMARY_UNITS

    try:
        check_objective(cfg.objective)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    metrics = list(SUMMARY_UNITS) + [f"cumulative_on_days_{d}" for d in cfg.treatment.drugs]
    _choice("objective.metric", cfg.objective.metric, metrics)

    if free_memory_bytes is not None:
        need = estimate_memory(cfg)
        if need > free_memory_bytes:
            _fail("grid.shape", list(g.shape),
                  f"needs about {need / 2**30:.2f} GiB ({need} bytes) on the backend's device "
                  f"but only {free_memory_bytes / 2**30:.2f} GiB ({free_memory_bytes} bytes) "
                  "is free; use a smaller grid or backend.precision=float32")


def n_fields(cfg: SpatialDTPConfig) -> int:
    subs = all_substrates(cfg)
    return len(subs) + len(CELL_TYPES) + len(cfg.treatment.drugs)


def estimate_memory(cfg: SpatialDTPConfig) -> int:
    """Bytes the run needs: the state, a host copy for output, the solver's work arrays
    (multigrid hierarchy and Krylov vectors, ~23 grids) and the per-step temporaries."""
    size = math.prod(cfg.grid.shape)
    item = 4 if cfg.backend.precision == "float32" else 8
    grids = 2 * n_fields(cfg) + 30
    return int(size * item * grids)


def to_dict(obj) -> Any:
    """Dataclass tree to plain dicts/lists (for YAML in run files)."""
    if is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def from_dict(data: dict) -> SpatialDTPConfig:
    """Plain dicts (e.g. a run file's stored YAML) to the typed config, checking types."""
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(OmegaConf.structured(SpatialDTPConfig), data)
    return OmegaConf.to_object(merged)
