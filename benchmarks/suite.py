"""The plan of a benchmark run and its execution, case by case, within a time budget.

Order (most important first, so that a cut-off run keeps what matters): copy bandwidth;
the start of the 2D scaling series (64² to 256², which also tells how fast each backend
is); the 2D section; the two substrate solvers side by side (:mod:`benchmarks.solvers`);
the substrate-only problem; the 3D tissues from 64³ up; the rest of
the scaling series. Every case runs on every backend that works here; a backend that cannot
run records why. A case is skipped, with its reason recorded, when its step time projected
from the largest case of its kind measured so far exceeds the backend's cap, or would not
fit in the time left; a grid that does not fit in memory is recorded as such. Results are
handed to ``on_result`` after every case, so an interrupted run leaves a valid JSON file.
"""
from __future__ import annotations

import gc
import math
import os
import subprocess
import time
from dataclasses import dataclass, field

import numpy as np

from . import contention, coupled, machine, problems, solvers, substrate_only
from .measure import (
    BACKENDS,
    DESCRIPTIONS,
    device_copy_bandwidth,
    host_copy_bandwidth,
    host_threads,
    make_backend,
    omp_threads,
)

#: projected times are the rate of the largest case so far times this (iterations grow)
SAFETY = 1.3


@dataclass
class Plan:
    mode: str
    coupled: list                       # (problem, [shape, ...])
    substrate_shape: tuple
    substrate_counts: tuple = (1, 4)
    substrate_dts: tuple = (0.01, 6.0)
    substrate_precisions: tuple = ("float32",)
    scaling2d: list = field(default_factory=list)
    probe_voxels: int = 256 * 256       # the scaling series up to here runs first
    steps: dict = field(default_factory=dict)         # min_steps, max_steps, min_seconds
    substrate_steps: dict = field(default_factory=dict)
    scaling_steps: dict = field(default_factory=dict)
    phase_steps: int = 2
    host_copy_bytes: int = 2**28
    device_copy_bytes: int = 2**31
    max_output_bytes: int = 2**30
    max_step_s: dict = field(default_factory=dict)    # backend -> cap on a projected step
    budget_s: float = 900.0
    #: backend=cpu idle and busy, passive and spinning (:mod:`benchmarks.contention`):
    #: (problem, shape, timed steps); about 4 × (start, build, steps + 1)
    contention: tuple = ("tissue3d", (48, 48, 48), 4)
    contention_s: float = 40.0          # what it is expected to take (16 s measured on 2 cores)


def plan(mode: str, gpu: bool) -> Plan:
    """``quick``: CI's smoke test (tiny grids, seconds; every code path, no meaningful
    figure). ``full``: the recorded figures; on a GPU machine the host backends are capped
    lower (the device's time is the point)."""
    if mode == "quick":
        return Plan(mode="quick",
                    coupled=[("section2d", [(64, 64)]), ("tissue3d", [(16, 16, 16)])],
                    substrate_shape=(20, 20, 20), substrate_dts=(6.0,),
                    scaling2d=[(64, 64), (128, 128)], probe_voxels=0,
                    steps=dict(min_steps=2, max_steps=2, min_seconds=0.0),
                    substrate_steps=dict(min_steps=2, max_steps=2, min_seconds=0.0),
                    scaling_steps=dict(min_steps=1, max_steps=1, min_seconds=0.0),
                    phase_steps=1, host_copy_bytes=2**25, device_copy_bytes=2**28,
                    max_output_bytes=2**24, budget_s=25.0,
                    contention=("tissue3d", (12, 12, 12), 1), contention_s=8.0)
    # the same number of steps on every backend: a step's work (its PCG iterations)
    # depends on how far the run has gone, so ratios compare like with like
    k = 5 if gpu else 3
    common = dict(mode="full",
                  coupled=[("section2d", [(1024, 1024)]),
                           ("tissue3d", [(n, n, n) for n in (64, 128, 256, 512)])],
                  substrate_shape=(100, 100, 100),
                  substrate_precisions=("float32", "float64"),
                  scaling2d=[(2**e, 2**e) for e in range(6, 15)],      # 64² … 16384²
                  steps=dict(min_steps=k, max_steps=k, min_seconds=0.0),
                  substrate_steps=dict(min_steps=k, max_steps=k, min_seconds=0.0),
                  scaling_steps=dict(min_steps=k - 1, max_steps=k - 1, min_seconds=0.0))
    if gpu:
        return Plan(**common, max_output_bytes=2**28,
                    max_step_s={"numpy": 2.5, "cpu": 2.5, "cupy": 5.0, "cupy-arrays": 5.0},
                    budget_s=540.0)
    return Plan(**common, max_step_s={"numpy": 20.0, "cpu": 20.0}, budget_s=840.0)


class Runner:
    def __init__(self, plan: Plan, backends, log=print, on_result=None):
        self.plan = plan
        self.names = list(backends)
        self.log = log
        self.on_result = on_result or (lambda results: None)
        self.start = time.monotonic()
        self.rate = {}            # (backend, kind) -> (work units, seconds per unit)
        self.backends = {}
        self.results = {"mode": plan.mode, "backends": {}, "copy_bandwidth": {},
                        "coupled": [], "substrates": [], "scaling": [], "skipped": []}

    # ------------------------------------------------------------------ bookkeeping
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def _emit(self):
        self.results["elapsed_s"] = self.elapsed()
        self.on_result(self.results)

    def skip(self, what: dict, reason: str):
        self.results["skipped"].append({**what, "reason": reason})
        self.log(f"    skipped {what}: {reason}")

    def _may_run(self, name, kind, units, steps):
        """None if the case may run, else why not. ``units``: voxels (× substrates)."""
        left = self.plan.budget_s - self.elapsed()
        if left <= 0:
            return "the run's time budget is spent"
        known = self.rate.get((name, kind))
        if known is None:
            return None
        t = SAFETY * known[1] * units
        cap = self.plan.max_step_s.get(name)
        if cap is not None and t > cap:
            return f"projected {t:.3g} s per step exceeds this backend's cap of {cap:g} s"
        if t * steps > left:
            return f"projected {t * steps:.0f} s exceeds the {left:.0f} s left of the budget"
        return None

    def _learn(self, name, kind, units, seconds):
        """Remember the rate of the largest case of a kind (small grids are dominated by
        per-call overheads and would overstate the cost of large ones)."""
        known = self.rate.get((name, kind))
        if known is None or units >= known[0]:
            self.rate[(name, kind)] = (units, seconds / units)

    # ------------------------------------------------------------------ backends
    def open_backends(self):
        from spatialdtp.backends import BackendUnavailable

        for name in self.names:
            try:
                backend = make_backend(name)
                ops = backend.ops(np.float32)       # compile now: a failure says why here
                entry = {"available": True, "device": backend.device(),
                         "description": DESCRIPTIONS[name]}
                if getattr(ops, "compiled", False):
                    entry["kernels"] = sorted(getattr(ops.lib, "signatures", {}) or [])
                self.backends[name] = backend
                self.results["backends"][name] = entry
            except (BackendUnavailable, ImportError, RuntimeError, OSError) as err:
                self.results["backends"][name] = {"available": False,
                                                  "reason": f"{type(err).__name__}: {err}",
                                                  "description": DESCRIPTIONS[name]}
                self.log(f"  backend {name}: unavailable ({err})".splitlines()[0][:160])
        return self.backends

    def gpu_backend(self):
        return next((b for b in self.backends.values() if getattr(b, "cp", None)), None)

    def measure_copy(self):
        p = self.plan
        threads = host_threads()
        host = {"all_threads": host_copy_bandwidth(p.host_copy_bytes, threads)}
        if threads > 1:
            host["one_thread"] = host_copy_bandwidth(p.host_copy_bytes, 1)
        self.results["copy_bandwidth"]["host"] = host
        for v in host.values():
            self.log(f"  host copy, {v['threads']} thread(s): "
                     f"{v['bandwidth_Bps'] / 1e9:.1f} GB/s")
        gpu = self.gpu_backend()
        if gpu is not None:
            dev = device_copy_bandwidth(gpu.cp, p.device_copy_bytes)
            self.results["copy_bandwidth"]["device"] = dev
            self.log(f"  device copy: {dev['bandwidth_Bps'] / 1e9:.0f} GB/s")
        self._emit()

    def copy_bw(self, name) -> float:
        """The roofline's reference for a backend: its device's copy bandwidth. On the host
        the better of the all-threads copy (the ``cpu`` backend's OpenMP loops use every
        thread) and the one-thread copy (better where other work shares the cores)."""
        cb = self.results["copy_bandwidth"]
        if getattr(self.backends.get(name), "cp", None) is not None and "device" in cb:
            return cb["device"]["bandwidth_Bps"]
        if name == "cpu-1thread" and "one_thread" in cb["host"]:
            return cb["host"]["one_thread"]["bandwidth_Bps"]
        return max(c["bandwidth_Bps"] for c in cb["host"].values())

    # ------------------------------------------------------------------ one case
    def _guarded(self, what, name, kind, units, steps, fn):
        reason = self._may_run(name, kind, units, steps)
        if reason:
            self.skip(what, reason)
            return None
        from spatialdtp.config import ConfigError
        backend = None
        try:
            # a fresh backend per case: compiled ops keep buffers per substrate name, so
            # one backend must not serve two grids
            backend = make_backend(name)
            with omp_threads(getattr(backend, "omp_threads", None)):
                res = fn(backend)
            res["copy_bandwidth_Bps"] = self.copy_bw(name)
            res["device"] = self.results["backends"][name]["device"]
            return res
        except ConfigError as err:
            self.skip(what, f"does not fit: {err}")
        except MemoryError as err:
            self.skip(what, f"out of host memory: {err}")
        except Exception as err:   # noqa: BLE001  (CuPy's OutOfMemoryError, a kernel's error)
            kind_ = type(err).__name__
            if "OutOfMemory" in kind_:
                self.skip(what, f"out of device memory: {str(err).splitlines()[0][:200]}")
            else:
                self.skip(what, f"error: {kind_}: {err}")
        finally:
            del backend
            gc.collect()
            cp = getattr(self.backends.get(name), "cp", None)
            if cp is not None:
                cp.get_default_memory_pool().free_all_blocks()
                cp.get_default_pinned_memory_pool().free_all_blocks()
        return None

    # ------------------------------------------------------------------ the suite
    def run(self):
        p = self.plan
        self.log(f"spatialdtp benchmarks, {p.mode} mode, backends {list(self.backends)}")
        self.results["load_average_start"] = _loadavg()
        self.measure_copy()
        self._scaling(max_voxels=p.probe_voxels)
        for problem, shapes in p.coupled[:1]:
            self._coupled(problem, shapes)
        self._solvers()
        self._contention()
        self._substrates()
        for problem, shapes in p.coupled[1:]:
            self._coupled(problem, shapes)
        self._scaling()
        self.results["load_average_end"] = _loadavg()
        self._emit()
        return self.results

    def _coupled(self, problem, shapes):
        p = self.plan
        steps = 1 + p.steps.get("max_steps", 3) + p.phase_steps + 4
        for shape in shapes:
            for name in self.backends:
                what = {"problem": problem, "shape": list(shape), "backend": name}

                def go(backend, shape=shape, name=name):
                    cfg = problems.load(problem, shape)
                    return coupled.run_case(
                        problem, cfg, backend, **p.steps, phase_steps=p.phase_steps,
                        max_output_bytes=p.max_output_bytes,
                        copy_bandwidth_Bps=self.copy_bw(name), log=self.log)
                kind = f"coupled{len(shape)}d"
                res = self._guarded(what, name, kind, math.prod(shape), steps, go)
                if res is not None:
                    self._learn(name, kind, res["voxels"], res["step"]["median_s"])
                    self.results["coupled"].append(res)
                    self._emit()

    def _solvers(self):
        """The two substrate solvers side by side (:mod:`benchmarks.solvers`), once per run,
        on the host backends asked for; skipped (and said so) when the budget is spent."""
        if self.plan.budget_s - self.elapsed() <= 0:
            self.skip({"section": "solvers"}, "the run's time budget is spent")
            return
        try:
            self.results["solvers"] = solvers.run(self.plan.mode, self.names, log=self.log)
        except Exception as err:  # noqa: BLE001  (recorded, the rest of the suite goes on)
            self.skip({"section": "solvers"}, f"error: {type(err).__name__}: {err}")
        self._emit()

    def _contention(self):
        """backend=cpu idle and busy, with passive and with spinning OpenMP waiting."""
        problem, shape, steps = self.plan.contention
        what = {"problem": problem, "shape": list(shape), "backend": "cpu",
                "case": "contention"}
        if "cpu" not in self.backends:
            why = self.results["backends"].get("cpu", {}).get("reason", "not asked for")
            return self.skip(what, f"backend cpu unavailable: {why}")
        left = self.plan.budget_s - self.elapsed()
        if left < self.plan.contention_s:
            return self.skip(what, f"{left:.0f} s left of the budget, the case takes about "
                                   f"{self.plan.contention_s:.0f} s")
        self.log(f"  contention: {problem} {list(shape)} on cpu, idle and busy")
        try:
            self.results["contention"] = contention.run_case(problem, shape, steps, log=self.log)
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as err:
            return self.skip(what, f"failed: {err}"[:500])
        self._emit()

    def _substrates(self):
        """The substrate-only problem; on a multi-core host also ``cpu-1thread``, the
        compiled kernels on one thread, beside the peers' one-thread figures."""
        p = self.plan
        steps = 2 + p.substrate_steps.get("max_steps", 3)
        names = list(self.backends)
        if "cpu" in self.backends and host_threads() > 1:
            names.insert(names.index("cpu") + 1, "cpu-1thread")
            cpu = self.results["backends"]["cpu"]
            self.results["backends"]["cpu-1thread"] = {
                **cpu, "device": cpu["device"] + "; run on 1 OpenMP thread",
                "description": DESCRIPTIONS["cpu-1thread"]}
        for precision in p.substrate_precisions:
            for dt in p.substrate_dts:
                for count in p.substrate_counts:
                    for name in names:
                        what = {"problem": "substrates3d", "shape": list(p.substrate_shape),
                                "backend": name, "dt": dt, "n_substrates": count,
                                "precision": precision}

                        def go(backend, precision=precision, dt=dt, count=count, name=name):
                            cfg = problems.load("substrates3d", p.substrate_shape, precision,
                                                extra=[f"run.dt={dt}"])
                            return substrate_only.run_case(
                                cfg, backend, count, **p.substrate_steps,
                                copy_bandwidth_Bps=self.copy_bw(name), log=self.log)
                        units = math.prod(p.substrate_shape) * count
                        res = self._guarded(what, name, "substrates", units, steps, go)
                        if res is not None:
                            self._learn(name, "substrates", units, res["step"]["median_s"])
                            self.results["substrates"].append(res)
                            self._emit()

    def _scaling(self, max_voxels=None):
        """The 2D series, ascending; a backend's series stops at its first skipped size."""
        p = self.plan
        steps = 2 + p.scaling_steps.get("max_steps", 2)
        for name in self.backends:
            for shape in p.scaling2d:
                units = math.prod(shape)
                if max_voxels is not None and units > max_voxels:
                    break
                if any(q["backend"] == name and tuple(q["shape"]) == tuple(shape)
                       for q in self.results["scaling"]):
                    continue
                if any(s.get("series") == "scaling" and s["backend"] == name
                       for s in self.results["skipped"]):
                    break
                what = {"problem": "section2d", "series": "scaling", "shape": list(shape),
                        "backend": name}
                done = next((r for r in self.results["coupled"] if r["problem"] == "section2d"
                             and r["backend"] == name and tuple(r["shape"]) == tuple(shape)),
                            None)
                if done is not None:        # the same case was measured in full: reuse it
                    self.results["scaling"].append(_scaling_point(done, reused=True))
                    continue

                def go(backend, shape=shape, name=name):
                    cfg = problems.load("section2d", shape)
                    return coupled.run_case(
                        "section2d", cfg, backend, **p.scaling_steps, phase_steps=0,
                        output=False, micro=False, copy_bandwidth_Bps=self.copy_bw(name),
                        log=self.log)
                res = self._guarded(what, name, "coupled2d", units, steps, go)
                if res is None:
                    break                    # larger grids will not run either
                self._learn(name, "coupled2d", units, res["step"]["median_s"])
                self.results["scaling"].append(_scaling_point(res))
                self._emit()


def _loadavg():
    """1, 5 and 15 minute load averages: other work on the machine shows up here."""
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def _scaling_point(res, reused=False):
    keep = ("problem", "backend", "shape", "voxels", "precision", "voxel_steps_per_s",
            "effective_bandwidth_Bps", "roofline_fraction", "copy_bandwidth_Bps", "setup_s",
            "tissue")
    out = {k: res.get(k) for k in keep}
    out["step_s"] = res["step"]["median_s"]
    out["bytes_per_step"] = res["step"]["bytes_median"]
    out["iterations"] = res["step"]["iterations"][-1]
    out["peak_device_pool_bytes"] = res["memory"]["peak_device_pool_bytes"]
    out["peak_host_rss_bytes"] = res["memory"]["peak_host_rss_bytes"]
    out["reused_from_coupled"] = reused
    return out


def run(mode="quick", backends=BACKENDS, log=print, on_result=None, budget=None,
        custom_plan=None):
    """Run the suite; the results dict (machine, copy bandwidth, cases, skips).
    ``custom_plan`` replaces the mode's plan (the one-shot GPU session's subset)."""
    runner = Runner(plan(mode, False), backends, log=log, on_result=on_result)
    runner.open_backends()
    gpu = runner.gpu_backend()
    info = None
    if gpu is not None:
        try:
            info = machine.gpu_info(gpu.cp)
        except Exception:      # noqa: BLE001  (recorded without the GPU's details)
            info = {"name": gpu.device(), "memory_bytes": None}
    runner.plan = custom_plan or plan(mode, gpu is not None)
    if budget is not None:
        runner.plan.budget_s = float(budget)
    runner.results["mode"] = mode
    runner.results["machine"] = machine.describe(info)
    runner.results["plan"] = {k: (list(v) if isinstance(v, tuple) else v)
                              for k, v in runner.plan.__dict__.items()}
    runner.start = time.monotonic()
    return runner.run()
