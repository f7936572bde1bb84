"""A sweep's report: its table (``summary.csv``), comparison plots and printed summary.

What ``spatialdtp-summarize`` writes (:func:`summarize_sweep`) into the sweep directory (or
``--out``): ``summary.csv`` (and ``summary.parquet``
when pyarrow is installed), one row per job (:func:`.sweeps.table`);
``burden_curves.png`` and ``time_to_progression.png``; with ``--sensitivity KEY``,
``sensitivity.png`` (KEY against each swept numeric key); for an Optuna study also
``optimization_history.csv``, ``best_schedule.yaml`` and ``optimization.png``. Prints a
per-group table and every run that failed (with its error), is still running or has not
started. Works on a sweep that is still running: run it again to refresh.
"""
from __future__ import annotations

import math
from pathlib import Path

from .sweeps import STATUSES, Sweep, gather, group_table, table

SUMMARY_CSV = "summary.csv"
SUMMARY_PARQUET = "summary.parquet"


def _parquet_safe(frame):
    """Parquet needs one type per column: override columns mixing numbers and text
    (e.g. ``x=1`` in one job and ``x=auto`` in another) are written as text."""
    frame = frame.copy()
    for name in frame.columns:
        if frame[name].dtype == object:
            kinds = {type(v) for v in frame[name] if v is not None and v == v}
            if len(kinds) > 1:
                frame[name] = frame[name].map(lambda v: None if v is None or v != v else str(v))
    return frame


def write_table(frame, out_dir: Path) -> list[Path]:
    """``summary.csv``, plus ``summary.parquet`` if pyarrow is importable."""
    written = [out_dir / SUMMARY_CSV]
    frame.to_csv(written[0], index=False)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    path = out_dir / SUMMARY_PARQUET
    _parquet_safe(frame).to_parquet(path, index=False)
    written.append(path)
    return written


def _fmt(value, digits=4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def report(sweep: Sweep, by) -> str:
    """The text printed: counts by status, the per-group table, failed and unfinished runs."""
    lines = [f"sweep {sweep.dir}: {len(sweep.jobs)} jobs"]
    counts = {s: len(sweep.by_status(s)) for s in STATUSES}
    lines.append("  " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    groups = group_table(sweep, by)
    if len(groups):
        head = ["group", "runs", "complete", "progressed", "median TTP (d)", "nadir/base",
                "final/base", "objective"]
        body = [[_fmt(r.group), str(r.runs), str(r.complete), str(r.progressed),
                 _fmt(r.median_ttp_days) if not math.isnan(r.median_ttp_days) else "not reached",
                 _fmt(r.median_nadir_fraction, 3), _fmt(r.median_final_fraction, 3),
                 _fmt(r.median_objective)] for r in groups.itertuples()]
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        lines.append("")
        lines.append(f"by {', '.join(by)} (TTP: Kaplan–Meier median, unfinished runs censored; "
                     "other columns: medians over complete runs):")
        for row in [head, *body]:
            lines.append("  " + "  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
    if sweep.is_optuna:
        from .optimization import best_schedule

        try:
            best = best_schedule(sweep)
        except ValueError:
            best = None
        if best is not None:
            lines.append("")
            lines.append(f"best trial #{best['trial']} ({best['direction']}): objective "
                         f"{_fmt(best['best_value'])}")
            for key, value in best["params"].items():
                lines.append(f"  {key}={_fmt(value)}")
    failed = sweep.by_status("failed")
    if failed:
        lines.append("")
        lines.append(f"failed ({len(failed)}):")
        for job in failed:
            lines.append(f"  #{job.num} {' '.join(job.overrides)}")
            lines.append(f"      {job.error or 'no error recorded'}")
            if job.run_file is not None:
                lines.append(f"      run file {job.run_file} (spatialdtp-run +resume=... "
                             "continues it from its last checkpoint)")
    unfinished = [j for j in sweep.jobs if j.status in ("running", "interrupted", "started",
                                                        "pending")]
    if unfinished:
        lines.append("")
        lines.append(f"not finished ({len(unfinished)}):")
        for job in unfinished:
            where = f"day {job.days:.3g}" if math.isfinite(job.days) else "no run file yet"
            extra = "" if job.status == "pending" else f", {where}, updated {job.updated}"
            lines.append(f"  #{job.num} {job.status}{extra}: {' '.join(job.overrides)}")
    return "\n".join(lines)


def summarize_sweep(sweep_dir, out=None, by=("treatment",), plots: bool = True, expand=None,
                    sensitivity: str | None = None) -> tuple[Sweep, list[Path]]:
    """Gather a sweep and write its table, plots and (for Optuna) study files; ``expand``
    lists the jobs a basic sweep has planned (see :func:`.sweeps.planned_overrides`);
    ``sensitivity`` (a summary key) adds ``sensitivity.png``, that key against every
    numeric key the sweep varies."""
    sweep = gather(sweep_dir, keep_curves=plots, expand=expand)
    out_dir = Path(out) if out is not None else sweep.dir
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = table(sweep, by)
    written = write_table(frame, out_dir)
    if plots and sensitivity:
        from .sweep_plots import plot_sensitivity

        plot_sensitivity(sweep, frame, sensitivity, out_dir / "sensitivity.png")
        written.append(out_dir / "sensitivity.png")
    if plots:
        from .sweep_plots import plot_burden_curves, plot_progression

        for name, draw in (("burden_curves.png", plot_burden_curves),
                           ("time_to_progression.png", plot_progression)):
            draw(sweep, by, out_dir / name)
            written.append(out_dir / name)
    if sweep.is_optuna:
        from .optimization import write_study

        written += write_study(sweep, out_dir, plot=plots)
    return sweep, written
