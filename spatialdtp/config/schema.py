"""The whole configuration: one section per concept, composed, and checked as a whole.

Hydra stores :class:`SpatialDTPConfig` in its ConfigStore (see :mod:`spatialdtp.cli`) so
that a typo or a wrong type on the command line is refused by name; the YAML files in
``conf/`` only select and override values. The model never sees OmegaConf: the CLI turns
the composed config into these dataclasses and calls :func:`validate`.

Units: µm, minutes, mmHg (oxygen), mM (glucose), ng/mL (HGF), nM (chemokine), µM (drugs),
cells per voxel. Every default's source is in ``docs/parameters.md``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, Optional

from ..units import SUMMARY_UNITS
from .cells import CELL_TYPES, CellsConfig, validate_cells
from .checks import choice, fail
from .run import (
    BackendConfig,
    GridConfig,
    NumericsConfig,
    ObjectiveConfig,
    RunConfig,
    ViewerConfig,
    validate_objective,
    validate_run,
)
from .substrates import (
    BASE_SUBSTRATES,
    SubstrateConfig,
    default_substrates,
    validate_substrate,
)
from .tissue import TissueConfig, validate_tissue
from .treatment import COMBINATION_RULES, TreatmentConfig, validate_drug


@dataclass
class SpatialDTPConfig:
    seed: int = 0
    grid: GridConfig = field(default_factory=GridConfig)
    run: RunConfig = field(default_factory=RunConfig)
    numerics: NumericsConfig = field(default_factory=NumericsConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    substrates: Dict[str, SubstrateConfig] = field(default_factory=default_substrates)
    cells: CellsConfig = field(default_factory=CellsConfig)
    treatment: TreatmentConfig = field(default_factory=TreatmentConfig)
    tissue: TissueConfig = field(default_factory=TissueConfig)
    viewer: ViewerConfig = field(default_factory=ViewerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    resume: Optional[str] = None       # path of a run file whose checkpoint to resume


def all_substrates(cfg: SpatialDTPConfig) -> Dict[str, SubstrateConfig]:
    """Base substrates followed by one per drug of the treatment (drugs are substrates too)."""
    out = dict(cfg.substrates)
    for name, drug in cfg.treatment.drugs.items():
        out[name] = drug.transport
    return out


def validate(cfg: SpatialDTPConfig, free_memory_bytes: Optional[int] = None) -> None:
    """Check every value; raise one ConfigError naming the key, the value and what is allowed.

    Nothing is allocated here; ``free_memory_bytes`` (host or device) bounds the grid.
    """
    ndim = validate_run(cfg)

    for name in BASE_SUBSTRATES:
        if name not in cfg.substrates:
            fail(f"substrates.{name}", None, f"the model needs substrates {list(BASE_SUBSTRATES)}")
    for name, s in cfg.substrates.items():
        validate_substrate(f"substrates.{name}", s, ndim)
    choice("treatment.combination", cfg.treatment.combination, COMBINATION_RULES)
    reserved = set(CELL_TYPES) | {"vessels"}
    for name in cfg.substrates:
        if name in reserved or name.startswith("auc_"):
            fail(f"substrates.{name}", name, f"a field name must not be one of "
                 f"{sorted(reserved)} or start with 'auc_' (exposure maps)")
    for name, d in cfg.treatment.drugs.items():
        if name in cfg.substrates:
            fail(f"treatment.drugs.{name}", name,
                 f"a drug name must differ from the substrates {list(cfg.substrates)}")
        if name in reserved or name.startswith("auc_"):
            fail(f"treatment.drugs.{name}", name, f"a drug name must not be one of "
                 f"{sorted(reserved)} or start with 'auc_' (exposure maps)")
        validate_drug(f"treatment.drugs.{name}", d, ndim)

    if cfg.tissue.kind == "well_mixed":
        for name, s in all_substrates(cfg).items():
            given = {k: v for k, v in vars(s.maps).items() if v is not None}
            if given:
                fail(f"substrates.{name}.maps", given, "a well-mixed tissue "
                     "(tissue.kind=well_mixed) has no maps; its coefficients are the scalars")
    validate_cells(cfg.cells)
    validate_tissue(cfg.tissue, ndim, set(all_substrates(cfg)) | set(CELL_TYPES) | {"vessels"})
    validate_objective(cfg.objective, list(SUMMARY_UNITS) + [
        f"cumulative_on_days_{d}" for d in cfg.treatment.drugs])

    if free_memory_bytes is not None:
        need = estimate_memory(cfg)
        if need > free_memory_bytes:
            fail("grid.shape", list(cfg.grid.shape),
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
