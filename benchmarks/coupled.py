"""Whole coupled steps of a reference problem on one backend: throughput, phases, kernels.

One case = one problem at one grid size on one backend. It measures

* whole steps (``Simulation.step``, nothing added): seconds per step, voxel-steps/s,
  simulated days per wall-clock minute, the projected wall time of 30 days;
* the same steps split into phases (the ops and the substrate step wrapped with clocks,
  the device synchronised at each boundary): reactions, transport, the substrates'
  coefficients and their implicit solve (``numerics.solver``: the batched multigrid solve
  of every substrate, or PCG one substrate at a time), observables, the rest;
* what the solver did per step (iterations per substrate, residual checks, restarts) and
  the backend's counted kernel launches and host reads;
* output writing: one frame copied to the host and written to an HDF5 run file;
* the hot operations one at a time (fused reaction, transport, coefficients, a batched
  V-cycle and a residual check, or PCG's stencil, Jacobi sweep and V-cycle, the
  observable sums) on the case's own arrays;
* bytes moved (:mod:`benchmarks.traffic`) beside every time, so that each roofline
  fraction can be recomputed; peak host RSS and peak device memory.
"""
from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from collections import defaultdict

import numpy as np

from . import traffic
from .measure import PeakMemory, is_gpu, repeat_timed, summary_of, timed
from .problems import build

MINUTES_PER_DAY = 1440.0


# --------------------------------------------------------------------------- phase clocks
class _TimedOps:
    """The simulation's ops with a clock around each hot call (attribute access passes)."""

    def __init__(self, probe, ops):
        self._probe, self._ops = probe, ops

    def __getattr__(self, name):
        return getattr(self._ops, name)

    def react_cells(self, *args, **kwargs):
        return self._probe.clock("reactions", self._ops.react_cells, *args, **kwargs)

    def move_cells(self, *args, **kwargs):
        return self._probe.clock("transport", self._ops.move_cells, *args, **kwargs)

    def coefficients(self, sub, *args, **kwargs):
        return self._probe.clock("substrates:coefficients", self._ops.coefficients, sub,
                                 *args, **kwargs)


class PhaseProbe:
    """Wraps a simulation's ops, its substrate step and observation with clocks while
    active.

    The solver's kernels inside a step are not wrapped (they are called hundreds of times
    a step); the substrate step is timed as a whole (``substrates (all)``), its
    coefficients apart, the rest is ``substrates:solve`` (the batched multigrid solve of
    every substrate, or the PCG solves one after the other).
    """

    def __init__(self, sim):
        self.sim = sim
        self.times = defaultdict(float)

    def clock(self, phase, fn, *args, **kwargs):
        seconds, out = timed(self.sim.backend, fn, *args, **kwargs)
        self.times[phase] += seconds
        return out

    def __enter__(self):
        sim, step = self.sim, self.sim.substrate_step
        self._ops, self._step_ops = sim.ops, step.ops
        sim.ops = _TimedOps(self, sim.ops)
        step.ops = _TimedOps(self, step.ops)
        advance, observe = step.step, sim._observe
        step.step = lambda *a, **k: self.clock("substrates (all)", advance, *a, **k)
        sim._observe = lambda *a, **k: self.clock("observables", observe, *a, **k)
        return self

    def __exit__(self, *exc):
        sim, step = self.sim, self.sim.substrate_step
        sim.ops, step.ops = self._ops, self._step_ops
        del step.step, sim._observe
        self.times["substrates:solve"] = max(
            0.0, self.times["substrates (all)"] - self.times["substrates:coefficients"])
        return False


# --------------------------------------------------------------------------- bytes
def _substeps(sim, tau):
    """Explicit transport sub-steps of each moving cell type for a half step of τ."""
    from spatialdtp.numerics.transport import chemotactic_velocity, substeps

    xp, st = sim.xp, sim.state
    chi = sim.cfg.cells.macrophage.chemotaxis
    v_max = 0.0
    if chi > 0:
        v_max = max(float(xp.abs(v).max()) for v in
                    chemotactic_velocity(st["chemokine"], chi, sim.grid.dx, xp))
    out = {}
    for name, D in zip(("S", "P", "R", "F", "M"), sim.motilities):
        drift = name == "M" and chi > 0
        if D == 0 and not drift:
            continue
        out[name] = substeps(D, v_max if drift else 0.0, tau, sim.grid.dx, sim.grid.ndim)
    return out


def _theta_solves(scheme):
    return {"backward_euler": (1.0, 1), "crank_nicolson": (0.5, 1),
            "tr_bdf2": (0.5, 2)}.get(scheme, (1.0, 1))


def solver_levels(sim):
    """The level shapes of the configured solver, fine first."""
    step = sim.substrate_step
    levels = step.mg.levels if step.mg is not None else step.pcg.levels
    return [tuple(lev.shape) for lev in levels]


def niche_shifts(sim):
    """Shifts per axis the niche distance of the last observation took (see
    :func:`spatialdtp.run.niche.squared_voxel_distance` with the labels' reach), none when
    the labels needed no distance (no tumour bed or no niche voxel)."""
    from spatialdtp.run import niche

    obs, st = sim.observer, sim.state
    ref = obs.reference
    if ref is None or ref.n_strata == 0:
        return []
    if not bool(sim.xp.any(niche.niche_voxels(st["F"], st["M"], obs.geometry))):
        return []
    return obs.geometry.label_shifts(sim.grid.shape)


def step_work(sim):
    """What the last step's solves did: iterations per substrate and the solver's counts."""
    step = sim.substrate_step
    return {"solver": sim.cfg.numerics.solver, "iterations": dict(sim.solver_iterations),
            **{k: (dict(v) if isinstance(v, dict) else v) for k, v in step.work.items()}}


def step_bytes(sim, work, dt, shape=None):
    """Bytes of one step of ``sim`` that did ``work`` (:func:`step_work`). ``shape``: the
    same step on another grid (the same configs, sub-step counts and solver work; the
    levels and the niche distance's shifts of that grid): the traffic of a grid too large
    to run here, from the work counted on this one."""
    from spatialdtp.numerics.implicit.batched_multigrid import hierarchy
    from spatialdtp.numerics.transport import pressure_substeps

    theta, solves = _theta_solves(sim.cfg.numerics.scheme)
    subs = {s.name: (s.cfg, s.kinds, s.is_drug) for s in sim.substrates}
    mobility = sim.cfg.cells.pressure_mobility
    tau = 0.5 * dt
    if shape is None:
        shape, levels, shifts = tuple(sim.grid.shape), solver_levels(sim), niche_shifts(sim)
    else:
        shape = tuple(int(n) for n in shape)
        levels = [lev.shape for lev in hierarchy(shape)]     # both solvers' hierarchy
        shifts = niche_shifts(sim)
        if shifts:
            shifts = [min(n - 1, max(shifts)) for n in shape]
    return traffic.step_bytes(
        n_voxels=math.prod(shape), itemsize=sim.dtype.itemsize,
        n_substrates=len(sim.layout.substrates), n_fields=len(sim.layout),
        n_drugs=len(sim.drugs), substeps=_substeps(sim, tau),
        chemotaxis=sim.cfg.cells.macrophage.chemotaxis > 0, substrates=subs,
        solver_shapes=levels, iterations=work["iterations"],
        picard=sim.cfg.numerics.picard_iterations, theta=theta, solves=solves,
        solver=work["solver"], checks=work.get("checks", 0), checked=work.get("checked"),
        restarts=work.get("restarts", {}), predictor=work.get("predictor", False),
        pressure_substeps=(pressure_substeps(mobility, tau, sim.grid.dx, sim.grid.ndim)
                           if mobility > 0 else 0),
        shape=shape, niche_shifts=shifts, niche_remade=sim.observer.labels_made_last)


def field_totals(sim, names=None) -> dict:
    """Σ of each field in float64 after the timed steps: every backend runs the same steps
    from the same state, so these must agree (to rounding) with the NumPy reference's; the
    report shows the largest relative difference beside each figure."""
    names = list(sim.layout.names) if names is None else list(names)
    data = sim.state.data
    sums = sim.backend.to_host(data.reshape(data.shape[0], -1).sum(axis=1, dtype=np.float64))
    return {n: float(sums[sim.layout.index[n]]) for n in names}


# --------------------------------------------------------------------------- the case
def run_case(problem, cfg, backend, *, min_steps=3, max_steps=10, min_seconds=3.0,
             phase_steps=2, micro=True, output=True, max_output_bytes=2**30,
             copy_bandwidth_Bps=None, max_build_voxels=None, log=print):
    """Measure one problem on one backend; a JSON-ready dict."""
    from .problems import MAX_BUILD_VOXELS

    dt = float(cfg.run.dt)
    shape = tuple(cfg.grid.shape)
    res = {"problem": problem, "backend": backend.name, "shape": list(shape),
           "voxels": math.prod(shape), "dx_um": cfg.grid.dx, "dt_min": dt,
           "precision": cfg.backend.precision, "scheme": cfg.numerics.scheme,
           "rtol": cfg.numerics.rtol, "solver": cfg.numerics.solver}
    with PeakMemory(backend) as mem:
        t0 = time.perf_counter()
        sim, how = build(cfg, backend, max_build_voxels or MAX_BUILD_VOXELS)
        backend.synchronize()
        res["tissue"] = how
        res["setup_s"] = time.perf_counter() - t0
        res["fields"] = list(sim.layout.names)
        res["state_bytes"] = int(sim.state.data.nbytes + sim.state.vessels.nbytes)
        res["solver_levels"] = [list(shape) for shape in solver_levels(sim)]

        warm, _ = timed(backend, sim.step, dt)
        res["warmup_step_s"] = warm

        times, iters, step_b, works, counts = [], [], [], [], []
        start = time.perf_counter()
        while len(times) < max_steps:
            before = sim.ops.counters.snapshot()
            seconds, _ = timed(backend, sim.step, dt)
            counted = sim.ops.counters.since(before)
            counts.append({"launches": counted["launches"], "syncs": counted["syncs"]})
            times.append(seconds)
            work = step_work(sim)
            works.append(work)
            iters.append(work["iterations"])
            step_b.append(sum(step_bytes(sim, work, dt).values()))
            if len(times) >= min_steps and time.perf_counter() - start >= min_seconds:
                break
        res["field_totals"] = field_totals(sim)
        t_step = statistics.median(times)
        bytes_step = statistics.median(step_b)
        res["step"] = {**summary_of(times), "iterations": iters, "bytes": step_b,
                       "bytes_median": bytes_step, "work": works,
                       "bytes_per_voxel_median": bytes_step / res["voxels"],
                       # the backend's own counts (compiled kernels, ops.read sites; the
                       # numpy backend launches none of ours)
                       "counted": counts}
        res["voxel_steps_per_s"] = res["voxels"] / t_step
        res["sim_days_per_wall_minute"] = (dt / MINUTES_PER_DAY) * 60.0 / t_step
        res["projected_30_days_s"] = 30 * MINUTES_PER_DAY / dt * t_step
        res["effective_bandwidth_Bps"] = bytes_step / t_step
        if copy_bandwidth_Bps:
            res["roofline_fraction"] = res["effective_bandwidth_Bps"] / copy_bandwidth_Bps
        log(f"    {problem} {'x'.join(map(str, shape))} {backend.name}: "
            f"{t_step * 1e3:.1f} ms/step, {res['voxel_steps_per_s']:.3g} voxel-steps/s")

        if phase_steps:
            res["phases"] = _phases(sim, dt, phase_steps, copy_bandwidth_Bps)
        if output:
            res["output"] = _output(sim, max_output_bytes)
            per_frame = res["output"]["frame_s"]
            steps_per_frame = cfg.run.output_interval_hours * 60.0 / dt
            res["output"]["amortised_per_step_s"] = per_frame / steps_per_frame
        if micro:
            res["kernels"] = _kernels(sim, dt, copy_bandwidth_Bps)
        mem.read()
    res["memory"] = mem.as_dict()
    del sim
    return res


def _phases(sim, dt, n, copy_bw):
    """Per-phase seconds and bytes, the median over ``n`` probed steps."""
    per_step = []
    for _ in range(n):
        with PhaseProbe(sim) as probe:
            total, _ = timed(sim.backend, sim.step, dt)
        times = dict(probe.times)
        work = step_work(sim)
        per_step.append((total, times, step_bytes(sim, work, dt), work["iterations"]))
    names = sorted({k for _, t, _, _ in per_step for k in t})
    out = {"steps": n, "step_s": statistics.median(p[0] for p in per_step),
           "iterations": per_step[-1][3], "phases": {}}
    for name in names:
        out["phases"][name] = {"seconds": statistics.median(p[1].get(name, 0.0)
                                                            for p in per_step)}
    # bytes by phase (of the last probed step); the substrates' parts also in their total
    # (PCG's per-substrate counts only there: its solves are timed together)
    last = per_step[-1][2]
    for name, nbytes in last.items():
        if name.startswith("substrates:") or not name.startswith("substrate"):
            out["phases"].setdefault(name, {"seconds": 0.0})["bytes"] = nbytes
    out["phases"].setdefault("substrates (all)", {"seconds": 0.0})["bytes"] = sum(
        v for k, v in last.items() if k.startswith("substrate"))
    counted = sum(v["seconds"] for k, v in out["phases"].items()
                  if k in ("reactions", "transport", "observables", "substrates (all)"))
    out["phases"]["other"] = {"seconds": max(0.0, out["step_s"] - counted)}
    for entry in out["phases"].values():
        if entry.get("bytes") and entry["seconds"] > 0:
            entry["effective_bandwidth_Bps"] = entry["bytes"] / entry["seconds"]
            if copy_bw:
                entry["roofline_fraction"] = entry["effective_bandwidth_Bps"] / copy_bw
    return out


def _output(sim, max_bytes):
    """One output frame: the device-to-host copy and the HDF5 write (gzip, as a run file).

    Frames larger than ``max_bytes`` are timed on the first fields only and the write time
    scaled by the field count (recorded as ``fields_written``).
    """
    from spatialdtp.run.runfile import RunWriter

    names = list(sim.layout.names)
    plane = sim.grid.size * sim.dtype.itemsize
    k = max(1, min(len(names), max_bytes // max(plane, 1)))
    fields = {n: {"units": "", "kind": "substrate"} for n in names[:k]}
    attrs = {"config": "{}", "backend": sim.backend.name, "device": sim.backend.device(),
             "seed": 0}
    copies, writes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "frame.h5")
        writer = RunWriter(path, grid=sim.grid, fields=fields, attrs=attrs, dtype=sim.dtype,
                           overwrite=True)
        frames = 2 if k * plane <= 2**26 else 1      # a big frame takes seconds: once
        for i in range(frames):
            sim.backend.synchronize()
            t0 = time.perf_counter()
            host = sim.backend.snapshot(sim.state.data).result()
            t1 = time.perf_counter()
            writer.write_frame(float(i + 1), {n: host[j] for j, n in enumerate(names[:k])})
            t2 = time.perf_counter()
            copies.append(t1 - t0)
            writes.append(t2 - t1)
            del host
        writer.close()
        size = os.path.getsize(path)
    write = statistics.median(writes) * len(names) / k
    copy = statistics.median(copies)
    return {"frame_bytes": plane * len(names), "fields_written": k, "fields": len(names),
            "to_host_s": copy, "write_s": write, "frame_s": copy + write,
            "file_bytes_per_frame": size / frames * len(names) / k,
            "note": "run_until writes frames on a background thread (write-behind) where "
                    "available, overlapping the write with the next steps"}


def _kernels(sim, dt, copy_bw):
    """The hot operations one at a time, each with its bytes."""
    backend, ops, st, xp = sim.backend, sim.ops, sim.state, sim.xp
    n, item = sim.grid.size, sim.dtype.itemsize
    batch = 5 if is_gpu(backend) else 1
    out = {}

    def record(name, fn, nbytes):
        try:
            seconds, calls = repeat_timed(backend, fn, batch=batch)
        except Exception as err:      # an op a backend has not got: say so, go on
            out[name] = {"error": f"{type(err).__name__}: {err}"}
            return
        entry = {"seconds": seconds, "calls": calls, "bytes": int(nbytes),
                 "effective_bandwidth_Bps": nbytes / seconds}
        if copy_bw:
            entry["roofline_fraction"] = entry["effective_bandwidth_Bps"] / copy_bw
        out[name] = entry

    tau = 0.5 * dt
    record("reaction (react_cells)",
           lambda: ops.react_cells(st, sim.kinetics, sim.cfg.treatment, tau),
           traffic.reaction_bytes(n, item, len(sim.layout.substrates)))
    chi = sim.cfg.cells.macrophage.chemotaxis
    record("transport (move_cells)",
           lambda: ops.move_cells(st, sim.motilities, chi, tau, sim.capacity),
           traffic.transport_bytes(n, item, _substeps(sim, tau), chi > 0))
    sub = sim.substrates[0]
    level = sim.treatment.plasma().get(sub.name, sub.cfg.blood) if sub.is_drug else sub.cfg.blood
    record(f"coefficients ({sub.name})",
           lambda: ops.coefficients(sub, st, st[sub.name], level),
           traffic.coefficients_bytes(n, item, sub.cfg))
    step = sim.substrate_step
    if step.mg is not None:
        # the batch's operator of the last step is still prepared: one V-cycle of every
        # substrate on a copy of the fields, and one residual check
        mg, shapes = step.mg, solver_levels(sim)
        x = xp.copy(st.substrates)
        everyone = [True] * mg.n
        cycle = sum(traffic.vcycle_batched_elems(shapes, s.kinds, traffic.coefficient_flags(s.cfg))
                    for s in sim.substrates)
        check = sum(2 * n + traffic.level0_operator_elems(n, traffic.coefficient_flags(s.cfg))
                    for s in sim.substrates)
        record("V-cycle (batched, every substrate)", lambda: mg._cycle(x, everyone, False),
               cycle * item)
        record("residual check (bmg_residual_norms)",
               lambda: mg.ops.residual_norms(mg.levels[0], x, mg.rhs), check * item)
    else:
        # the fine level holds the last substrate's system from the last step
        solver = step.pcg
        lev = solver.levels[0]
        kinds = lev.modes
        p = xp.asarray(np.random.default_rng(0).random(lev.shape), dtype=sim.dtype)
        q = xp.empty_like(p)
        rhs = xp.asarray(np.random.default_rng(1).random(lev.shape), dtype=sim.dtype)
        record("stencil apply (A x)", lambda: ops.stencil(lev, p, q),
               traffic.stencil_elems(lev.shape, kinds) * item)
        record("stencil residual (b - A x)", lambda: ops.stencil(lev, p, q, rhs=rhs),
               traffic.stencil_elems(lev.shape, kinds, residual=True) * item)
        record("Jacobi sweep", lambda: ops.jacobi(lev, rhs, lev.x, lev.winv),
               traffic.jacobi_elems(lev.shape, kinds) * item)
        shapes = [lv.shape for lv in solver.levels]
        record("V-cycle", lambda: solver.multigrid.vcycle(lev, rhs),
               traffic.vcycle_elems(shapes, kinds) * item)
    obs = sim.observer
    labels = obs.niche_labels(st)
    ref = obs.reference
    n_labels = 2 * ref.n_strata if ref is not None else 0
    T0 = ref.T0 if ref is not None else None
    record("observable sums",
           lambda: ops.observable_sums(obs, st, labels, T0, n_labels),
           (5 + 2 + len(sim.drugs) + (1 if T0 is not None else 0)) * n * item + n)
    a = xp.empty(sim.grid.shape, sim.dtype)
    b = xp.zeros(sim.grid.shape, sim.dtype)
    record("copy of one field (xp.copyto)", lambda: xp.copyto(a, b), 2 * n * item)
    return out
