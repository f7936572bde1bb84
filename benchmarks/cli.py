"""Command line of the benchmark suite.

    python -m benchmarks                 # full mode, results in benchmarks/results/<device>/
    python -m benchmarks --quick         # CI smoke test: tiny grids, under a minute
    python -m benchmarks --quick --out /tmp/bench
    python -m benchmarks --backends numpy,cpu
    python -m benchmarks --readme        # only rebuild the README's tables from results/
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .measure import BACKENDS

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks",
                                 description="spatialdtp benchmark suite: throughput, roofline "
                                             "fraction and scaling of every backend")
    ap.add_argument("--quick", action="store_true",
                    help="tiny grids and few steps (CI smoke test; figures not meaningful)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default benchmarks/results/<device>/)")
    ap.add_argument("--backends", default=",".join(BACKENDS),
                    help=f"comma-separated subset of {','.join(BACKENDS)} (default: all; "
                         "those that cannot run here are recorded as unavailable)")
    ap.add_argument("--budget", type=float, default=None,
                    help="time budget in seconds (default: the mode's)")
    ap.add_argument("--readme", action="store_true",
                    help="only rebuild benchmarks/README.md's tables from benchmarks/results/")
    ap.add_argument("--no-readme", action="store_true",
                    help="do not update benchmarks/README.md after a full run")
    args = ap.parse_args(argv)

    from . import report

    if args.readme:
        report.update_readme(RESULTS)
        print(f"updated {report.README}")
        return 0

    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown:
        ap.error(f"--backends: unknown {unknown}; known are {list(BACKENDS)}")
    logging.getLogger("spatialdtp").setLevel(logging.ERROR)   # solver warnings: not here

    from . import suite

    mode = "quick" if args.quick else "full"
    state = {"out": args.out}

    def on_result(results):
        if state["out"] is None:
            slug = results.get("machine", {}).get("device_slug", "unknown")
            state["out"] = RESULTS / (slug if mode == "full" else f"{slug}-quick")
        report.write_json(results, state["out"])

    t0 = time.perf_counter()
    results = suite.run(mode, names, log=lambda msg: print(msg, flush=True),
                        on_result=on_result, budget=args.budget)
    paths = report.write_all(results, state["out"])
    print(f"wrote {paths['json']}, {paths['markdown']} and {len(paths['png'])} PNG "
          f"in {time.perf_counter() - t0:.0f} s")
    if mode == "full" and args.out is None and not args.no_readme:
        report.update_readme(RESULTS)
        print(f"updated {report.README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
