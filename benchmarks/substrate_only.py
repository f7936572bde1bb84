"""The substrate-only problem: implicit diffusion–decay–uptake, what peers benchmark.

On the ``bench_substrates3d`` tissue (cells frozen) each step advances the first
``n_substrates`` substrates by one implicit step of ``dt``: the coefficients (decay, vessel
exchange, uptake by the cells, secretion) from the frozen cells, then one backward-Euler
MG-PCG solve to ``numerics.rtol`` warm-started from the previous step. The figure of merit
peers report is voxel-substrate updates per second = voxels × substrates / seconds.
"""
from __future__ import annotations

import math
import statistics
import time

from . import traffic
from .coupled import field_totals
from .measure import PeakMemory, summary_of, timed
from .problems import build


def run_case(cfg, backend, n_substrates, *, min_steps=3, max_steps=10, min_seconds=2.0,
             copy_bandwidth_Bps=None, log=print):
    dt = float(cfg.run.dt)
    shape = tuple(cfg.grid.shape)
    res = {"problem": "substrates3d", "backend": backend.name, "shape": list(shape),
           "voxels": math.prod(shape), "dx_um": cfg.grid.dx, "dt_min": dt,
           "precision": cfg.backend.precision, "rtol": cfg.numerics.rtol,
           "n_substrates": n_substrates}
    with PeakMemory(backend) as mem:
        sim, how = build(cfg, backend)
        res["tissue"] = how
        subs = sim.substrates[:n_substrates]
        res["substrates"] = [s.name for s in subs]
        st, ops, solver, num = sim.state, sim.ops, sim.solver, sim.cfg.numerics
        res["diffusion_number"] = {s.name: s.cfg.diffusion * dt / cfg.grid.dx**2 for s in subs}

        def step():
            coeff_s = solve_s = 0.0
            its = {}
            for sub in subs:
                c = st[sub.name]
                t0 = time.perf_counter()
                D, a, b = ops.coefficients(sub, st, c, sub.cfg.blood)
                backend.synchronize()
                t1 = time.perf_counter()
                c_new, info = solver.step(c, D=D, a=a, b=b, dt=dt,
                                          boundary=sub.boundary(sub.cfg.blood),
                                          rtol=num.rtol, max_iter=num.max_iterations)
                st[sub.name] = c_new
                backend.synchronize()
                coeff_s += t1 - t0
                solve_s += time.perf_counter() - t1
                its[sub.name] = info.iterations
            return coeff_s, solve_s, its

        timed(backend, step)                      # warm-up (kernel loading, caches)
        totals, coeffs, solves, iters, nbytes = [], [], [], [], []
        shapes = [lev.shape for lev in solver.levels]
        start = time.perf_counter()
        while len(totals) < max_steps:
            seconds, (c_s, s_s, its) = timed(backend, step)
            totals.append(seconds)
            coeffs.append(c_s)
            solves.append(s_s)
            iters.append(its)
            n, item = sim.grid.size, sim.dtype.itemsize
            nbytes.append(sum(
                traffic.coefficients_bytes(n, item, s.cfg)
                + traffic.solve_bytes(shapes, s.kinds, traffic.coefficient_flags(s.cfg),
                                      its[s.name], item)
                + traffic.substrate_update_bytes(n, item, False) for s in subs))
            if len(totals) >= min_steps and time.perf_counter() - start >= min_seconds:
                break
        res["field_totals"] = field_totals(sim, res["substrates"])
        mem.read()
    t = statistics.median(totals)
    res["step"] = {**summary_of(totals), "coefficients_median_s": statistics.median(coeffs),
                   "solve_median_s": statistics.median(solves), "iterations": iters,
                   "bytes": nbytes, "bytes_median": statistics.median(nbytes)}
    res["voxel_substrate_updates_per_s"] = res["voxels"] * n_substrates / t
    res["effective_bandwidth_Bps"] = statistics.median(nbytes) / t
    if copy_bandwidth_Bps:
        res["roofline_fraction"] = res["effective_bandwidth_Bps"] / copy_bandwidth_Bps
    res["memory"] = mem.as_dict()
    log(f"    substrates3d {n_substrates} sub dt={dt:g} {cfg.backend.precision} "
        f"{backend.name}: {t * 1e3:.1f} ms/step, "
        f"{res['voxel_substrate_updates_per_s']:.3g} voxel-substrate updates/s")
    del sim
    return res
