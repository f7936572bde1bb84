"""The configuration schema: plain dataclasses, one module per section, checked before
anything is allocated.

=================  ===========================================================
module             sections
=================  ===========================================================
``substrates``     ``substrates.<name>`` (and each drug's ``transport``)
``cells``          ``cells`` (and the cell types S, P, R, F, M)
``treatment``      ``treatment`` (drugs, PK, schedules)
``tissue``         ``tissue`` (generators, label images, arrays from files)
``run``            ``grid``, ``run``, ``numerics``, ``backend``, ``viewer``, ``objective``
``schema``         :class:`SpatialDTPConfig` (all of them) and :func:`validate`
``checks``         :class:`ConfigError` and the checks the sections share
``limits``         bounds on the steps, frames and sub-steps a configuration implies
``magnitudes``     levels and step coefficients the precision can hold
``memory``         :func:`estimate_memory`: the bytes a run needs, by named contribution
=================  ===========================================================

Everything public is importable from here: ``from spatialdtp.config import CellsConfig``.
"""
from .cells import (
           CELL_TYPES,
           KILL_MODELS,
           CellsConfig,
           EnvironmentResponseConfig,
           FibroblastConfig,
           MacrophageConfig,
           ResistantCellConfig,
           SwitchingConfig,
           TumourCellConfig,
)
from .checks import ConfigError
from .run import (
           BACKENDS,
           CENSORED_RUN_DAYS,
           PRECISIONS,
           SCHEMES,
           BackendConfig,
           GridConfig,
           NumericsConfig,
           ObjectiveConfig,
           RunConfig,
           ViewerConfig,
           check_objective,
)
from .memory import memory_contributions
from .schema import (
           SpatialDTPConfig,
           all_substrates,
           check_memory,
           check_resources,
           estimate_memory,
           from_dict,
           n_fields,
           to_dict,
           validate,
           validate_values,
)
from .substrates import (
           BASE_SUBSTRATES,
           BOUNDARY_KINDS,
           MAP_KINDS,
           BindingConfig,
           CoefficientMapsConfig,
           SubstrateConfig,
           boundary_of,
)
from .tissue import (
           TISSUE_KINDS,
           LabelImageConfig,
           MacrophageSeedConfig,
           StromaConfig,
           TissueConfig,
           TumourConfig,
           VesselConfig,
           WellMixedConfig,
)
from .treatment import (
           COMBINATION_RULES,
           DRUG_CLASSES,
           EXPOSURES,
           PK_MODELS,
           SCHEDULE_KINDS,
           DrugConfig,
           PKConfig,
           ScheduleConfig,
           TreatmentConfig,
           validate_drug,
)

__all__ = ["BACKENDS", "BASE_SUBSTRATES", "BOUNDARY_KINDS", "BackendConfig", "BindingConfig",
           "CoefficientMapsConfig", "MAP_KINDS",
           "CELL_TYPES",
           "CENSORED_RUN_DAYS", "COMBINATION_RULES", "CellsConfig", "ConfigError",
           "DRUG_CLASSES", "DrugConfig", "EXPOSURES", "EnvironmentResponseConfig", "FibroblastConfig",
           "GridConfig", "KILL_MODELS", "LabelImageConfig", "MacrophageConfig",
           "MacrophageSeedConfig", "NumericsConfig", "ObjectiveConfig", "PKConfig",
           "PK_MODELS", "PRECISIONS", "ResistantCellConfig", "RunConfig", "SCHEDULE_KINDS",
           "SCHEMES", "ScheduleConfig", "SpatialDTPConfig", "StromaConfig", "SubstrateConfig",
           "SwitchingConfig", "TissueConfig", "TreatmentConfig", "TumourCellConfig",
           "TISSUE_KINDS", "TumourConfig", "VesselConfig", "ViewerConfig", "WellMixedConfig",
           "all_substrates", "boundary_of", "check_memory", "check_objective",
           "check_resources", "estimate_memory", "memory_contributions", "from_dict",
           "n_fields", "to_dict", "validate", "validate_drug", "validate_values"]
