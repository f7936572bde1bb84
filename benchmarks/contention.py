"""``backend=cpu`` on an idle machine and on one whose cores other programs share, with
OpenMP's two ways of waiting between parallel loops.

Why it is measured: OpenMP threads that finish a loop first spin (busy-wait) for the next
one by default. On an idle machine that saves a wake-up; when other processes want the
cores, a spinning thread takes the core from the thread that still has work, and the run
slows several-fold. spatialdtp's ``cpu`` backend therefore sets ``OMP_WAIT_POLICY=PASSIVE``
(threads sleep) unless the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``
(:func:`spatialdtp.backends.cpu_backend.passive_wait_unless_set`). This case checks that
choice where the suite runs: the same problem idle and busy, with passive waiting and with
libgomp's default spinning.

Each measurement is a child process, since the OpenMP runtime reads its waiting policy once,
when it starts. The child builds the problem, takes one step (kernels loaded, caches warm)
and times ``steps`` more. "Busy" is one CPU-bound burner process per core beside it, as
other jobs on a shared node would be; the case starts and stops them itself, by pid. Every
step time is recorded with the ratios (medians): busy/idle per policy, and spinning/passive
idle and busy (> 1: passive waiting is faster).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the environment of each waiting policy; libgomp's default without OMP_WAIT_POLICY spins
#: 300 000 times before it sleeps (GOMP_SPINCOUNT's documented default), which also keeps
#: spatialdtp from choosing passive waiting for it
POLICIES = {"passive": {"OMP_WAIT_POLICY": "PASSIVE"},
            "spin": {"GOMP_SPINCOUNT": "300000"}}
BURNER = "while True: pass"


def _child(problem: str, shape, steps: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from benchmarks import problems
    from benchmarks.measure import host_threads, make_backend

    backend = make_backend("cpu")
    sim, _ = problems.build(problems.load(problem, shape), backend)
    sim.step()                                   # kernels loaded, caches warm
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        sim.step()
        times.append(time.perf_counter() - t0)
    return {"step_s": times, "threads": host_threads()}


def measure(problem: str, shape, steps: int, policy: str, busy: bool,
            timeout: float = 600.0) -> dict:
    """One child run of ``problem`` at ``shape`` with ``policy``, beside burners if ``busy``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    burners = [subprocess.Popen([sys.executable, "-c", BURNER])
               for _ in range(cores if busy else 0)]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.contention", "--child", problem,
             ",".join(str(int(n)) for n in shape), str(steps)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        for b in burners:
            b.kill()
        for b in burners:
            b.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"contention child ({policy}, busy={busy}) failed: "
                           f"{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"policy": policy, "busy": busy, "burners": len(burners), **out,
            "median_step_s": statistics.median(out["step_s"])}


def ratios(runs: list[dict]) -> dict:
    """busy/idle for each policy and spin/passive idle and busy, from the median steps."""
    t = {(r["policy"], r["busy"]): r["median_step_s"] for r in runs}
    out = {}
    for policy in POLICIES:
        if (policy, True) in t and (policy, False) in t:
            out[f"busy_over_idle_{policy}"] = t[(policy, True)] / t[(policy, False)]
    for busy, name in ((False, "idle"), (True, "busy")):
        if ("spin", busy) in t and ("passive", busy) in t:
            out[f"spin_over_passive_{name}"] = t[("spin", busy)] / t[("passive", busy)]
    return out


def run_case(problem: str, shape, steps: int, log=print) -> dict:
    """Idle and busy, passive and spinning: four child runs and their ratios."""
    runs = []
    for busy in (False, True):
        for policy in POLICIES:
            r = measure(problem, shape, steps, policy, busy)
            log(f"    cpu {problem} {'x'.join(map(str, shape))}, {policy} waiting, "
                f"{'busy' if busy else 'idle'}: {1e3 * r['median_step_s']:.1f} ms/step")
            runs.append(r)
    return {"problem": problem, "shape": list(shape), "backend": "cpu", "steps": steps,
            "runs": runs, "ratios": ratios(runs)}


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        shape = tuple(int(n) for n in sys.argv[3].split(","))
        print(json.dumps(_child(sys.argv[2], shape, int(sys.argv[4]))))
    else:
        print("usage: python -m benchmarks.contention --child PROBLEM N,N,N STEPS "
              "(the suite runs it: python -m benchmarks)", file=sys.stderr)
        raise SystemExit(2)
