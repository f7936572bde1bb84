"""``spatialdtp-run``: the Hydra application, and the only module that imports Hydra.

    spatialdtp-run                                   # the default 2D demo on the CPU
    spatialdtp-run treatment=intermittent run.days=42 grid.shape=[256,256]
    spatialdtp-run -m treatment=continuous,intermittent,adaptive seed=0,1,2
    spatialdtp-run +resume=outputs/2026-11-21/12-00-00/run.h5 run.days=60

The composed config is turned into the dataclasses of :mod:`spatialdtp.config` and
checked before anything is allocated; the run file is written in Hydra's run directory.
The other faces use Hydra through this module: :func:`compose` (the Python API's configs)
and :func:`expand_basic_sweep` (the jobs a sweep has planned, for ``spatialdtp-summarize``).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Iterable

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .config import ConfigError, SpatialDTPConfig
from .help import help_text
from .resources import conf_dir
from .units import MINUTES_PER_DAY

log = logging.getLogger("spatialdtp")

ConfigStore.instance().store(name="spatialdtp_schema", node=SpatialDTPConfig)


def to_config(cfg: DictConfig) -> SpatialDTPConfig:
    return OmegaConf.to_object(cfg)


def _run(cfg: DictConfig):
    from .run.simulation import NonFiniteError, RunInterrupted, Simulation
    from .run.summary import format_summary
    from .studies.objective import objective_value

    # warnings.warn (density scaled to capacity, unmapped labels, ...) through logging, so
    # that they reach cli.log as well as the terminal
    logging.captureWarnings(True)
    config = to_config(cfg)
    try:
        if config.resume:
            _refuse_ignored_overrides()
            days = config.run.days if _overridden("run.days") else None
            sim = Simulation.resume(config.resume, days=days)
            path = Path(config.resume)
            log.info("resuming %s at t = %.3f days", path, sim.t / MINUTES_PER_DAY)
        else:
            sim = Simulation(config)
            path = Path(HydraConfig.get().runtime.output_dir) / config.run.output
        log.info("%s", sim.describe())
        log.info("backend %s on %s", sim.backend.name, sim.backend.device())
        if config.viewer.mode == "live" and _multirun():
            raise ConfigError("viewer.mode='live': a multirun would open one napari window per "
                              "job; sweep without viewer=live and open the run files afterwards "
                              "with spatialdtp-view")
        if config.viewer.mode == "live":  # napari shows the run; closing it stops the run
            from .viewer.live import run_live

            summary = run_live(sim, path)
        else:
            summary = sim.run_until(path=path)
    except ConfigError as err:
        log.error("configuration error: %s", err)
        raise SystemExit(2) from None
    except RunInterrupted as err:
        log.warning("%s", err)
        raise SystemExit(130) from None
    except NonFiniteError as err:
        log.error("%s", err)
        raise SystemExit(3) from None
    log.info("run file: %s", path)
    print(format_summary(summary))
    return objective_value(config.objective, summary, sim.observables())


class JobFailed(RuntimeError):
    """A job of a multirun failed; its error is in the job's log (cli.log)."""


def _job(cfg: DictConfig):
    """Hydra's task function: one run.

    In a multirun, a job that fails raises an exception instead of SystemExit: Hydra's
    launchers (basic, joblib, submitit) record an exception as that job's failure and run
    the other jobs, while SystemExit would end the whole sweep at the first bad job. The
    error is logged to the job's cli.log, where ``spatialdtp-summarize`` finds it.
    Ctrl-C/SIGTERM (exit 130) still stops the whole sweep.
    """
    try:
        return _run(cfg)
    except SystemExit as stop:
        if stop.code in (2, 3) and _multirun():
            raise JobFailed(f"exit code {stop.code}: the error is in "
                            f"{Path(HydraConfig.get().runtime.output_dir) / 'cli.log'}") from None
        raise
    except Exception as err:
        if _multirun():
            log.error("job failed: %s: %s", type(err).__name__, err, exc_info=True)
        raise


def _multirun() -> bool:
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


# What may change when a run is resumed: the rest comes from the run file's stored config,
# so that the continuation is the same run.
RESUME_OVERRIDABLE = ("resume", "run.days", "run.progress", "run.plot")


def _refuse_ignored_overrides() -> None:
    keys = [o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task]
    ignored = [k for k in keys if k not in RESUME_OVERRIDABLE]
    if ignored:
        raise ConfigError(f"resume: {ignored}: a resumed run continues with the config stored "
                          f"in its run file; only {list(RESUME_OVERRIDABLE[1:])} may be given "
                          "(start a new run to change anything else)")


def _overridden(key: str) -> bool:
    try:
        return any(o.split("=", 1)[0].lstrip("+~") == key for o in HydraConfig.get().overrides.task)
    except ValueError:
        return False


def _accept_plus_resume(argv: list[str]) -> list[str]:
    """``+resume=PATH`` is the documented spelling; the schema already has ``resume``."""
    return [("resume=" + a[len("+resume="):]) if a.startswith("+resume=") else a for a in argv]


def expand_basic_sweep(arguments: list[str]) -> list[list[str]] | None:
    """Every job's overrides, as Hydra's basic sweeper expands the sweep's override
    ``arguments`` (comma lists, ``range``, ...), job number = list index; None where the
    expansion needs Hydra's config loader (``glob``)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(arguments))
        batches = BasicSweeper.split_arguments(parsed, None)
    except Exception:  # e.g. glob() needs Hydra's config loader: then no pending list
        return None
    return [list(job) for batch in batches for job in batch]


def compose(overrides: Iterable[str] = (), config_name: str = "config") -> SpatialDTPConfig:
    """``conf/<config_name>.yaml`` composed with command-line style overrides, as the typed
    (not yet validated) config: what :mod:`spatialdtp.api` and the experiments run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    return to_config(cfg)


# the Hydra plugin each optional preset needs, and the extra that installs it
PLUGINS = {"hydra/launcher=local_parallel": ("hydra_plugins.hydra_joblib_launcher", "cluster"),
           "hydra/launcher=local_submitit": ("hydra_plugins.hydra_submitit_launcher", "cluster"),
           "hydra/launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", "cluster"),
           "hydra/launcher=ray_cluster": ("hydra_plugins.hydra_ray_launcher", "ray"),
           "+optimize=": ("hydra_plugins.hydra_optuna_sweeper", "cluster")}


def missing_plugin(argv: list[str]) -> str | None:
    """The install hint for the first preset in ``argv`` whose Hydra plugin is missing
    (Hydra itself only says "Could not load 'hydra/launcher/joblib'")."""
    import importlib.util

    for arg in argv:
        for preset, (module, extra) in PLUGINS.items():
            if arg.lstrip("+").startswith(preset.lstrip("+")):
                if importlib.util.find_spec(module) is None:
                    return (f"{arg}: needs the Hydra plugin {module.split('.')[-1]}, which is "
                            f"not installed; install it with: pip install \"spatialdtp[{extra}]\"")
    return None


ConfigStore.instance().store(group="hydra/help", name="spatialdtp", node={
    "app_name": "spatialdtp-run", "header": "", "footer": "", "template": help_text()})


def main() -> None:
    from . import __version__

    if "--version" in sys.argv[1:]:
        print(f"spatialdtp {__version__} (Hydra {hydra.__version__})")
        return
    hint = missing_plugin(sys.argv[1:])
    if hint:
        print(f"spatialdtp-run: {hint}", file=sys.stderr)
        raise SystemExit(2)
    sys.argv = _accept_plus_resume(sys.argv)
    app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")(_job)
    app()


if __name__ == "__main__":
    main()
