"""The experiments from the biology: their arms, their read-outs and their figures.

Each experiment is a preset in ``conf/experiment/`` whose ``hydra.sweeper.params`` sweep
its arms (and seeds), so ``spatialdtp-run -m experiment=schedules`` runs all of them:

=================  ==========================  ===============================================
experiment         arms (swept keys)           question
=================  ==========================  ===============================================
schedules          treatment                   continuous vs intermittent vs adaptive dosing
combinations       treatment                   the targeted drug alone vs with a KDM5/HDAC,
                                               OXPHOS, GPX4 or MET inhibitor
niche              tissue × treatment          CAF/TAM-rich vs depleted stroma, with and
                                               without a MET inhibitor
persister_origin   cells                       pre-existing vs drug-induced persisters
                                               through a drug holiday
=================  ==========================  ===============================================

:mod:`.arms` (the arms, :class:`ArmRun`, :func:`load_sweep`) · :mod:`.readouts` (what
the README reports) · :mod:`.figures` (:func:`plot_experiment`, :func:`experiment_figure`). The command
``python -m spatialdtp.experiments SWEEP_DIR`` prints a finished sweep's read-outs arm by
arm and draws its figure; :func:`spatialdtp.experiments.run_arm` runs one arm in-process.
"""
from .arms import (
           EXPERIMENTS,
           ArmRun,
           arm_keys,
           arm_label,
           arms,
           load_sweep,
           preset_path,
           sweep_params,
)
from .estimate import two_zone_estimate, zone_environments
from .figures import experiment_figure, plot_experiment
from .readouts import (
           by_arm,
           holiday_readouts,
           near_far,
           niche_contrast,
           niche_distance_map,
           niche_profile_of,
           paired_near_far_ratio,
           paired_profile_ratio,
           readout_table,
           readouts,
           schedule_windows,
           value_at,
           zone_means,
)

__all__ = ["ArmRun", "EXPERIMENTS", "arm_keys", "arm_label", "arms", "by_arm",
           "experiment_figure", "holiday_readouts", "load_sweep", "near_far", "niche_contrast",
           "niche_distance_map", "niche_profile_of", "paired_near_far_ratio",
           "paired_profile_ratio", "plot_experiment", "preset_path", "readout_table",
           "readouts", "schedule_windows", "sweep_params", "two_zone_estimate", "value_at",
           "zone_environments", "zone_means"]
