"""``spatialdtp-summarize DIR``: one table and comparison plots for a whole sweep, or for a
single run's directory.

    spatialdtp-summarize multirun/2026-11-21/12-00-00
    spatialdtp-summarize outputs/2026-11-21/12-00-00          # one run
    spatialdtp-summarize SWEEP --by treatment --by cells.switching.theta --out results/
    spatialdtp-summarize SWEEP --sensitivity final_niche_contrast

What it writes and prints is :mod:`spatialdtp.studies.sweep_report`.
"""
from __future__ import annotations

import argparse
import sys

from .cli import expand_basic_sweep
from .studies.sweep_report import report, summarize_sweep


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="spatialdtp-summarize",
        description="Gather every run of a sweep (spatialdtp-run -m ...), or one run, into "
                    "one table (summary.csv) and comparison plots.")
    parser.add_argument("sweep_dir", metavar="DIR",
                        help="the sweep directory (hydra.sweep.dir), e.g. "
                             "multirun/2026-11-21/12-00-00, or one run's directory "
                             "(hydra.run.dir), e.g. outputs/2026-11-21/12-00-00")
    parser.add_argument("--out", help="write the table and plots here (default: the sweep "
                                      "directory)")
    parser.add_argument("--by", action="append", metavar="KEY",
                        help="group runs by this config key (repeat for several; default: "
                             "treatment). A group (tissue, cells) or any dotted key "
                             "(cells.switching.theta)")
    parser.add_argument("--no-plots", action="store_true", help="write the table only")
    parser.add_argument("--sensitivity", metavar="KEY",
                        help="also plot this summary key (e.g. final_niche_contrast) against "
                             "every numeric key the sweep varies: sensitivity.png")
    args = parser.parse_args(argv)
    by = tuple(args.by or ("treatment",))
    try:
        sweep, written = summarize_sweep(args.sweep_dir, args.out, by, plots=not args.no_plots,
                                         expand=expand_basic_sweep,
                                         sensitivity=args.sensitivity)
    except (FileNotFoundError, ValueError) as err:
        print(f"spatialdtp-summarize: {err}", file=sys.stderr)
        return 2
    print(report(sweep, by))
    print("")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
