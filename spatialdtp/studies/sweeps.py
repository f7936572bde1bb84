"""A sweep's runs gathered into one table: what ``spatialdtp-summarize`` reads.

A Hydra multirun (``spatialdtp-run -m ...``) writes one directory per job under the sweep
directory (``hydra.sweep.dir``), each with ``.hydra/{config,hydra,overrides}.yaml``, the
job's log (``cli.log``) and, once the simulation starts, its run file (``run.h5``). The
sweep directory holds ``multirun.yaml`` (the sweep's overrides) and, after an Optuna
study, ``optimization_results.yaml``.

Every job becomes one row, whatever state it is in (``status``):

============  ===========================================================================
complete      the run file says so; its ``/summary`` attributes are the row's values
running       the run file is still being written (or its process was killed: look at
              ``updated``); values are computed from the observables written so far
interrupted   stopped by Ctrl-C/SIGTERM (a cluster's time limit); values so far, and
              ``+resume=<run file>`` continues it
failed        the run file says ``failed: ...`` or the job's log has an ERROR record
              (configuration errors stop a job before any run file is written); ``error``
              says why
started       a job directory without a run file or an error yet (setting up)
pending       planned by the basic sweeper (from ``multirun.yaml``) but not started: the
              sweep is still running, or it stopped before reaching the job
============  ===========================================================================

Values are in the run file's units: cells (burden, P, R), days (times, since treatment
start), µM·day (``plasma_exposure_<drug>``: ∫ plasma level dt, see
:mod:`spatialdtp.objective`).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ..run.summary import summary_unit
from ..units import is_sub_cell

MINUTES_PER_DAY = 1440.0
STATUSES = ("complete", "running", "interrupted", "failed", "started", "pending")
MULTIRUN_FILE = "multirun.yaml"
OPTUNA_RESULTS_FILE = "optimization_results.yaml"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# Summary keys first in the table, in this order (then the rest, alphabetically).
SUMMARY_ORDER = ("time_to_progression_days", "nadir", "nadir_fraction", "nadir_day",
                 "final_burden", "final_fraction", "final_P", "final_R",
                 "final_persister_fraction", "final_resistant_fraction", "final_niche_contrast",
                 "baseline_burden", "progression_threshold", "mrd_reached",
                 "treatment_start_day")
# Curves kept per run for the comparison plots (cells, against days since treatment start).
CURVES = ("burden", "P", "R")
# A log record of Hydra's default job logging: "[2026-01-01 12:00:00,000][name][ERROR] - msg"
_LOG_RECORD = re.compile(r"^\[[^\]]*\]\[[^\]]*\]\[(?P<level>[A-Z]+)\] - (?P<msg>.*)$")

try:  # the C loader reads Hydra's per-job YAML ~10x faster: it matters for 1000-run sweeps
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _YamlLoader


def _load_yaml(path: Path):
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_YamlLoader)


@dataclass
class Job:
    """One job of a sweep, read from its directory (or planned but not started)."""

    num: Optional[int]                    # Hydra's job number (the trial number for Optuna)
    dir: Optional[Path]                   # None for a pending job
    overrides: list[str]                  # the job's command-line overrides, "key=value"
    status: str                           # one of STATUSES
    error: str = ""                       # why it failed
    run_file: Optional[Path] = None
    choices: dict = field(default_factory=dict)   # config group -> preset (Hydra's runtime choices)
    config: dict = field(default_factory=dict)    # the composed config of the job
    updated: Optional[str] = None          # ISO 8601 UTC of the run file's (or directory's) last change
    summary: dict = field(default_factory=dict)   # end-of-run (or so-far) summary
    days: float = math.nan                 # simulated days reached
    exposure: dict = field(default_factory=dict)  # drug -> plasma exposure, µM·day
    objective: float = math.nan            # what the job returned (or would return) to the sweeper
    curves: Optional[dict] = None          # "days" (since treatment start) and CURVES, for plots

    def value(self, key: str):
        """The job's value of a config key: its override, else the group's preset (for a
        group such as ``treatment``), else the composed config's value (dotted keys)."""
        over = parse_overrides(self.overrides)
        if key in over:
            return over[key]
        if key in self.choices:
            return self.choices[key]
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


# --------------------------------------------------------------------------- overrides
def _scalar(text: str):
    """An override's value as the table shows it: int, float, or the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["treatment=adaptive", "+seed=3", "~x"]`` -> ``{"treatment": "adaptive", "seed": 3}``
    (deletions ``~key`` are left out; ``+``/``++`` prefixes dropped)."""
    out = {}
    for item in overrides:
        if item.startswith("~") or "=" not in item:
            continue
        key, value = item.split("=", 1)
        out[key.lstrip("+")] = _scalar(value)
    return out


# --------------------------------------------------------------------------- job state
def _log_errors(job_dir: Path) -> list[str]:
    """First lines of the ERROR/CRITICAL records in the job's Hydra log files."""
    errors = []
    for log in sorted(job_dir.glob("*.log")):
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            m = _LOG_RECORD.match(line)
            if m and m.group("level") in ("ERROR", "CRITICAL"):
                errors.append(m.group("msg").strip())
    return errors


def _iso(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run_config_objects(config: dict):
    """(RunConfig, ObjectiveConfig, treatment start in minutes) of a stored config dict."""
    from ..config import from_dict
    from ..run.simulation import treatment_start_minutes

    cfg = from_dict(config)
    return cfg.run, cfg.objective, treatment_start_minutes(cfg)


def _read_run_file(job: Job, keep_curves: bool) -> None:
    """Fill status, summary, exposure, objective and curves from the job's run file."""
    import yaml

    from ..config import ObjectiveConfig
    from ..run.runfile import read_observables, read_run
    from ..run.summary import summarize
    from .objective import objective_value, plasma_exposure

    run = read_run(job.run_file)
    status = str(run.attrs.get("status", "running"))
    if status.startswith("failed"):
        job.status = "failed"
        job.error = status.split(":", 1)[1].strip() if ":" in status else status
    elif status in ("running", "complete", "interrupted"):
        job.status = status
    else:
        job.status, job.error = "failed", f"unknown run file status {status!r}"
    obs = read_observables(job.run_file)
    t = obs["time"]
    if t.size == 0:
        return
    job.days = float(t[-1]) / MINUTES_PER_DAY
    config = yaml.load(run.config, Loader=_YamlLoader)
    if run.summary and job.status == "complete":
        summary = dict(run.summary)
        objective = ObjectiveConfig(**config.get("objective", {}))
        start_min = float(summary.get("treatment_start_day", 0.0)) * MINUTES_PER_DAY
    else:
        # A run still going (or stopped early): the same summary over what it has so far.
        run_cfg, objective, start_min = _run_config_objects(config)
        try:
            summary = summarize(t, obs, run_cfg, start_min)
        except ValueError:   # not yet at treatment start
            summary = {}
    job.summary = summary
    job.exposure = plasma_exposure(obs)
    if summary:
        try:
            job.objective = objective_value(objective, summary, obs)
        except ValueError:
            job.objective = math.nan
    if keep_curves:
        job.curves = {"days": (t - start_min) / MINUTES_PER_DAY,
                      **{k: obs[k] for k in CURVES if k in obs},
                      "baseline": float(summary.get("baseline_burden", math.nan))}


def read_job(job_dir, keep_curves: bool = True) -> Job:
    """A job from its directory (the one holding ``.hydra/``)."""
    job_dir = Path(job_dir)
    hydra_dir = job_dir / ".hydra"
    overrides = _load_yaml(hydra_dir / "overrides.yaml") if (hydra_dir / "overrides.yaml").exists() else []
    num, choices, config = None, {}, {}
    if (hydra_dir / "hydra.yaml").exists():
        hydra_cfg = (_load_yaml(hydra_dir / "hydra.yaml") or {}).get("hydra", {})
        num = hydra_cfg.get("job", {}).get("num")
        choices = {k: v for k, v in hydra_cfg.get("runtime", {}).get("choices", {}).items()
                   if not k.startswith("hydra/")}
    if (hydra_dir / "config.yaml").exists():
        config = _load_yaml(hydra_dir / "config.yaml") or {}
    output = (config.get("run") or {}).get("output", "run.h5")
    if not str(num).isdigit():             # a single run's hydra.yaml has num: ???
        num = None
    job = Job(num=None if num is None else int(num), dir=job_dir, overrides=list(overrides or []),
              status="started", choices=choices, config=config)
    run_file = job_dir / output
    job.updated = _iso((run_file if run_file.exists() else job_dir).stat().st_mtime)
    if run_file.exists():
        from ..run.runfile import is_run_file

        if is_run_file(run_file):
            job.run_file = run_file
            try:
                _read_run_file(job, keep_curves)
            except (OSError, KeyError, ValueError):   # caught mid-creation: try again later
                job.status, job.error, job.summary = "started", "", {}
    errors = _log_errors(job_dir)
    if errors and job.status != "failed":
        job.status = "failed"
    if errors and not job.error:
        job.error = errors[-1]
    return job


# --------------------------------------------------------------------------- the sweep
def job_dirs(sweep_dir) -> list[Path]:
    """Directories under ``sweep_dir`` that hold a job (a ``.hydra/overrides.yaml``),
    submitit's own folders excluded."""
    sweep_dir = Path(sweep_dir)
    found = []
    for overrides in sweep_dir.rglob(".hydra/overrides.yaml"):
        job_dir = overrides.parent.parent
        if job_dir == sweep_dir or ".submitit" in job_dir.relative_to(sweep_dir).parts:
            continue
        found.append(job_dir)
    return found


def sweep_settings(sweep_dir, dirs: Sequence[Path] = ()) -> dict:
    """The sweep's ``hydra`` settings (sweeper, launcher, overrides): from ``multirun.yaml``,
    which the basic sweeper writes, else from the first job's ``.hydra/hydra.yaml`` (the
    Optuna sweeper writes no multirun.yaml); {} if neither exists yet."""
    path = Path(sweep_dir) / MULTIRUN_FILE
    if not path.exists():
        paths = [Path(d) / ".hydra" / "hydra.yaml" for d in dirs]
        path = next((p for p in sorted(paths) if p.exists()), None)
        if path is None:
            return {}
    return (_load_yaml(path) or {}).get("hydra", {}) or {}


def planned_overrides(sweep_dir, expand=None) -> Optional[list[list[str]]]:
    """Every job's overrides as the basic sweeper expands ``multirun.yaml`` (job number =
    list index), or None when the sweep is not a basic sweep (Optuna decides as it goes).

    ``expand(arguments)`` turns the sweep's override arguments into the jobs' overrides
    (Hydra's grammar: :func:`spatialdtp.cli.expand_basic_sweep`); without it no job is
    known to be pending.
    """
    settings = sweep_settings(sweep_dir)
    sweeper = settings.get("sweeper") or {}
    if sweeper.get("_target_") != BASIC_SWEEPER or expand is None:
        return None
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    return expand(params + list((settings.get("overrides") or {}).get("task") or []))


@dataclass
class Sweep:
    """Every job of a sweep directory, in job-number order."""

    dir: Path
    jobs: list[Job]
    settings: dict                         # the hydra node of multirun.yaml

    @property
    def sweeper(self) -> str:
        return str((self.settings.get("sweeper") or {}).get("_target_", ""))

    @property
    def is_optuna(self) -> bool:
        return "optuna" in self.sweeper.lower()

    def by_status(self, *statuses: str) -> list[Job]:
        return [j for j in self.jobs if j.status in statuses]


def gather(sweep_dir, keep_curves: bool = True, expand=None) -> Sweep:
    """Read every job of ``sweep_dir``; planned jobs not started yet are ``pending``
    (known through ``expand``, see :func:`planned_overrides`). A single run's directory
    (``outputs/DATE/TIME``, holding ``.hydra/``) is read as a sweep of that one job."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {os.fspath(sweep_dir)!r} does not exist")
    dirs = job_dirs(sweep_dir)
    if not dirs and (sweep_dir / ".hydra" / "overrides.yaml").exists():
        dirs = [sweep_dir]                 # a single run's directory: a sweep of one job
    jobs = [read_job(d, keep_curves) for d in dirs]
    if not jobs and not (sweep_dir / MULTIRUN_FILE).exists():
        raise ValueError(f"{os.fspath(sweep_dir)!r} is neither a sweep nor a run directory: "
                         f"it has no {MULTIRUN_FILE}, no .hydra/overrides.yaml and no job "
                         "directories (with .hydra/overrides.yaml)")
    seen = {j.num for j in jobs}
    for num, overrides in enumerate(planned_overrides(sweep_dir, expand) or []):
        if num not in seen:
            jobs.append(Job(num=num, dir=None, overrides=overrides, status="pending"))
    jobs.sort(key=lambda j: (j.num is None, j.num if j.num is not None else 0,
                             str(j.dir)))
    return Sweep(sweep_dir, jobs, sweep_settings(sweep_dir, dirs))


def group_label(job: Job, by: Sequence[str]) -> str:
    """``adaptive`` for one key, ``treatment=adaptive, seed=3`` for several."""
    values = [job.value(k) for k in by]
    if len(by) == 1:
        return str(values[0])
    return ", ".join(f"{k}={v}" for k, v in zip(by, values))


def table(sweep: Sweep, by: Sequence[str] = ()):
    """One row per job (a pandas DataFrame); the columns are described in the README.

    ``job``, ``status``, the ``by`` keys, one column per override key, ``days`` (simulated),
    every summary key, ``plasma_exposure_<drug>`` and ``plasma_exposure`` (µM·day),
    ``objective``, ``below_one_cell`` (the summary's cell counts above 0 and below one cell,
    space-separated), ``error``, ``dir`` (relative to the sweep), ``overrides``, ``updated``.
    """
    import pandas as pd

    override_keys: list[str] = []
    summary_keys: list[str] = []
    drugs: list[str] = []
    for job in sweep.jobs:
        for k in parse_overrides(job.overrides):
            if k not in override_keys:
                override_keys.append(k)
        for k in job.summary:
            if k not in summary_keys:
                summary_keys.append(k)
        for d in job.exposure:
            if d not in drugs:
                drugs.append(d)
    summary_keys.sort(key=lambda k: (SUMMARY_ORDER.index(k) if k in SUMMARY_ORDER else
                                     len(SUMMARY_ORDER), k))
    by_keys = [k for k in by if k not in override_keys]
    rows = []
    for job in sweep.jobs:
        over = parse_overrides(job.overrides)
        row = {"job": job.num, "status": job.status}
        row.update({k: job.value(k) for k in by_keys})
        row.update({k: over.get(k) for k in override_keys})
        row["days"] = job.days
        row.update({k: job.summary.get(k, math.nan) for k in summary_keys})
        row.update({f"plasma_exposure_{d}": job.exposure.get(d, math.nan) for d in drugs})
        row["plasma_exposure"] = sum(job.exposure.values()) if job.exposure else math.nan
        row["objective"] = job.objective
        # text, so that the count columns stay numbers for pandas
        row["below_one_cell"] = " ".join(k for k in summary_keys
                                         if is_sub_cell(job.summary.get(k), summary_unit(k)))
        row["error"] = job.error
        row["dir"] = "" if job.dir is None else job.dir.relative_to(sweep.dir).as_posix()
        row["overrides"] = " ".join(job.overrides)
        row["updated"] = job.updated or ""
        rows.append(row)
    columns = (["job", "status", *by_keys, *override_keys, "days", *summary_keys,
                *(f"plasma_exposure_{d}" for d in drugs), "plasma_exposure", "objective",
                "below_one_cell", "error", "dir", "overrides", "updated"])
    frame = pd.DataFrame(rows, columns=columns)
    frame["job"] = frame["job"].astype("Int64")
    return frame


# --------------------------------------------------------------------------- statistics
def kaplan_meier(times: Sequence[float], events: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier estimate of the fraction not yet progressed.

    ``times``: days to progression, or to the end of follow-up when ``events`` is False
    (censored). Returns step points ``(t, S)`` starting at ``(0, 1)``; S drops at each
    event time by the factor (1 − d/n) (d events among n still at risk).
    """
    t = np.asarray(times, dtype=np.float64)
    e = np.asarray(events, dtype=bool)
    keep = np.isfinite(t)
    t, e = t[keep], e[keep]
    xs, ys, s = [0.0], [1.0], 1.0
    for u in np.unique(t[e]):
        at_risk = np.sum(t >= u)
        d = np.sum((t == u) & e)
        s *= 1.0 - d / at_risk
        xs.append(float(u))
        ys.append(s)
    if t.size:
        xs.append(float(t.max()))
        ys.append(s)
    return np.asarray(xs), np.asarray(ys)


def km_median(times: Sequence[float], events: Sequence[bool]) -> float:
    """The first time the Kaplan–Meier curve reaches 0.5 or below; NaN if it never does."""
    xs, ys = kaplan_meier(times, events)
    below = np.nonzero(ys <= 0.5)[0]
    return float(xs[below[0]]) if below.size else math.nan


def progression_times(jobs: Sequence[Job]) -> tuple[np.ndarray, np.ndarray]:
    """(days, progressed) per job: the time to progression, or the days followed since
    treatment start when the tumour has not progressed (censored)."""
    times, events = [], []
    for job in jobs:
        ttp = float(job.summary.get("time_to_progression_days", math.nan))
        if math.isfinite(ttp):
            times.append(ttp)
            events.append(True)
        else:
            times.append(job.days - float(job.summary.get("treatment_start_day", 0.0)))
            events.append(False)
    return np.asarray(times, dtype=np.float64), np.asarray(events, dtype=bool)


def groups(sweep: Sweep, by: Sequence[str], statuses=("complete", "running", "interrupted")
           ) -> dict[str, list[Job]]:
    """Jobs with results, grouped by the values of the ``by`` keys (in job order)."""
    out: dict[str, list[Job]] = {}
    for job in sweep.jobs:
        if job.status in statuses and job.summary:
            out.setdefault(group_label(job, by), []).append(job)
    return out


def _median(values) -> float:
    """Median of the finite values (NaN if none), without numpy's all-NaN warning."""
    a = np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else math.nan


def group_table(sweep: Sweep, by: Sequence[str]):
    """Per group: runs with results, how many are complete and have progressed, the
    Kaplan–Meier median time to progression (days; NaN when not reached; runs still going
    count as censored at the day they reached), and over complete runs the median nadir and
    final burden (fractions of baseline) and median objective."""
    import pandas as pd

    rows = []
    for label, jobs in groups(sweep, by).items():
        times, events = progression_times(jobs)
        done = [j for j in jobs if j.status == "complete"]
        rows.append({
            "group": label, "runs": len(jobs), "complete": len(done),
            "progressed": int(events.sum()),
            "median_ttp_days": km_median(times, events),
            "median_nadir_fraction": _median([j.summary.get("nadir_fraction") for j in done]),
            "median_final_fraction": _median([j.summary.get("final_fraction") for j in done]),
            "median_objective": _median([j.objective for j in done]),
        })
    return pd.DataFrame(rows, columns=["group", "runs", "complete", "progressed",
                                       "median_ttp_days", "median_nadir_fraction",
                                       "median_final_fraction", "median_objective"])
