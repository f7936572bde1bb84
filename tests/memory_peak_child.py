"""Child process of tests/test_memory_estimate.py: the peak RSS increase of one run over a
warmed baseline, with the estimate.

Usage: python tests/memory_peak_child.py DIR N[xN[xN]] STEPS [OVERRIDE ...] [--no-file]

The run writes a run file with a frame every step and a checkpoint every second step. Before
the baseline is read, the same configuration runs once on an 8-voxel-wide grid, so that
lazily imported modules, compiled kernels and HDF5's own set-up are part of it; the
high-water mark is then reset (Linux >= 4.0: ``5`` written to ``/proc/self/clear_refs``)
and the run's peak is read from ``VmHWM``. Prints one JSON line.
"""
import gc
import json
import sys
from pathlib import Path


def rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def main(argv):
    out, size, steps, extra = Path(argv[0]), argv[1], int(argv[2]), list(argv[3:])
    frames = "--no-file" not in extra          # a run without a run file: no frames
    extra = [x for x in extra if x != "--no-file"]
    shape = [int(n) for n in size.split("x")]
    from spatialdtp import cli
    from spatialdtp.config import estimate_memory, memory_contributions
    from spatialdtp.run.simulation import Simulation

    def compose(grid):
        return cli.compose(["experiment=quick", f"grid.shape={grid}", "run.plot=false",
                            "run.output_interval_hours=0.3333333333333333",
                            "run.checkpoint_interval_hours=0.6666666666666666",
                            f"run.days={steps * 20 / 1440!r}"] + extra)

    cfg = compose(shape)
    warm = Simulation(compose([8] * len(shape)))
    warm.run_until(path=out / "warm.h5", overwrite=True)
    del warm
    gc.collect()
    base = rss("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    sim = Simulation(cfg)
    sim.run_until(path=out / "run.h5" if frames else None, overwrite=True)
    peak = rss("VmHWM:")
    name = sim.backend.name
    print(json.dumps({"backend": name, "precision": cfg.backend.precision, "shape": shape,
                      "base": base, "peak": peak, "measured": peak - base,
                      "estimate": estimate_memory(cfg, name, frames),
                      "parts": memory_contributions(cfg, name, frames)}))


if __name__ == "__main__":
    main(sys.argv[1:])
