"""The Python steps of the one-shot GPU session (``benchmarks/gpu_session.sh``).

    python -m benchmarks.gpu_session parity  --shape 64 --out DIR   # cupy against numpy
    python -m benchmarks.gpu_session bench   --out DIR [--tiny]     # the suite's GPU plan
    python -m benchmarks.gpu_session kernels --shape 256            # each hot kernel once

``parity``: ``bench_tissue3d`` at shape³ on ``numpy`` and ``cupy`` from the same state for
the same steps, in float64 (solves to rtol 1e-12; fields must agree to 1e-10 of their peak,
which leaves room for summation order only) and float32 (the default rtol 1e-6; 1e-4, the
tolerance ``tests/test_backend_parity.py`` derives: each step's solves differ by about
rtol, the model contracts differences, 100× margin). Writes ``parity.json``; exits 1 if a
field or observable disagrees.

``bench``: the benchmark suite (``benchmarks/suite.py``) on ``cupy`` and ``cupy-arrays``
with the session's subset of the GPU plan: device copy bandwidth, the 2D section at 1024²,
the substrate-only problem at 100³ (1 and 4 substrates, dt 0.01 and 6 min), the 3D tissue
at 128³ and 256³; ``--tiny`` takes the suite's quick plan instead (CI, on the device
double). Results (mode ``full``, so ``python -m benchmarks --readme`` tabulates them) go to
``DIR/results.json`` and ``DIR/results.md``.

``kernels``: one ``bench_tissue3d`` step at shape³ (compilation and first allocations),
then, between ``cupy.cuda.profiler.start()`` and ``stop()``, each hot kernel launched
once on the finest arrays: what ``ncu --profile-from-start off`` records.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

#: field tolerances of the parity step (derivations in the module docstring)
PARITY = {"float64": {"rtol": 1e-12, "tolerance": 1e-10},
          "float32": {"rtol": 1e-6, "tolerance": 1e-4}}
HOT_KERNELS = ("cell_kinetics", "substrate_coefficients", "stencil_apply", "jacobi_sweep",
               "restrict_sum", "prolong_add", "transport_max_jump", "transport_substep",
               "observable_sums")


def _relative(a, b) -> float:
    scale = max(float(np.max(np.abs(a))), 1e-300)
    return float(np.max(np.abs(a - b))) / scale


def parity(shape: int, steps: int, out: Path) -> int:
    from spatialdtp.backends import get_backend

    from . import problems

    report, ok = {"shape": [shape] * 3, "steps": steps, "cases": {}}, True
    for precision, p in PARITY.items():
        runs, seconds = {}, {}
        for name in ("numpy", "cupy"):
            cfg = problems.load("tissue3d", (shape,) * 3, precision,
                                extra=[f"numerics.rtol={p['rtol']}"])
            t0 = time.perf_counter()
            sim, _how = problems.build(cfg, get_backend(name))
            for _ in range(steps):
                sim.step()
            sim.backend.synchronize()
            seconds[name] = time.perf_counter() - t0
            runs[name] = (sim.fields(), sim.observables())
        (f_ref, o_ref), (f_got, o_got) = runs["numpy"], runs["cupy"]
        fields = {k: _relative(f_ref[k], f_got[k]) for k in f_ref}
        obs = {k: _relative(v[np.isfinite(v)], o_got[k][np.isfinite(v)])
               for k, v in o_ref.items() if np.isfinite(v).any() and not k.startswith("on_")}
        worst = max(list(fields.values()) + list(obs.values()))
        passed = worst <= p["tolerance"] and all(
            np.array_equal(o_ref[k], o_got[k]) for k in o_ref if k.startswith("on_"))
        ok = ok and passed
        report["cases"][precision] = {"tolerance": p["tolerance"], "rtol": p["rtol"],
                                      "worst": worst, "passed": passed, "fields": fields,
                                      "observables": obs, "seconds": seconds}
        print(f"parity {shape}³ {precision}: worst relative difference {worst:.3g} "
              f"(tolerance {p['tolerance']:g}) -> {'ok' if passed else 'FAILED'}; "
              f"numpy {seconds['numpy']:.1f} s, cupy {seconds['cupy']:.1f} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "parity.json").write_text(json.dumps(report, indent=1))
    return 0 if ok else 1


def session_plan(budget_s: float):
    """The session's subset of the suite's GPU plan (see the module docstring)."""
    from .suite import Plan

    steps = dict(min_steps=5, max_steps=5, min_seconds=0.0)
    return Plan(mode="full", coupled=[("section2d", [(1024, 1024)]),
                                      ("tissue3d", [(128, 128, 128), (256, 256, 256)])],
                substrate_shape=(100, 100, 100), substrate_counts=(1, 4),
                substrate_dts=(0.01, 6.0), substrate_precisions=("float32",),
                scaling2d=[], probe_voxels=0, steps=steps, substrate_steps=steps,
                scaling_steps=dict(min_steps=4, max_steps=4, min_seconds=0.0),
                phase_steps=2, max_output_bytes=2**28,
                max_step_s={"cupy": 5.0, "cupy-arrays": 5.0}, budget_s=budget_s)


def bench(out: Path, tiny: bool, budget: float) -> int:
    from . import report, suite

    t0 = time.perf_counter()
    plan = None if tiny else session_plan(budget)
    results = suite.run("quick" if tiny else "full", ["cupy", "cupy-arrays"],
                        log=lambda msg: print(msg, flush=True),
                        on_result=lambda r: report.write_json(r, out),
                        budget=budget if tiny else None, custom_plan=plan)
    results["session"] = {"plan": "tiny (quick)" if tiny else "gpu session",
                          "seconds": time.perf_counter() - t0}
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(results, out)
    (out / "results.md").write_text(report.markdown(results))
    unavailable = [n for n, b in results["backends"].items() if not b.get("available")]
    for name in unavailable:
        print(f"backend {name} unavailable: {results['backends'][name].get('reason')}")
    return 1 if unavailable or not results["coupled"] else 0


def kernels(shape: int) -> int:
    """Each hot kernel once, between profiler start and stop (for ncu)."""
    import cupy

    from spatialdtp.backends import get_backend

    from . import problems

    backend = get_backend("cupy")
    sim, how = problems.build(problems.load("tissue3d", (shape,) * 3), backend)
    sim.step()                                    # compile, allocate, fill the levels
    backend.synchronize()
    ops, st, lev = sim.ops, sim.state, sim.solver.levels[0]
    sub = sim.substrates[0]
    observer = sim.observer
    if observer.reference is None:
        observer.capture_reference(st)
    labels = observer.niche_labels(st)
    n_labels = 2 * observer.reference.n_strata
    chi = float(sim.cfg.cells.macrophage.chemotaxis)
    motility_m = (0.0,) * 4 + (sim.motilities[4],)
    launched = {}
    cupy.cuda.profiler.start()
    try:
        steps = [
            ("cell_kinetics", lambda: ops.react_cells(st, sim.kinetics, sim.cfg.treatment, 5.0)),
            ("substrate_coefficients",
             lambda: ops.coefficients(sub, st, st[sub.name], float(sub.cfg.blood))),
            ("stencil_apply", lambda: ops.stencil(lev, lev.x, lev.r, rhs=lev.b)),
            ("jacobi_sweep", lambda: ops.jacobi(lev, lev.b, lev.x, lev.winv)),
            ("restrict_sum", lambda: ops.restrict(lev, lev.r, lev.coarse.b)),
            ("prolong_add", lambda: ops.prolong(lev, lev.coarse.x, lev.x)),
            # the TAMs' chemotaxis: transport_max_jump, then one transport_substep
            ("transport_max_jump+transport_substep",
             lambda: ops.move_cells(st, motility_m, chi, 1.0)),
            ("observable_sums", lambda: ops.observable_sums(observer, st, labels, observer.reference.T0,
                                                          n_labels)),
        ]
        for name, fn in steps:
            t0 = time.perf_counter()
            fn()
            backend.synchronize()
            launched[name] = time.perf_counter() - t0
    finally:
        cupy.cuda.profiler.stop()
    assert "+".join(launched).split("+") == list(HOT_KERNELS)
    print(f"kernels at {shape}³ ({how}): " + ", ".join(
        f"{k} {v * 1e3:.2f} ms" for k, v in launched.items()), flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_session")
    ap.add_argument("step", choices=("parity", "bench", "kernels"))
    ap.add_argument("--shape", type=int, default=64)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--budget", type=float, default=180.0)
    args = ap.parse_args(argv)
    import logging
    logging.getLogger("spatialdtp").setLevel(logging.ERROR)
    if args.step == "parity":
        return parity(args.shape, args.steps, args.out)
    if args.step == "bench":
        return bench(args.out, args.tiny, args.budget)
    return kernels(args.shape)


if __name__ == "__main__":
    sys.exit(main())
