"""The plain files written beside a run file, for readers that want JSON and tables rather
than HDF5 (``json.load``, ``pandas.read_csv``):

- ``<stem>_summary.json``: ``{"summary": {key: value}, "units": {key: unit},
  "observable_units": {column: unit}, "run_file": name, "spatialdtp_version": v}``; a
  value that is undefined (NaN: no progression, no persisters) is ``null``; the one text
  value, ``solver_warning``, names the substrates with unconverged solves ("" if none).
- ``<stem>_observables.csv``: one row per step, columns ``day``, ``time`` (min) and every
  observable (units in the JSON's ``observable_units``); ``<stem>_observables.parquet`` too
  when pyarrow is installed.

``<stem>`` is the run file's name without ``.h5`` (``run`` for the CLI's ``run.h5``), so
several run files in one directory keep their own outputs.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .summary import summary_unit


def output_paths(run_file) -> dict[str, Path]:
    run_file = Path(run_file)
    stem = run_file.with_name(run_file.stem)
    return {kind: Path(f"{stem}_{name}") for kind, name in (
        ("summary_json", "summary.json"), ("observables_csv", "observables.csv"),
        ("observables_parquet", "observables.parquet"), ("summary_png", "summary.png"))}


def _json_value(v):
    if isinstance(v, str):      # solver_warning: a sentence, or "" when every solve converged
        return v
    v = float(v)
    return None if math.isnan(v) else v


def write_outputs(run_file, summary: dict, table, observable_units: dict) -> list[Path]:
    """Write the summary JSON and the observables table (a DataFrame) beside ``run_file``."""
    from .. import __version__

    paths = output_paths(run_file)
    doc = {"run_file": Path(run_file).name, "spatialdtp_version": __version__,
           "summary": {k: _json_value(v) for k, v in summary.items()},
           "units": {k: summary_unit(k) for k in summary},
           "observable_units": {"day": "days", "time": "min", **observable_units}}
    paths["summary_json"].write_text(json.dumps(doc, indent=2) + "\n")
    table.to_csv(paths["observables_csv"], index=False)
    written = [paths["summary_json"], paths["observables_csv"]]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    table.to_parquet(paths["observables_parquet"], index=False)
    return written + [paths["observables_parquet"]]
