"""The experiments' face for notebooks and the shell.

    python -m spatialdtp.experiments SWEEP_DIR      # a sweep's read-outs and experiment.png

    >>> from spatialdtp import experiments as ex
    >>> run = ex.run_arm(ex.arms("niche")["section + continuous"], days=14)
    >>> ex.near_far(run)

The experiments themselves (arms, read-outs, figures) live in
:mod:`spatialdtp.studies.experiments` and are re-exported here; this face adds what needs
the command line's config composition, :func:`run_arm` (one arm in this process), and
:func:`main`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Sequence

from .studies.experiments import *  # noqa: F401,F403  (the read-outs, for notebooks)
from .studies.experiments import (
    EXPERIMENTS,
    ArmRun,
    load_sweep,
    plot_experiment,
    readout_table,
)


def run_arm(overrides: Iterable[str], days: float | None = None, arm: str = "") -> ArmRun:
    """Compose ``overrides`` (as on the command line), run ``days`` (default ``run.days``)
    in this process without a run file, and return the :class:`ArmRun`."""
    from . import api

    sim = api.simulation(list(overrides))
    sim.run_until(days=days, progress=False)
    return ArmRun.from_simulation(sim, arm)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spatialdtp.experiments",
        description="Read-outs and figure of an experiment sweep "
                    "(spatialdtp-run -m experiment=NAME).")
    parser.add_argument("sweep_dir", help="the multirun directory of the sweep")
    parser.add_argument("--experiment", choices=EXPERIMENTS,
                        help="default: from the jobs' experiment=... override")
    parser.add_argument("--out", help="figure path (default SWEEP_DIR/experiment.png)")
    args = parser.parse_args(argv)
    try:
        name, runs = load_sweep(args.sweep_dir, args.experiment)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: no complete run in {args.sweep_dir}", file=sys.stderr)
        return 2
    print(readout_table(name, runs))
    png = plot_experiment(name, runs, args.out or Path(args.sweep_dir) / "experiment.png")
    print(f"figure: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
