"""Child process for the memory-estimate check (issue 14 item 7, not finished): the peak RSS
increase of a run (frames every step, file written) over the RSS before the simulation is
built, with the estimate. Usage: python tests/memory_peak_child.py BACKEND N STEPS DIR."""
import json, sys, os, gc
from pathlib import Path

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

backend, n, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from spatialdtp import cli
from spatialdtp.config import estimate_memory, memory_contributions
from spatialdtp.run.simulation import Simulation
import numpy as np, h5py
over = ["experiment=quick", f"grid.shape=[{n},{n}]", f"backend={backend}", "run.plot=false",
        "run.output_interval_hours=0.3333333333333333", "run.checkpoint_interval_hours=0.6666666666666666",
        f"run.days={steps * 20 / 1440!r}"]
cfg = cli.compose(over)
from spatialdtp.config import validate
validate(cfg)
# warm the code paths on a tiny grid so lazily imported modules and compiled kernels are
# part of the baseline
small = cli.compose([o if not o.startswith("grid.shape") else "grid.shape=[16,16]" for o in over])
s = Simulation(small); s.run_until(path=Path(sys.argv[4]) / "warm.h5", overwrite=True); del s; gc.collect()
base = rss("VmRSS:")
# reset the high-water mark to now (Linux >= 4.0: write 5 to clear_refs)
open("/proc/self/clear_refs", "w").write("5")
sim = Simulation(cfg)
sim.run_until(path=Path(sys.argv[4]) / "run.h5", overwrite=True)
peak = rss("VmHWM:")
print(json.dumps({"backend": backend, "n": n, "base": base, "peak": peak, "measured": peak - base,
                  "estimate": estimate_memory(cfg, sim.backend.name),
                  "parts": memory_contributions(cfg, sim.backend.name)}))
