"""The whole configuration: one section per concept, composed, and checked as a whole.

Hydra stores :class:`SpatialDTPConfig` in its ConfigStore (see :mod:`spatialdtp.cli`) so
that a typo or a wrong type on the command line is refused by name; the YAML files in
``conf/`` only select and override values. The model never sees OmegaConf: the CLI turns
the composed config into these dataclasses and calls :func:`validate`.

Units: µm, minutes, mmHg (oxygen), mM (glucose), ng/mL (HGF), nM (chemokine), µM (drugs),
cells per voxel. Every default's source is in ``docs/parameters.md``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, Optional

from ..units import SUMMARY_UNITS
from .cells import CELL_TYPES, CellsConfig, validate_cells
from .checks import ConfigError, choice, fail, nonneg
from .limits import check_work
from .magnitudes import check_coefficients, check_levels
from .memory import estimate_memory, memory_contributions, n_fields  # noqa: F401
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


def validate(cfg: SpatialDTPConfig, free_memory_bytes: Optional[int] = None,
             backend: Optional[str] = None) -> None:
    """Check every value; raise one ConfigError naming the key, the value and what is allowed.

    Nothing is allocated here. Keys the schema does not have are refused (a ``+key=``
    override adds one silently otherwise); so is any configuration whose steps, frames or
    sub-steps exceed :mod:`.limits`. ``free_memory_bytes`` (host or device) bounds the
    memory :func:`estimate_memory` says the run needs on ``backend`` (the resolved name;
    None: the configured one, ``auto`` counting as the reference ``numpy``).
    """
    capacity = validate_values(cfg)
    check_resources(cfg, capacity, free_memory_bytes, backend)


def check_resources(cfg: SpatialDTPConfig, capacity: float,
                    free_memory_bytes: Optional[int] = None,
                    backend: Optional[str] = None) -> None:
    """Memory first (a grid too large is refused as such), then the work bounds."""
    if free_memory_bytes is not None:
        check_memory(cfg, free_memory_bytes, backend)
    check_work(cfg, capacity)


def validate_values(cfg: SpatialDTPConfig) -> float:
    """Every key and value of ``cfg`` on its own (no resources); returns the capacity."""
    check_keys(cfg)
    ndim = validate_run(cfg)

    for name in BASE_SUBSTRATES:
        if name not in cfg.substrates:
            fail(f"substrates.{name}", None, f"the model needs substrates {list(BASE_SUBSTRATES)}")
    for name, s in cfg.substrates.items():
        validate_substrate(f"substrates.{name}", s, ndim)
    choice("treatment.combination", cfg.treatment.combination, COMBINATION_RULES)
    nonneg("treatment.lead_in_days", cfg.treatment.lead_in_days)
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
    check_levels(cfg, all_substrates(cfg))
    validate_cells(cfg.cells)
    validate_tissue(cfg.tissue, ndim, set(all_substrates(cfg)) | set(CELL_TYPES) | {"vessels"})
    validate_objective(cfg.objective, list(SUMMARY_UNITS) + [
        f"cumulative_on_days_{d}" for d in cfg.treatment.drugs])

    cap = check_capacity(cfg)
    check_coefficients(cfg, all_substrates(cfg), cap)
    return cap


def check_memory(cfg: SpatialDTPConfig, free_memory_bytes: int, backend: Optional[str] = None):
    need = estimate_memory(cfg, backend)
    if need <= free_memory_bytes:
        return
    parts = memory_contributions(cfg, backend)
    top = ", ".join(f"{k} {v / 2**30:.2f}" for k, v in
                    sorted(parts.items(), key=lambda kv: -kv[1])[:3])
    advice = "use a smaller grid" + (" or backend.precision=float32"
                                     if cfg.backend.precision == "float64" else "")
    if parts.get("observable_history", 0) > need / 2:
        advice = "use a larger run.dt or a shorter run.days (every step's observables are kept)"
    fail("grid.shape", list(cfg.grid.shape),
         f"the run needs about {need / 2**30:.2f} GiB ({top} GiB, ...) on the backend's "
         f"device but only {free_memory_bytes / 2**30:.2f} GiB is free; {advice}")


def capacity(cfg: SpatialDTPConfig) -> float:
    """Cells per voxel: ``cells.capacity``, or voxel volume / cell volume (inf where dx³
    overflows)."""
    if cfg.cells.capacity is not None:
        return float(cfg.cells.capacity)
    g = cfg.grid.dx
    return g * g * g / cfg.cells.cell_volume


def check_capacity(cfg: SpatialDTPConfig) -> float:
    """The capacity, refused where the precision cannot hold densities of that size: a
    tiny voxel (``grid.dx=1e-300``) would give 0 cells per voxel, a huge one inf."""
    import numpy as np

    cap = capacity(cfg)
    info = np.finfo(cfg.backend.precision)
    lo, hi = float(info.tiny) * 1e6, float(info.max) * 1e-6
    if lo <= cap <= hi:
        return cap
    allowed = (f"gives a capacity of {cap:.3g} cells per voxel; {cfg.backend.precision} "
               f"densities need it within [{lo:.1e}, {hi:.1e}]")
    if cfg.cells.capacity is not None:
        fail("cells.capacity", cfg.cells.capacity, allowed)
    fail("grid.dx", cfg.grid.dx, f"the voxel volume dx³ / cells.cell_volume "
         f"({cfg.cells.cell_volume:g} µm³) {allowed}")


def check_keys(cfg: SpatialDTPConfig) -> None:
    """Refuse keys the schema does not have. Hydra's ``+key=value`` adds a key to a
    structured section without complaint (``+run.dayz=3``, the spelling Hydra suggests for
    the typo ``run.dayz=3``, would be ignored): such a key becomes an attribute of the
    dataclass that no field declares. Dict sections (``substrates``, ``tissue.files``,
    ``*.uptake``, ``*.boundary``, ...) take new keys; their validators check them."""
    import difflib

    def walk(obj, prefix):
        if is_dataclass(obj):
            names = [f.name for f in fields(obj)]
            for key in vars(obj):
                if key not in names:
                    near = difflib.get_close_matches(key, names, n=1)
                    hint = f"; did you mean {prefix}{near[0]}?" if near else ""
                    raise ConfigError(f"{prefix}{key}: not a key of "
                                      f"{prefix.rstrip('.') or 'the config'}; its keys are "
                                      f"{names}{hint}")
            for name in names:
                walk(getattr(obj, name), f"{prefix}{name}.")
        elif isinstance(obj, dict):
            for key, value in obj.items():
                walk(value, f"{prefix}{key}.")
    walk(cfg, "")


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
    """Plain dicts (e.g. a run file's stored YAML) to the typed config, checking types.

    The values are taken literally: a stored config was resolved when it was written, so a
    text such as ``${oc.env:HOME}`` in it is text, not an interpolation to resolve now.
    Raises ConfigError naming the key where a value does not fit the schema.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(data, dict):
        raise ConfigError(f"the config must be a mapping of keys to values, got "
                          f"{type(data).__name__}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SpatialDTPConfig), _literal(data))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        reason = str(exc).splitlines()[0]
        raise ConfigError(f"{key}: {reason}" if key else reason) from None


_INTERPOLATION = re.compile(r"(\\*)\$\{")


def _literal(value):
    """Escape OmegaConf interpolations (``${...}``) in every string of a plain tree."""
    if isinstance(value, str):
        # n backslashes before "${" are literal text: OmegaConf needs 2n + 1 of them
        return _INTERPOLATION.sub(lambda m: "\\" * (2 * len(m.group(1)) + 1) + "${", value)
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_literal(v) for v in value]
    return value


def unknown_key_message(full_key: str) -> str:
    """'run.dayz: not a key of run; its keys are [...]; did you mean run.days?' for a
    dotted key that the schema lacks (Hydra's message suggests ``+run.dayz``, which
    :func:`check_keys` refuses too)."""
    import difflib

    node, prefix = SpatialDTPConfig(), ""
    parts = full_key.split(".")
    for part in parts[:-1]:
        child = getattr(node, part, None) if is_dataclass(node) else (
            node.get(part) if isinstance(node, dict) else None)
        if child is None or not (is_dataclass(child) or isinstance(child, dict)):
            break
        node, prefix = child, prefix + part + "."
    names = [f.name for f in fields(node)] if is_dataclass(node) else list(node)
    missing = full_key[len(prefix):].split(".")[0]
    near = difflib.get_close_matches(missing, names, n=1)
    hint = f"; did you mean {prefix}{near[0]}?" if near else ""
    return (f"{prefix}{missing}: not a key of {prefix.rstrip('.') or 'the config'}; its keys "
            f"are {names}{hint}")
