"""The substrate-only problem: implicit diffusion–decay–uptake, what peers benchmark.

On the ``bench_substrates3d`` tissue (cells frozen) each step advances the first
``n_substrates`` substrates by one implicit step of ``dt``: the coefficients (decay, vessel
exchange, uptake by the cells, secretion) from the frozen cells, then one backward-Euler
solve of the configured solver (``numerics.solver``: the batched multigrid of every
substrate at once, or PCG one at a time) to ``numerics.rtol``, started from the
predictor of the previous steps, as in a run. The figure of merit
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
        from spatialdtp.run.substrate_step import SubstrateStep

        st, num = sim.state, sim.cfg.numerics
        res["diffusion_number"] = {s.name: s.cfg.diffusion * dt / cfg.grid.dx**2 for s in subs}
        res["solver"] = num.solver
        stepper = SubstrateStep(subs, sim.grid, sim.ops, sim.xp, sim.dtype, num)
        planes = st.substrates[:n_substrates]
        t_sim = [0.0]

        def step():
            t0 = time.perf_counter()
            stepper.step(st, dt, {}, t_sim[0], planes=planes)
            backend.synchronize()
            t_sim[0] += dt
            return time.perf_counter() - t0, dict(stepper.report.step_iterations)

        timed(backend, step)                      # warm-up (kernel loading, caches)
        totals, solves, iters, nbytes = [], [], [], []
        levels = stepper.mg.levels if stepper.mg is not None else stepper.pcg.levels
        shapes = [lev.shape for lev in levels]
        start = time.perf_counter()
        while len(totals) < max_steps:
            seconds, (s_s, its) = timed(backend, step)
            totals.append(seconds)
            solves.append(s_s)
            iters.append(its)
            n, item = sim.grid.size, sim.dtype.itemsize
            coeff = traffic.batch_coefficients_bytes(n, item, [s.cfg for s in subs])
            if stepper.mg is not None:
                work = stepper.work
                solve = traffic.multigrid_bytes(
                    shapes, {s.name: (s.cfg, s.kinds) for s in subs}, its, work["checks"],
                    work["restarts"], item, predictor=work["predictor"],
                    checked=work.get("checked"))
            else:
                solve = sum(traffic.solve_bytes(shapes, s.kinds,
                                                traffic.coefficient_flags(s.cfg),
                                                its[s.name], item)
                            + traffic.substrate_update_bytes(n, item, False) for s in subs)
            nbytes.append(coeff + solve)
            if len(totals) >= min_steps and time.perf_counter() - start >= min_seconds:
                break
        res["field_totals"] = field_totals(sim, res["substrates"])
        mem.read()
    t = statistics.median(totals)
    res["step"] = {**summary_of(totals), "solve_median_s": statistics.median(solves),
                   "iterations": iters,
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
