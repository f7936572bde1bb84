"""The two substrate solvers side by side (``numerics.solver=multigrid|pcg``), in one run.

For each solver, on a 2D and a 3D problem:

* **CPU ms/step** on every host backend asked for (``numpy``, ``cpu``): the median of a few
  whole steps after a warm-up, and the iterations per step (V-cycles or CG iterations over
  every substrate, from the solver report);
* **bytes per voxel-step** from the traffic model (:mod:`benchmarks.traffic`) fed with what
  each step did (iterations per substrate, residual checks, restarts), on the measured grid
  and projected onto 256³ ``bench_tissue3d`` (the same work on that grid's levels: the
  iteration counts of multigrid and MG-preconditioned CG do not grow with the grid, which
  is the point of multigrid; the projection says which grid its counts come from);
* **kernel launches, host syncs, array operations and allocations per step**, counted on
  the CuPy device double (``tests/cupy_double``, in a subprocess: the double replaces
  ``cupy`` in that process), the counts ``tests/test_gpu_budgets.py`` derives;
* **the default job's wall time** (``spatialdtp-run`` with no arguments: 96², 21 days,
  backend ``auto``), writing its run file to a temporary folder, once per solver (full
  mode; quick mode runs 0.5 days of it, to exercise the path).

    python -m benchmarks.solvers double --problem tissue3d --shape 16 16 16 --solver pcg
    (one double count, JSON on stdout: what the suite runs in its subprocess)

    python -m benchmarks.solvers run [--quick] [--out DIR]
    (this section alone, as the suite runs it, written to DIR/solvers.json; default DIR
    benchmarks/results/<device>/)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOUBLE_DIR = ROOT / "tests" / "cupy_double"
SOLVERS = ("multigrid", "pcg")
#: the grid of the issue's traffic goal (≤ 1.2 KB per voxel-step of bench_tissue3d there)
GOAL_SHAPE = (256, 256, 256)
GOAL_BYTES_PER_VOXEL = 1200


def _config(problem, shape, solver, extra=()):
    from . import problems

    return problems.load(problem, shape, extra=[f"numerics.solver={solver}", *extra])


def measure(problem, shape, solver, backend_name, *, warm=2, steps=3):
    """Whole steps of one problem with one solver on one host backend."""
    from . import coupled
    from .measure import make_backend, timed
    from .problems import build

    cfg = _config(problem, shape, solver)
    backend = make_backend(backend_name)
    sim, _how = build(cfg, backend)
    dt = float(cfg.run.dt)
    for _ in range(warm):
        sim.step()
    times, works, per_voxel, goal = [], [], [], []
    for _ in range(steps):
        seconds, _ = timed(backend, sim.step, dt)
        times.append(seconds)
        work = coupled.step_work(sim)
        works.append(work)
        per_voxel.append(sum(coupled.step_bytes(sim, work, dt).values()) / sim.grid.size)
        if problem == "tissue3d":
            goal.append(sum(coupled.step_bytes(sim, work, dt, GOAL_SHAPE).values())
                        / math.prod(GOAL_SHAPE))
    out = {"problem": problem, "shape": list(shape), "solver": solver,
           "backend": backend_name, "precision": cfg.backend.precision, "dt_min": dt,
           "steps": steps, "warm_steps": warm,
           "ms_per_step": 1e3 * statistics.median(times),
           "iterations_per_step": statistics.median(sum(w["iterations"].values())
                                                    for w in works),
           "work": works, "bytes_per_voxel_step": statistics.median(per_voxel)}
    if goal:
        out["bytes_per_voxel_step_256"] = statistics.median(goal)
        out["bytes_per_voxel_step_256_note"] = (
            f"the traffic model on 256³ with the work counted at {'x'.join(map(str, shape))}")
    return out


def settled_bytes(problem="tissue3d", shape=(32, 32, 32), solver="multigrid",
                  backend_name="numpy", *, steps=60, skip=10):
    """Bytes per voxel-step at the goal's 256³ over a longer run, once the fields have
    settled: the first ``skip`` steps (the fresh tissue, the solver learning its cycle
    counts) are left out of the median; every step's figure and whether it remade its
    niche labels are kept, so the median can be recomputed from the JSON."""
    from . import coupled
    from .measure import make_backend
    from .problems import build

    cfg = _config(problem, shape, solver)
    sim, _how = build(cfg, make_backend(backend_name))
    dt = float(cfg.run.dt)
    per_step, remade = [], []
    for _ in range(steps):
        sim.step()
        work = coupled.step_work(sim)
        per_step.append(sum(coupled.step_bytes(sim, work, dt, GOAL_SHAPE).values())
                        / math.prod(GOAL_SHAPE))
        remade.append(bool(sim.observer.labels_made_last))
    tail = per_step[skip:]
    return {"problem": problem, "shape": list(shape), "solver": solver,
            "backend": backend_name, "steps": steps, "skipped": skip,
            "bytes_per_voxel_step_256": per_step, "labels_remade": remade,
            "median_256": statistics.median(tail), "max_256": max(tail),
            "share_within_goal": sum(b <= GOAL_BYTES_PER_VOXEL for b in tail) / len(tail)}


def double_counts(problem, shape, solver, steps=3, timeout=300):
    """Per-step counts of the CuPy device double (a subprocess), or why there are none."""
    if not (DOUBLE_DIR / "cupy" / "__init__.py").is_file():
        return {"available": False, "reason": f"no device double at {DOUBLE_DIR}"}
    env = {**os.environ, "SPATIALDTP_CUPY_DOUBLE": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(DOUBLE_DIR)]
                                         + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    cmd = [sys.executable, "-m", "benchmarks.solvers", "double", "--problem", problem,
           "--shape", *map(str, shape), "--solver", solver, "--steps", str(steps)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"available": False, "reason": f"timed out after {timeout} s"}
    if proc.returncode != 0:
        return {"available": False, "reason": (proc.stderr or proc.stdout)[-500:]}
    return {"available": True, **json.loads(proc.stdout.strip().splitlines()[-1])}


def _count_on_double(problem, shape, solver, steps):
    """In the double's process: the first step, then ``steps`` counted ones."""
    import cupy

    from spatialdtp.backends import get_backend
    from spatialdtp.run.simulation import Simulation

    double = cupy._double
    sim = Simulation(_config(problem, shape, solver), get_backend("cupy"))
    sim.step()
    rows = []
    for _ in range(steps):
        double.reset_counters()
        sim.step()
        got = double.snapshot()
        rows.append({k: got[k] for k in ("kernel_launches", "host_syncs", "array_launches",
                                         "allocations")}
                    | {"iterations": sum(sim.solver_iterations.values())})
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return {"per_step": rows, "median": med}


def default_job(solver, days=None):
    """Wall time of the default job (``spatialdtp-run`` with no overrides) with ``solver``:
    from building the simulation to the closed run file (no plot)."""
    from spatialdtp.api import load_config
    from spatialdtp.run.simulation import Simulation

    extra = [f"numerics.solver={solver}", "run.progress=false", "run.plot=false"]
    if days is not None:
        extra.append(f"run.days={days}")
    cfg = load_config(extra)
    t0 = time.perf_counter()
    sim = Simulation(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        sim.run_until(path=Path(tmp) / "run.h5")
    wall = time.perf_counter() - t0
    counts = sim.solver_report.counts
    return {"solver": solver, "days": cfg.run.days, "shape": list(cfg.grid.shape),
            "backend": sim.backend.name, "wall_s": wall, "steps": sim.iteration,
            "iterations": sum(c["iterations"] for c in counts.values()),
            "fallbacks": sum(c["fallbacks"] for c in counts.values()),
            "unconverged": sum(c["unconverged"] for c in counts.values())}


def run(mode, backends, log=print):
    """The side-by-side section of a suite run."""
    quick = mode == "quick"
    cases = ([("section2d", (64, 64)), ("tissue3d", (16, 16, 16))] if quick else
             [("section2d", (128, 128)), ("tissue3d", (32, 32, 32))])
    steps = 2 if quick else 3
    hosts = [b for b in backends if b in ("numpy", "cpu")]
    out = {"cases": [], "double": [], "default_job": [], "goal": {
        "shape": list(GOAL_SHAPE), "bytes_per_voxel_step": GOAL_BYTES_PER_VOXEL}}
    for problem, shape in cases:
        for solver in SOLVERS:
            for name in hosts:
                try:
                    res = measure(problem, shape, solver, name, warm=1 if quick else 2,
                                  steps=steps)
                except Exception as err:     # noqa: BLE001  (a backend unavailable here)
                    out["cases"].append({"problem": problem, "shape": list(shape),
                                         "solver": solver, "backend": name,
                                         "error": f"{type(err).__name__}: {err}"})
                    continue
                out["cases"].append(res)
                log(f"    solvers: {problem} {'x'.join(map(str, shape))} {solver} {name}: "
                    f"{res['ms_per_step']:.1f} ms/step, {res['iterations_per_step']:g} "
                    f"iterations, {res['bytes_per_voxel_step']:.0f} B/voxel-step")
            counted = double_counts(problem, shape, solver, steps)
            out["double"].append({"problem": problem, "shape": list(shape), "solver": solver,
                                  **counted})
    if "numpy" in hosts:
        settled = settled_bytes(steps=12 if quick else 60, skip=4 if quick else 10,
                                shape=(16, 16, 16) if quick else (32, 32, 32))
        out["settled"] = settled
        log(f"    solvers: tissue3d settled (steps {settled['skipped']}-{settled['steps']}): "
            f"median {settled['median_256']:.0f} B/voxel-step at 256³, "
            f"{100 * settled['share_within_goal']:.0f} % of steps within the goal")
    for solver in SOLVERS:
        job = default_job(solver, days=0.5 if quick else None)
        out["default_job"].append(job)
        log(f"    default job ({job['days']:g} days) with {solver} on {job['backend']}: "
            f"{job['wall_s']:.1f} s")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.solvers")
    ap.add_argument("what", choices=("double", "run"))
    ap.add_argument("--quick", action="store_true", help="run: the suite's quick sizes")
    ap.add_argument("--out", type=Path, default=None,
                    help="run: output folder (default benchmarks/results/<device>/)")
    ap.add_argument("--problem", default="tissue3d")
    ap.add_argument("--shape", type=int, nargs="+", default=[16, 16, 16])
    ap.add_argument("--solver", choices=SOLVERS, default="multigrid")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args(argv)
    import logging
    logging.getLogger("spatialdtp").setLevel(logging.ERROR)
    if args.what == "run":
        from . import machine

        out = args.out or Path(__file__).resolve().parent / "results" / \
            machine.describe(None).get("device_slug", "unknown")
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        result = run("quick" if args.quick else "full", ["numpy", "cpu"])
        result["machine"] = machine.describe(None)
        result["elapsed_s"] = time.perf_counter() - t0
        (out / "solvers.json").write_text(json.dumps(result, indent=1, default=str))
        print(f"wrote {out / 'solvers.json'}")
        return 0
    print(json.dumps(_count_on_double(args.problem, tuple(args.shape), args.solver,
                                      args.steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
