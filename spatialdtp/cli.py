"""``spatialdtp-run``: the Hydra application, and the only module that imports Hydra.

    spatialdtp-run                                   # the default 2D demo on the CPU
    spatialdtp-run treatment=intermittent run.days=42 grid.shape=[256,256]
    spatialdtp-run -m treatment=continuous,intermittent,adaptive seed=0,1,2
    spatialdtp-run +resume=outputs/2026-11-21/12-00-00/run.h5 run.days=60

Before Hydra creates a run directory, :func:`main` composes the config itself and checks
everything a run can be refused for (:func:`preflight`): the overrides, every value, the
tissue files, the backend, memory, the run directory and run file, the file ``+resume``
names. A refusal is one line on stderr and exit code 2; nothing is written. A single run
then reuses the simulation the check built. A sweep is refused only when every job would
be (its jobs are checked without the backend and memory, which belong to the machines
that run them); a job that fails on its own records its error in its ``cli.log``.

Exit codes: 0 complete, 2 refused input, 3 a field became non-finite, 4 the run file could
not be written (a full disk), 130 interrupted (Ctrl-C, SIGTERM), 1 a sweep with failed jobs.

The other faces use Hydra through this module: :func:`compose` (the Python API's configs)
and :func:`expand_basic_sweep` (the jobs a sweep has planned, for ``spatialdtp-summarize``).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Iterable

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from .config import ConfigError, SpatialDTPConfig, to_dict
from .help import help_text
from .resources import conf_dir
from .units import MINUTES_PER_DAY

log = logging.getLogger("spatialdtp")

ConfigStore.instance().store(name="spatialdtp_schema", node=SpatialDTPConfig)
# ``${sdtp.unique:}`` in conf/config.yaml's run and sweep directories: a token drawn once
# per config (OmegaConf caches it with the config, so every job and copy agrees), so that
# runs started in the same second get their own directories.
OmegaConf.register_new_resolver("sdtp.unique", lambda: secrets.token_hex(3), use_cache=True,
                                replace=True)

EXIT_INPUT, EXIT_NONFINITE, EXIT_WRITE, EXIT_INTERRUPTED = 2, 3, 4, 130


def to_config(cfg: DictConfig) -> SpatialDTPConfig:
    """The typed config of a composed one; a key without a value (``???``) or a value that
    does not fit its type is one ConfigError."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]}: has no value (???); the presets chosen need it set, "
                          f"e.g. {missing[0]}=<value>")
    try:
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(_omegaconf_message(exc)) from None


class _Prepared:
    """The simulation the pre-flight check built, kept for the run that follows in this
    process (matched by its config)."""
    key: str | None = None
    sim = None
    #: warnings the preparation raised, given again by the run once cli.log is open
    warnings: list = []


def _fingerprint(config: SpatialDTPConfig) -> str:
    import yaml

    return yaml.safe_dump(to_dict(config), sort_keys=True)


def _take_prepared(config: SpatialDTPConfig):
    sim, key, caught = _Prepared.sim, _Prepared.key, _Prepared.warnings
    _Prepared.sim = _Prepared.key = None
    _Prepared.warnings = []
    if sim is None or key != _fingerprint(config):
        return None
    _warn_again(caught)   # into the job's log (captureWarnings) as well as the terminal
    return sim


def _warn_again(caught) -> None:
    import warnings

    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _run(cfg: DictConfig):
    from .run.preflight import prepare_resume, prepare_run
    from .run.runfile import RunFileBusy, RunFileExists, RunFileWriteError
    from .run.simulation import NonFiniteError, RunInterrupted
    from .run.summary import format_summary
    from .studies.objective import objective_value

    # warnings.warn (density scaled to capacity, unmapped labels, ...) through logging, so
    # that they reach cli.log as well as the terminal
    logging.captureWarnings(True)
    try:
        config = to_config(cfg)
        sim = _take_prepared(config)
        if config.resume:
            _refuse_ignored_overrides()
            days = config.run.days if _overridden("run.days") else None
            if sim is None:
                sim = prepare_resume(config.resume, days)[0]
            path = Path(config.resume)
            log.info("resuming %s at t = %.3f days", path, sim.t / MINUTES_PER_DAY)
        else:
            path = Path(HydraConfig.get().runtime.output_dir) / config.run.output
            if sim is None:
                sim = prepare_run(config, path)
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
        raise SystemExit(EXIT_INPUT) from None
    except (RunFileBusy, RunFileExists) as err:   # lost a race with another run
        log.error("%s", err)
        raise SystemExit(EXIT_INPUT) from None
    except RunInterrupted as err:
        log.warning("%s", err)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except NonFiniteError as err:
        log.error("%s", err)
        raise SystemExit(EXIT_NONFINITE) from None
    except RunFileWriteError as err:
        log.error("%s; the file keeps what was written before (resume it with "
                  "+resume=%s once there is room)", err, path)
        raise SystemExit(EXIT_WRITE) from None
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
        if stop.code in (EXIT_INPUT, EXIT_NONFINITE, EXIT_WRITE) and _multirun():
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


def _refuse_ignored_overrides(task_overrides=None) -> None:
    if task_overrides is None:
        task_overrides = HydraConfig.get().overrides.task
    keys = [o.split("=", 1)[0].lstrip("+~") for o in task_overrides]
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


# ----------------------------------------------------------------------- pre-flight
def _one_line(text: str) -> str:
    """Hydra's multi-line messages as one line: option lists kept, search paths dropped."""
    lines, skip = [], False
    for line in str(text).splitlines():
        line = line.strip()
        if line.startswith("Config search path"):
            skip = True
        if skip or not line or line.startswith("See https://") or \
                line.startswith("Set the environment variable HYDRA_FULL_ERROR"):
            continue
        lines.append(line)
    return "; ".join(lines)


def _omegaconf_message(exc: BaseException) -> str:
    key = getattr(exc, "full_key", None)
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{key}: {reason}" if key else reason


def _composition_error(exc: BaseException) -> ConfigError:
    """One ConfigError out of what Hydra raises while composing."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    from .config.schema import unknown_key_message

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and \
            getattr(cause, "full_key", None):
        return ConfigError(unknown_key_message(cause.full_key))
    if isinstance(cause, OmegaConfBaseException):
        override = _one_line(exc).replace("Error merging override ", "")
        return ConfigError(f"{override}: {_omegaconf_message(cause).split(': ', 1)[-1]}")
    text = str(exc)
    if "Could not find" in text and "Available options in" in text:
        first = text.splitlines()[0].split("Could not find", 1)[1].strip().strip("'")
        options = [line.strip() for line in text.split("Available options in", 1)[1]
                   .split("Config search path")[0].splitlines()[1:] if line.strip()]
        group, _, name = first.rpartition("/")
        return ConfigError(f"{group}={name}: no such preset; the presets of {group} are "
                           f"{options}")
    return ConfigError(_one_line(exc))


@contextlib.contextmanager
def _hydra_of(args):
    """Hydra's config loader, set up as ``hydra.main`` sets it up for ``args``."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra

    config_path = args.config_path if args.config_path is not None else str(conf_dir())
    search_path = create_automatic_config_search_path(__file__, None, config_path)
    if args.config_dir is not None:
        extra = os.path.abspath(args.config_dir)
        if not os.path.isdir(extra):
            raise ConfigError(f"--config-dir={args.config_dir!r}: no such directory")
        search_path.prepend(provider="command-line", path=f"file://{extra}",
                            anchor=SearchPathQuery(provider="schema"))
    try:
        yield Hydra.create_main_hydra2(task_name="cli", config_search_path=search_path)
    finally:
        GlobalHydra.instance().clear()


def _compose(hydra_app, config_name, overrides, mode):
    from hydra.errors import HydraException

    try:
        return hydra_app.compose_config(config_name=config_name, overrides=list(overrides),
                                        run_mode=mode, from_shell=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise _composition_error(exc) from None


def _task_config(cfg: DictConfig) -> SpatialDTPConfig:
    task = copy.deepcopy(cfg)
    with open_dict(task):
        del task["hydra"]
    return to_config(task)


def preflight(argv: list[str]) -> None:
    """Every check a run can be refused for, before Hydra writes anything (ConfigError).

    Help, ``--cfg``, ``--info`` and shell completion pass through untouched; so do command
    lines Hydra's own parser refuses (it prints its usage)."""
    from hydra._internal.utils import get_args_parser
    from hydra.types import RunMode

    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:
        return
    if (args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
            or getattr(args, "experimental_rerun", None)):
        return
    config_name = args.config_name or "config"
    with _hydra_of(args) as hydra_app:
        mode = hydra_app.get_mode(config_name=config_name, overrides=args.overrides)
        if args.multirun or mode == RunMode.MULTIRUN:
            _preflight_sweep(hydra_app, config_name, args.overrides)
        else:
            _preflight_run(hydra_app, config_name, args.overrides)


def _preflight_run(hydra_app, config_name, overrides):
    from hydra.types import RunMode

    cfg = _compose(hydra_app, config_name, overrides, RunMode.RUN)
    HydraConfig.instance().set_config(cfg)
    try:
        run_dir = str(OmegaConf.select(cfg, "hydra.run.dir"))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"hydra.run.dir: {_omegaconf_message(exc)}") from None
    import warnings

    config = _task_config(cfg)
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sim = _prepare(config, cfg, run_dir)
    except BaseException:      # the warnings that came before the error, then the error
        _warn_again(caught)
        raise
    _Prepared.sim, _Prepared.key, _Prepared.warnings = sim, _fingerprint(config), caught


def _prepare(config, cfg, run_dir):
    from .run.preflight import check_resume_file, prepare_resume, prepare_run

    if config.resume:
        report = check_resume_file(config.resume)     # the file first: is it resumable?
        task = list(cfg.hydra.overrides.task)
        _refuse_ignored_overrides(task)
        days = config.run.days if any(o.split("=", 1)[0].lstrip("+~") == "run.days"
                                      for o in task) else None
        return prepare_resume(config.resume, days, report)[0]
    return prepare_run(config, Path(run_dir) / config.run.output)


#: a sweep of at most this many jobs has every job checked up front; a larger one only its
#: first and last (composing one job takes ~0.1 s)
PREFLIGHT_ALL_JOBS = 100


def _preflight_sweep(hydra_app, config_name, overrides):
    """Refuse a sweep every job of which would be refused; warn about the jobs that
    will fail on their own. Jobs run elsewhere (a cluster node), so their backend and
    memory are not checked here."""
    from hydra.types import RunMode

    from .config import validate
    from .model.grid import Grid
    from .model.tissue import check_files
    from .run.preflight import check_run_dir
    from .run.simulation import capacity_of

    cfg = _compose(hydra_app, config_name, overrides, RunMode.MULTIRUN)
    HydraConfig.instance().set_config(cfg)
    try:
        check_run_dir(str(OmegaConf.select(cfg, "hydra.sweep.dir")), key="hydra.sweep.dir")
    except OmegaConfBaseException as exc:
        raise ConfigError(f"hydra.sweep.dir: {_omegaconf_message(exc)}") from None
    searched = set((OmegaConf.select(cfg, "hydra.sweeper.params") or {}).keys())
    basic = "BasicSweeper" in str(OmegaConf.select(cfg, "hydra.sweeper._target_") or "")
    jobs = expand_basic_sweep(overrides) if basic else None
    if jobs is None:   # another sweeper (Optuna) or glob(): the overrides without sweeps
        jobs = [[o for o in overrides if not _is_sweep(o)]]
    picked = list(enumerate(jobs)) if len(jobs) <= PREFLIGHT_ALL_JOBS else \
        [(0, jobs[0]), (len(jobs) - 1, jobs[-1])]
    errors = []
    for k, (number, job) in enumerate(picked):
        try:
            config = _task_config(_compose(hydra_app, config_name, job, RunMode.RUN))
            validate(config)
            if k == 0:
                check_files(config.tissue, Grid(tuple(config.grid.shape), config.grid.dx),
                            capacity_of(config))
        except ConfigError as err:
            key = str(err).split(":", 1)[0].split("=", 1)[0]
            if key not in searched:     # a searched key's value comes from the sweeper
                errors.append((number, str(err)))
    if errors and len(errors) == len(picked) and (
            len(picked) == len(jobs) or len({e for _, e in errors}) == 1):
        raise ConfigError(f"every job of the sweep would be refused: {errors[0][1]}")
    for number, err in errors:
        print(f"spatialdtp-run: job {number} will fail: {err}", file=sys.stderr)


def _is_sweep(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_overrides([override])[0].is_sweep_override()
    except Exception:  # noqa: BLE001 - Hydra reports a bad override itself
        return False


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
    try:
        preflight(sys.argv[1:])
    except ConfigError as err:
        print(f"spatialdtp-run: error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT) from None
    app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")(_job)
    app()


if __name__ == "__main__":
    main()
