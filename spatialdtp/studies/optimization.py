"""An Optuna schedule study read back from its sweep directory: history and best schedule.

``spatialdtp-run -m +optimize=intermittent`` (or ``adaptive``) runs Hydra's Optuna sweeper:
each trial is one job of the sweep, whose overrides are the trial's parameters and whose
returned value is :func:`spatialdtp.objective.objective_value` of its run. The values are
recomputed here from the run files with the same function, so a study that is still
running, or was stopped, is read the same way as a finished one. Hydra's own
``optimization_results.yaml`` (written when the study ends) is copied into the best
schedule file when present.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from .sweeps import OPTUNA_RESULTS_FILE, Sweep, _load_yaml, parse_overrides

HISTORY_FILE = "optimization_history.csv"
BEST_FILE = "best_schedule.yaml"


def direction(sweep: Sweep) -> str:
    """"maximize" or "minimize" (the study's direction; multi-objective is refused)."""
    d = (sweep.settings.get("sweeper") or {}).get("direction", "minimize")
    if isinstance(d, (list, tuple)):
        raise ValueError(f"hydra.sweeper.direction={d!r}: only single-objective studies "
                         "are summarised")
    return str(d).lower()


def searched_params(sweep: Sweep) -> list[str]:
    """The searched keys: ``hydra.sweeper.params`` and override keys that differ between
    trials (search ranges given on the command line)."""
    keys = list(((sweep.settings.get("sweeper") or {}).get("params") or {}).keys())
    seen: dict[str, set] = {}
    for job in sweep.jobs:
        for k, v in parse_overrides(job.overrides).items():
            seen.setdefault(k, set()).add(repr(v))
    keys += [k for k, vals in seen.items() if len(vals) > 1 and k not in keys]
    return keys


def study_history(sweep: Sweep, params: Sequence[str] | None = None):
    """One row per trial (a pandas DataFrame): ``trial``, ``status``, each parameter,
    ``objective``, ``time_to_progression_days``, ``plasma_exposure`` (µM·day),
    ``over_cap`` (exposure above ``objective.dose_cap``), ``error``, ``dir``."""
    import pandas as pd

    params = searched_params(sweep) if params is None else list(params)
    rows = []
    for job in sweep.jobs:
        if job.status == "pending":
            continue
        over = parse_overrides(job.overrides)
        exposure = sum(job.exposure.values()) if job.exposure else math.nan
        cap = (job.config.get("objective") or {}).get("dose_cap")
        row = {"trial": job.num, "status": job.status}
        row.update({p: over.get(p, job.value(p)) for p in params})
        row.update({
            "objective": job.objective,
            "time_to_progression_days": job.summary.get("time_to_progression_days", math.nan),
            "plasma_exposure": exposure,
            "dose_cap": math.nan if cap is None else float(cap),
            "over_cap": bool(cap is not None and exposure > cap),
            "error": job.error,
            "dir": "" if job.dir is None else job.dir.relative_to(sweep.dir).as_posix(),
        })
        rows.append(row)
    columns = ["trial", "status", *params, "objective", "time_to_progression_days",
               "plasma_exposure", "dose_cap", "over_cap", "error", "dir"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["trial"] = frame["trial"].astype("Int64")
    return frame


def best_schedule(sweep: Sweep, history=None) -> dict:
    """The best complete trial: its parameters, value, run and the drug schedules of its
    run's config (ready to copy into a treatment preset). Raises ValueError if no trial
    has a value yet."""
    history = study_history(sweep) if history is None else history
    way = direction(sweep)
    done = history[(history["status"] == "complete") & history["objective"].notna()]
    if done.empty:
        raise ValueError(f"{sweep.dir}: no complete trial with a value yet")
    k = done["objective"].idxmax() if way == "maximize" else done["objective"].idxmin()
    row = done.loc[k]
    job = next(j for j in sweep.jobs if j.num == int(row["trial"]))
    params = searched_params(sweep)
    drugs = ((job.config.get("treatment") or {}).get("drugs") or {})
    out = {
        "direction": way,
        "best_value": float(row["objective"]),
        "trial": int(row["trial"]),
        "params": {p: _plain(row[p]) for p in params},
        "time_to_progression_days": _plain(row["time_to_progression_days"]),
        "plasma_exposure": _plain(row["plasma_exposure"]),
        "objective": job.config.get("objective"),
        "schedule": {name: d.get("schedule") for name, d in drugs.items()},
        "run_file": None if job.run_file is None else
        job.run_file.relative_to(sweep.dir).as_posix(),
        "trials": {s: int((history["status"] == s).sum()) for s in
                   sorted(set(history["status"]))},
    }
    results = sweep.dir / OPTUNA_RESULTS_FILE
    if results.exists():
        out["optuna_results"] = _load_yaml(results)
    return out


def _plain(value):
    """numpy/pandas scalars to plain Python for YAML; NaN stays a float."""
    if hasattr(value, "item"):
        value = value.item()
    return value


def write_study(sweep: Sweep, out_dir, plot: bool = True) -> list[Path]:
    """Write ``optimization_history.csv``, ``best_schedule.yaml`` and (with ``plot``)
    ``optimization.png`` into ``out_dir``; return the paths written."""
    import yaml

    out_dir = Path(out_dir)
    params = searched_params(sweep)
    history = study_history(sweep, params)
    written = [out_dir / HISTORY_FILE]
    history.to_csv(written[0], index=False)
    try:
        best = best_schedule(sweep, history)
    except ValueError:
        best = None
    if best is not None:
        path = out_dir / BEST_FILE
        path.write_text(yaml.safe_dump(best, sort_keys=False), encoding="utf-8")
        written.append(path)
    if plot:
        from .sweep_plots import plot_optimization

        path = out_dir / "optimization.png"
        plot_optimization(history, params, direction(sweep), path,
                          title=f"{sweep.dir.name}: {len(history)} trials")
        written.append(path)
    return written
