"""Results to files: ``results.json``, ``results.md`` (tables) and PNG plots, and the
README's copy of the latest tables."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"

#: peer figures from ../shared/ENVIRONMENT.md (BioFVM 1.0.4, 100³, one thread of the
#: 2-core machine the CPU results were recorded on); not re-measured by the suite
PEER = {"name": "BioFVM 1.0.4 (implicit LOD, double, 1 thread)", "shape": [100, 100, 100],
        "voxel_substrate_updates_per_s": {1: 7.5e6, 4: 2.1e7},
        "source": "../shared/ENVIRONMENT.md (measured on the 2-core CPU machine, not by "
                  "this suite)"}

#: GPU-issue targets (issue 3, point 7)
TARGETS = {"reaction_fraction": 0.70, "step_fraction": 0.40, "days30_256_s": 60.0}


# --------------------------------------------------------------------------- formatting
def _si(x, unit="", digits=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g} {prefix}{unit}".strip()
    return f"{x:.{digits}g} {unit}".strip()


def _bytes(x):
    if x is None:
        return "–"
    for scale, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x} B"


def _ms(s):
    return "–" if s is None else (f"{s * 1e3:.3g}" if s < 100 else f"{s * 1e3:.0f}")


def _seconds(s):
    if s is None:
        return "–"
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    return f"{s / 3600:.3g} h"


def _frac(x):
    return "–" if x is None else f"{100 * x:.1f} %"


def _grid(shape):
    if len(set(shape)) == 1:
        return f"{shape[0]}{'²' if len(shape) == 2 else '³'}"
    return "×".join(map(str, shape))


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def contention_lines(results) -> list[str]:
    """`cpu` idle and busy with passive and spinning OpenMP waiting (benchmarks/contention)."""
    ct = results.get("contention")
    if not ct:
        return []
    rows = [[f"`{r['policy']}`", "busy" if r["busy"] else "idle", r["burners"], r["threads"],
             _ms(r["median_step_s"])] for r in ct["runs"]]
    q = ct["ratios"]
    text = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in q.items())
    return [f"`cpu` on a shared machine ({ct['problem']} {_grid(ct['shape'])}, median of "
            f"{ct['steps']} steps; busy: one CPU-bound process per core beside the run; "
            "`passive` is spatialdtp's default, `spin` libgomp's):", "",
            _table(["OpenMP waiting", "machine", "burners", "threads", "step (ms)"], rows), "",
            f"Ratios: {text}.", ""]


# --------------------------------------------------------------------------- ratios
def _find(cases, problem, shape, backend):
    for r in cases:
        if r["problem"] == problem and list(r["shape"]) == list(shape) and r["backend"] == backend:
            return r
    return None


def speedups(results) -> list[dict]:
    """Ratios of step times taken in the same run: each backend against the NumPy
    reference and the array-expression baseline of its own device."""
    out = []
    cases = results.get("coupled", [])
    for r in cases:
        row = {"problem": r["problem"], "shape": r["shape"], "backend": r["backend"]}
        ref = _find(cases, r["problem"], r["shape"], "numpy")
        base = "cupy-arrays" if r["backend"] in ("cupy", "cupy-arrays") else "numpy"
        arrays = _find(cases, r["problem"], r["shape"], base)
        t = r["step"]["median_s"]
        row["vs_numpy"] = ref["step"]["median_s"] / t if ref else None
        row["vs_array_baseline"] = arrays["step"]["median_s"] / t if arrays else None
        row["array_baseline"] = base
        out.append(row)
    return out


def _same_case(a, b) -> bool:
    keys = ("problem", "shape", "dt_min", "precision", "n_substrates")
    return all(a.get(k) == b.get(k) for k in keys)


def agreement(results, case) -> float | None:
    """Largest relative difference of the field totals of ``case`` from those of the NumPy
    reference on the same problem after the same steps (None: no reference measured)."""
    if case["backend"] == "numpy" or "field_totals" not in case:
        return None
    pool = results.get("coupled", []) + results.get("substrates", [])
    ref = next((r for r in pool if r["backend"] == "numpy" and _same_case(r, case)
                and "field_totals" in r), None)
    if ref is None:
        return None
    worst = 0.0
    for name, value in ref["field_totals"].items():
        other = case["field_totals"].get(name)
        if other is None:
            continue
        scale = max(abs(value), abs(other), 1e-300)
        worst = max(worst, abs(other - value) / scale)
    return worst


def _agree(results, case):
    d = agreement(results, case)
    return "–" if d is None else f"{d:.1e}"


def targets(results) -> dict:
    """The GPU issue's targets, from the cupy backend's largest measured 3D tissue (or its
    largest case if it ran no 3D tissue)."""
    cases = [r for r in results.get("coupled", []) if r["backend"] == "cupy"]
    out = {}
    if not cases:
        return out
    tissues = [r for r in cases if r["problem"] == "tissue3d"] or cases
    big = max(tissues, key=lambda r: r["voxels"])
    k = next((v for n, v in big.get("kernels", {}).items() if n.startswith("reaction")), {})
    out["largest_case"] = {"problem": big["problem"], "shape": big["shape"]}
    out["reaction_fraction"] = k.get("roofline_fraction")
    out["step_fraction"] = big.get("roofline_fraction")
    t256 = _find(cases, "tissue3d", [256, 256, 256], "cupy")
    if t256:
        out["days30_256_s"] = t256["projected_30_days_s"]
        out["days30_256_with_output_s"] = t256["projected_30_days_s"] * (
            1 + t256.get("output", {}).get("amortised_per_step_s", 0.0)
            / t256["step"]["median_s"])
    return out


# --------------------------------------------------------------------------- markdown
def markdown(results, plots=(), level: int = 1, brief: bool = False) -> str:
    """The tables of one run; ``level``: the heading level of its title; ``brief``: without
    the table of hot operations (the README's copy)."""
    h1, h2 = "#" * level, "#" * (level + 1)
    m = results.get("machine", {})
    git = m.get("git", {})
    v = m.get("versions", {})
    cb = results.get("copy_bandwidth", {})
    lines = [f"{h1} Results: {m.get('device_slug', '?')} ({results.get('mode')} mode)", ""]
    gpu = m.get("gpu")
    lines.append(f"Measured {m.get('date')} at commit `{(git.get('commit') or '?')[:12]}`"
                 f"{' (with uncommitted changes)' if git.get('dirty') else ''}; "
                 f"CPU {m.get('cpu')} ({m.get('cores')} cores, "
                 f"{_bytes(m.get('host_memory_bytes'))})"
                 + (f"; GPU {gpu['name']} ({_bytes(gpu['memory_bytes'])})" if gpu else "")
                 + f"; Python {v.get('python')}, NumPy {v.get('numpy')}, "
                 f"CuPy {v.get('cupy') or '–'}, h5py {v.get('h5py')}, {v.get('cxx') or ''}. "
                 f"Suite time {results.get('elapsed_s', 0):.0f} s.")
    lines.append("")
    host = cb.get("host", {})
    parts = []
    for c in host.values():
        parts.append(f"host {_si(c['bandwidth_Bps'], 'B/s')} ({c['threads']} thread"
                     f"{'s' if c['threads'] > 1 else ''})")
    if "device" in cb:
        parts.append(f"device {_si(cb['device']['bandwidth_Bps'], 'B/s')} (cupy.copyto)")
    lines.append("Copy bandwidth, this run (the roofline's 100 %: the device's, or the better "
                 "host figure): " + ", ".join(parts) + ".")
    load = [results.get("load_average_start"), results.get("load_average_end")]
    if all(load):
        busy = max(load[0][0], load[1][0]) > (m.get("cores") or 1) + 0.5
        lines.append(f"Load average (1 min) at start {load[0][0]:.2g}, at end {load[1][0]:.2g} "
                     f"on {m.get('cores')} cores" + (
                         ": other work shared the machine and slowed the figures (the OpenMP "
                         "loops of `cpu` the most)." if busy else "."))
    lines.append("")
    backs = results.get("backends", {})
    lines.append("Backends: " + "; ".join(
        f"`{n}` {'– ' + b['device'] if b.get('available') else 'unavailable: ' + b.get('reason', '')[:120]}"
        for n, b in backs.items()) + ".")
    lines.append("")
    lines += contention_lines(results)

    # coupled
    cases = results.get("coupled", [])
    if cases:
        sp = {(r["problem"], tuple(r["shape"]), r["backend"]): r for r in speedups(results)}
        rows = []
        for r in cases:
            s = sp[(r["problem"], tuple(r["shape"]), r["backend"])]
            mem = r.get("memory", {})
            rows.append([r["problem"], _grid(r["shape"]), f"`{r['backend']}`",
                         _ms(r["step"]["median_s"]), _si(r["voxel_steps_per_s"]),
                         f"{r['sim_days_per_wall_minute']:.3g}",
                         _seconds(r["projected_30_days_s"]),
                         _si(r["effective_bandwidth_Bps"], "B/s"),
                         _frac(r.get("roofline_fraction")),
                         _bytes(mem.get("peak_host_rss_bytes")),
                         _bytes(mem.get("peak_device_pool_bytes")),
                         "–" if s["vs_numpy"] is None else f"{s['vs_numpy']:.2f}×",
                         "–" if s["vs_array_baseline"] is None
                         else f"{s['vs_array_baseline']:.2f}× ({s['array_baseline']})",
                         _agree(results, r)])
        lines += [f"{h2} Coupled steps (dt = {cases[0]['dt_min']:g} min, "
                  f"{cases[0]['precision']})", "",
                  _table(["problem", "grid", "backend", "ms/step", "voxel-steps/s",
                          "sim. days/min", "30 days", "eff. bandwidth", "roofline",
                          "peak host RSS", "peak device", "speed-up vs numpy",
                          "vs array baseline", "Δ totals vs numpy"], rows), ""]

        # phases
        rows = []
        for r in cases:
            ph = r.get("phases", {}).get("phases", {})
            if not ph:
                continue
            its = r["phases"].get("iterations", {})
            out = r.get("output", {})
            rows.append([r["problem"], _grid(r["shape"]), f"`{r['backend']}`",
                         _ms(r["phases"]["step_s"]),
                         _ms(ph.get("reactions", {}).get("seconds")),
                         _ms(ph.get("transport", {}).get("seconds")),
                         f"{_ms(ph.get('substrates (all)', {}).get('seconds'))} "
                         f"(coefficients {_ms(ph.get('substrates:coefficients', {}).get('seconds'))}; "
                         f"{r.get('solver', 'pcg')} "
                         f"{'/'.join(str(v) for v in its.values())} it)",
                         _ms(ph.get("observables", {}).get("seconds")),
                         _ms(ph.get("other", {}).get("seconds")),
                         f"{_ms(out.get('frame_s'))} ({_ms(out.get('amortised_per_step_s'))}/step)"
                         if out else "–"])
        if rows:
            lines += [f"{h2} Phases of one step (ms; substrates: coefficients + the "
                      "solve, its iterations per substrate in brackets: V-cycles "
                      "(multigrid) or CG iterations (pcg))", "",
                      _table(["problem", "grid", "backend", "step", "reactions (×2)",
                              "transport (×2)", "substrates", "observables", "other",
                              "output frame (amortised)"], rows), ""]

        # kernels
        rows = []
        for r in ([] if brief else cases):
            for name, k in r.get("kernels", {}).items():
                if "error" in k:
                    rows.append([r["problem"], _grid(r["shape"]), f"`{r['backend']}`", name,
                                 "error", "", "", k["error"][:80]])
                    continue
                rows.append([r["problem"], _grid(r["shape"]), f"`{r['backend']}`", name,
                             f"{k['seconds'] * 1e6:.4g}", _bytes(k["bytes"]),
                             _si(k["effective_bandwidth_Bps"], "B/s"),
                             _frac(k.get("roofline_fraction"))])
        if rows:
            lines += [f"{h2} Hot operations, one at a time", "",
                      _table(["problem", "grid", "backend", "operation", "µs/call", "bytes",
                              "eff. bandwidth", "roofline"], rows), ""]

    lines += _solvers_table(results.get("solvers"), h2)

    # substrate-only
    subs = results.get("substrates", [])
    if subs:
        rows = []
        for r in subs:
            peer = PEER["voxel_substrate_updates_per_s"].get(r["n_substrates"])
            its = r["step"]["iterations"][-1]
            rows.append([r["n_substrates"], f"{r['dt_min']:g}", r["precision"],
                         f"`{r['backend']}`", _ms(r["step"]["median_s"]),
                         "/".join(str(i) for i in its.values()),
                         _si(r["voxel_substrate_updates_per_s"]),
                         f"{r['voxel_substrate_updates_per_s'] / peer:.2f}×"
                         if peer and list(r["shape"]) == PEER["shape"] else "–",
                         _si(r["effective_bandwidth_Bps"], "B/s"),
                         _frac(r.get("roofline_fraction")),
                         _bytes(r.get("memory", {}).get("peak_host_rss_bytes")),
                         _agree(results, r)])
        shape = _grid(subs[0]["shape"])
        lines += [f"{h2} Substrate only: implicit diffusion–decay–uptake, {shape} at "
                  f"{subs[0]['dx_um']:g} µm", "",
                  f"Peer: {PEER['name']}, 100³: "
                  f"{_si(PEER['voxel_substrate_updates_per_s'][1])} (1 substrate), "
                  f"{_si(PEER['voxel_substrate_updates_per_s'][4])} (4 substrates) "
                  f"voxel-substrate updates/s, from {PEER['source']}.", "",
                  _table(["substrates", "dt (min)", "precision", "backend", "ms/step",
                          "iterations", "voxel-substrate updates/s", "vs BioFVM",
                          "eff. bandwidth", "roofline", "peak host RSS",
                          "Δ totals vs numpy"], rows), ""]

    # scaling
    sc = results.get("scaling", [])
    if sc:
        sizes = sorted({tuple(p["shape"]) for p in sc}, key=lambda s: math.prod(s))
        names = [n for n in results.get("backends", {}) if any(p["backend"] == n for p in sc)]
        rows = []
        for shape in sizes:
            row = [_grid(shape)]
            for n in names:
                p = next((q for q in sc if q["backend"] == n and tuple(q["shape"]) == shape), None)
                row.append("–" if p is None else
                           f"{_ms(p['step_s'])} ({_si(p['voxel_steps_per_s'])}/s)")
            rows.append(row)
        lines += [f"{h2} Scaling: ms per step (voxel-steps/s), 2D section", "",
                  _table(["grid"] + [f"`{n}`" for n in names], rows), ""]

    tg = targets(results)
    if tg:
        lines += [f"{h2} GPU targets (issue 3, point 7)", ""]
        lines.append(f"- fused reaction kernel at {_frac(tg.get('reaction_fraction'))} of the "
                     f"device copy bandwidth (target ≥ {TARGETS['reaction_fraction']:.0%}), "
                     f"{tg['largest_case']['problem']} {_grid(tg['largest_case']['shape'])}")
        lines.append(f"- whole coupled step at {_frac(tg.get('step_fraction'))} (target ≥ "
                     f"{TARGETS['step_fraction']:.0%}), same case")
        if "days30_256_s" in tg:
            lines.append(f"- 3D 256³, all substrates and cell types, 30 days at dt = 10 min: "
                         f"{_seconds(tg['days30_256_s'])} projected from the measured step "
                         f"({_seconds(tg['days30_256_with_output_s'])} with a frame every 12 h "
                         f"written synchronously; target < 60 s)")
        lines.append("")

    skipped = results.get("skipped", [])
    if skipped:
        lines += [f"{h2} Not measured", ""]
        for s in skipped:
            what = ", ".join(f"{k}={v}" for k, v in s.items() if k != "reason")
            lines.append(f"- {what}: {s['reason'][:300]}")
        lines.append("")
    if plots:
        lines += [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots
def plots(results, out_dir) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []
    colours = {"numpy": "tab:blue", "cpu": "tab:orange", "cupy": "tab:green",
               "cupy-arrays": "tab:red"}
    slug = results.get("machine", {}).get("device_slug", "")

    # scaling
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    any_point = False
    for name, colour in colours.items():
        pts = sorted((p for p in results.get("scaling", []) if p["backend"] == name),
                     key=lambda p: p["voxels"])
        pts3 = sorted((r for r in results.get("coupled", [])
                       if r["backend"] == name and r["problem"] == "tissue3d"),
                      key=lambda r: r["voxels"])
        if pts:
            any_point = True
            x = [p["voxels"] for p in pts]
            ax1.loglog(x, [p["step_s"] for p in pts], "o-", color=colour, label=f"{name} 2D")
            ax2.loglog(x, [p["voxel_steps_per_s"] for p in pts], "o-", color=colour,
                       label=f"{name} 2D")
        if pts3:
            any_point = True
            x = [r["voxels"] for r in pts3]
            ax1.loglog(x, [r["step"]["median_s"] for r in pts3], "s--", color=colour,
                       label=f"{name} 3D tissue")
            ax2.loglog(x, [r["voxel_steps_per_s"] for r in pts3], "s--", color=colour,
                       label=f"{name} 3D tissue")
    if any_point:
        ax1.set(xlabel="voxels", ylabel="seconds per coupled step", title="time per step")
        ax2.set(xlabel="voxels", ylabel="voxel-steps per second",
                title="throughput (flat = saturated)")
        for ax in (ax1, ax2):
            ax.grid(True, which="both", alpha=0.3)
        ax2.legend(fontsize=8)
        fig.suptitle(f"spatialdtp scaling, {slug}")
        fig.tight_layout()
        path = out_dir / "scaling.png"
        fig.savefig(path, dpi=110)
        written.append(str(path))
    plt.close(fig)

    # phases: each case's step as 100 %, split into its phases; ms per step on top
    cases = [r for r in results.get("coupled", []) if r.get("phases")]
    if cases:
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(cases) + 3), 4.8))
        groups = ["reactions", "transport", "substrates (all)", "observables", "other",
                  "output (amortised)"]
        totals = []
        for r in cases:
            ph = r["phases"]["phases"]
            totals.append(sum(ph.get(g, {}).get("seconds", 0.0) for g in groups[:-1])
                          + r.get("output", {}).get("amortised_per_step_s", 0.0))
        bottoms = [0.0] * len(cases)
        for g in groups:
            vals = []
            for r, total in zip(cases, totals):
                if g == "output (amortised)":
                    v = r.get("output", {}).get("amortised_per_step_s", 0.0)
                else:
                    v = r["phases"]["phases"].get(g, {}).get("seconds", 0.0)
                vals.append(100.0 * v / total if total > 0 else 0.0)
            ax.bar(range(len(cases)), vals, bottom=bottoms, label=g)
            bottoms = [b + v for b, v in zip(bottoms, vals)]
        for i, total in enumerate(totals):
            ax.text(i, 101, f"{_ms(total)} ms", ha="center", va="bottom", fontsize=7)
        labels = [f"{r['problem']}\n{_grid(r['shape'])}\n{r['backend']}" for r in cases]
        ax.set_xticks(range(len(cases)), labels, fontsize=7)
        ax.set_ylim(0, 112)
        ax.set_ylabel("% of one coupled step")
        ax.set_title(f"phases of one coupled step (ms per step on top), {slug}")
        ax.legend(fontsize=7, loc="lower left", framealpha=0.9)
        fig.tight_layout()
        path = out_dir / "phases.png"
        fig.savefig(path, dpi=110)
        written.append(str(path))
        plt.close(fig)

    # roofline fractions of the hot operations and whole steps
    rows = []
    for r in results.get("coupled", []):
        for name, k in r.get("kernels", {}).items():
            if "roofline_fraction" in k:
                rows.append((f"{r['problem']} {_grid(r['shape'])}", r["backend"], name,
                             k["roofline_fraction"]))
        if r.get("roofline_fraction") is not None:
            rows.append((f"{r['problem']} {_grid(r['shape'])}", r["backend"], "whole step",
                         r["roofline_fraction"]))
    if rows:
        # the largest case that every backend measured (so that bars compare like with
        # like), else the largest of each backend
        with_kernels = [r for r in results.get("coupled", []) if r.get("kernels")]
        backs = {r["backend"] for r in with_kernels}
        common = [r for r in with_kernels if all(
            any(q["backend"] == b and q["problem"] == r["problem"] and q["shape"] == r["shape"]
                for q in with_kernels) for b in backs)]
        best = {}
        for r in (common or with_kernels):
            if r["backend"] not in best or r["voxels"] > best[r["backend"]]["voxels"]:
                best[r["backend"]] = r
        ops = []
        for r in best.values():
            for n in list(r["kernels"]) + ["whole step"]:
                if n not in ops:
                    ops.append(n)
        fig, ax = plt.subplots(figsize=(10, 0.35 * len(ops) * max(1, len(best)) + 1.5))
        height = 0.8 / max(1, len(best))
        for j, (name, r) in enumerate(best.items()):
            vals = []
            for n in ops:
                if n == "whole step":
                    vals.append(r.get("roofline_fraction") or 0.0)
                else:
                    vals.append(r["kernels"].get(n, {}).get("roofline_fraction", 0.0))
            ax.barh([i + j * height for i in range(len(ops))], vals, height=height,
                    color=colours.get(name), label=f"{name} ({r['problem']} {_grid(r['shape'])})")
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(ops))], ops, fontsize=8)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xlabel("effective bandwidth / copy bandwidth of the same device")
        ax.set_title(f"roofline fractions, {slug}")
        ax.invert_yaxis()
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / "roofline.png"
        fig.savefig(path, dpi=110)
        written.append(str(path))
        plt.close(fig)
    return written


# --------------------------------------------------------------------------- files
def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item") and callable(x.item):       # NumPy scalars
        return _jsonable(x.item())
    return x


def _solvers_table(sv, h2) -> list:
    """The solvers side by side (:mod:`benchmarks.solvers`)."""
    if not sv:
        return []
    double = {(d["problem"], tuple(d["shape"]), d["solver"]): d for d in sv.get("double", [])}
    rows = []
    for c in sv.get("cases", []):
        if "error" in c:
            rows.append([c["problem"], _grid(c["shape"]), c["solver"], f"`{c['backend']}`",
                         "error", "", "", "", "", "", c["error"][:60]])
            continue
        d = double.get((c["problem"], tuple(c["shape"]), c["solver"]), {})
        med = d.get("median", {}) if d.get("available") else {}
        rows.append([c["problem"], _grid(c["shape"]), c["solver"], f"`{c['backend']}`",
                     f"{c['ms_per_step']:.1f}", f"{c['iterations_per_step']:g}",
                     f"{c['bytes_per_voxel_step']:.0f}",
                     f"{c['bytes_per_voxel_step_256']:.0f}"
                     if "bytes_per_voxel_step_256" in c else "–",
                     f"{med['kernel_launches']:g}" if med else "–",
                     f"{med['host_syncs']:g}" if med else "–",
                     f"{med['array_launches']:g} / {med['allocations']:g}" if med else "–"])
    goal = sv.get("goal", {})
    lines = [f"{h2} Substrate solvers side by side (`numerics.solver`)", "",
             "Bytes per voxel-step from the traffic model with each step's counted work "
             f"(goal: ≤ {goal.get('bytes_per_voxel_step', '?')} B at "
             f"{_grid(goal.get('shape', []))} `bench_tissue3d`; the 256³ column is the "
             "model on that grid with the work counted here); launches, syncs, array "
             "operations and allocations per step counted on the CuPy device double.", "",
             _table(["problem", "grid", "solver", "backend", "ms/step", "iterations/step",
                     "B/voxel-step", "B/voxel-step at 256³", "kernel launches", "host syncs",
                     "array ops / allocations"], rows), ""]
    jobs = sv.get("default_job", [])
    if jobs:
        lines += ["Default job (`spatialdtp-run`, no overrides): " + "; ".join(
            f"{j['solver']} {j['wall_s']:.1f} s on `{j['backend']}` ({j['days']:g} days, "
            f"{j['steps']} steps, {j['iterations']} iterations, {j['fallbacks']} fallbacks)"
            for j in jobs) + ".", ""]
    return lines


def write_json(results, out_dir) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(results), indent=1, allow_nan=False))
    os.replace(tmp, path)
    return path


def write_all(results, out_dir) -> dict:
    """JSON, PNG plots and the Markdown table into ``out_dir``; their paths."""
    out_dir = Path(out_dir)
    j = write_json(results, out_dir)
    pngs = plots(results, out_dir)
    md = out_dir / "results.md"
    md.write_text(markdown(results, pngs))
    return {"json": str(j), "markdown": str(md), "png": pngs}


def update_readme(results_root, readme: Path = README) -> None:
    """Replace the README's results section by the tables of every
    ``results_root/<device>/results.json`` (the latest run of each device)."""
    results_root = Path(results_root)
    blocks = []
    for path in sorted(results_root.glob("*/results.json")):
        res = json.loads(path.read_text())
        if res.get("mode") != "full":
            continue
        md = markdown(res, level=3, brief=True)
        rel = path.parent.relative_to(readme.parent)
        md += (f"\nFiles: [`{rel}/`]({rel}/) (results.json; results.md, which also times the "
               f"hot operations one at a time; PNG plots).\n")
        md += "".join(f"\n![{p.stem} {path.parent.name}]({rel}/{p.name})"
                      for p in sorted(path.parent.glob("*.png")))
        blocks.append(md + "\n")
    text = readme.read_text()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    body = "\n".join(blocks) if blocks else "No full-mode results recorded yet.\n"
    new = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: new, text,
                      flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + new + "\n"
    readme.write_text(text)
