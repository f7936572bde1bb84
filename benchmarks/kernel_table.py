"""The per-kernel table of ``kernels/README.md``: what the compiler says about each kernel.

``python -m benchmarks.kernel_table`` compiles ``kernels/*.cu`` (the module text the
backends compile, :func:`spatialdtp.backends.kernels.module_source`) with
``nvcc --resource-usage -cubin -arch=sm_90 -ftz=true`` for float32 and float64 and prints,
per kernel and precision:

* **bytes per voxel**: the minimum traffic of one launch (:data:`TRAFFIC`, counted from
  the kernel's source in the conventions of :mod:`benchmarks.traffic`: every operand read
  once and every result written once, neighbours from cache; the counts of the kernels that
  :mod:`benchmarks.traffic` also models are checked against it by
  ``tests/test_kernel_table.py``);
* **registers, spills, local memory** (stack frame): ptxas's figures;
* **occupancy** at the launch block (``SDTP_BLOCK_THREADS`` of ``kernels/sdtp.h``, the
  kernels' ``__launch_bounds__``), from the sm_90 limits (:func:`occupancy`);
* **expected bandwidth fraction**: the share of DRAM bandwidth that the resident threads
  can keep in flight (:func:`latency_bound_fraction`, Little's law), an upper bound that
  ignores instruction throughput.

All of it is compiler-derived expectation, not measurement: nothing here ran on a GPU. The
measured counterparts (bytes, time, achieved bandwidth per kernel) are the GPU session's
Nsight Compute profile (``benchmarks/gpu_session.sh``).

``--write`` replaces the table between the markers in ``kernels/README.md``;
``tests/test_kernel_table.py`` fails when the README's table is not what this prints (with
the same nvcc), so the table cannot go stale.
"""
from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from spatialdtp.backends.kernels import block_threads, module_source, parse_signatures

README = Path(__file__).resolve().parent.parent / "kernels" / "README.md"
BEGIN = "<!-- kernel-table:begin (python -m benchmarks.kernel_table --write) -->"
END = "<!-- kernel-table:end -->"

# ----------------------------------------------------------------------------- sm_90
SM90 = dict(registers_per_sm=65536, threads_per_sm=2048, warps_per_sm=64, blocks_per_sm=32,
            register_unit_per_warp=256, max_registers_per_thread=255)
#: the device the expectation is for (the GPU session's): H200 SXM, HBM3e
DEVICE = dict(name="H200", sms=132, bandwidth=4.8e12, latency=600e-9)


def occupancy(registers: int, threads: int, limits=SM90) -> float:
    """Resident warps / 64 of a kernel using ``registers`` per thread in blocks of
    ``threads`` (no shared memory): registers are allocated per warp in units of 256."""
    warps = math.ceil(threads / 32)
    unit = limits["register_unit_per_warp"]
    per_warp = math.ceil(max(registers, 1) * 32 / unit) * unit
    by_registers = (limits["registers_per_sm"] // per_warp) // warps
    by_threads = limits["threads_per_sm"] // threads
    blocks = min(by_registers, by_threads, limits["blocks_per_sm"],
                 limits["warps_per_sm"] // warps)
    return blocks * warps / limits["warps_per_sm"]


def latency_bound_fraction(occ: float, read_bytes: float, device=DEVICE,
                           limits=SM90) -> float:
    """Little's law: to stream at the full bandwidth B with latency L each SM must keep
    B·L/SMs bytes of loads in flight; a resident thread has the loads of one voxel in
    flight (its grid-stride iterations are not overlapped), so the expected fraction is
    min(1, resident threads × bytes read per voxel / (B·L/SMs)). Writes are not waited
    for. An upper bound: instruction throughput, cache misses on neighbours and the tail of
    a small grid all lower it."""
    needed = device["bandwidth"] * device["latency"] / device["sms"]
    in_flight = occ * limits["threads_per_sm"] * read_bytes
    return min(1.0, in_flight / needed)


# ----------------------------------------------------------------------------- traffic
#: per kernel: (elements read, elements written, bytes of 1-byte masks read) per voxel of
#: the grid the kernel works on, for the reference workload of the table (3D, no-flux
#: boundaries, so 3 interior faces a voxel; one drug; every coefficient a map; a coarse
#: level of N/8 voxels), and where it is counted from
#: (a kernel whose loop item is a coarse cell, 8 fine voxels, is in VOXELS_PER_ITEM)
TRAFFIC = {
    "cell_kinetics": (4 + 1 + 5 + 1, 5, 0,
                      "4 substrates, 1 drug, S P R F M, vessels; writes S P R F M "
                      "(traffic.reaction_bytes)"),
    "substrate_coefficients": (5 + 1 + 1, 11, 0,
                               "bench_tissue3d's batch of 5: 5 cell planes, vessels, glucose's "
                               "c*; writes the 11 maps among their D, a, b "
                               "(traffic.batch_coefficients_bytes)"),
    "stencil_apply": (2 + 3, 1, 0, "x, mass, 3 faces; writes out (traffic.stencil_elems)"),
    "jacobi_sweep": (4 + 3, 1, 0, "x, b, ω/diag, mass, 3 faces; writes x' "
                     "(traffic.jacobi_elems)"),
    "restrict_sum": (1, 1 / 8, 0, "per fine voxel: the fine residual; writes N/8"),
    "prolong_add": (1 + 1 / 8, 1, 0, "per fine voxel: x, the coarse x; writes x"),
    "transport_substep": (1 + 4 + 1, 1, 0, "n, the 4 other cell planes (summed in the "
                          "kernel), the chemokine q (TAMs); writes n' (traffic.transport_bytes)"),
    "transport_max_jump": (1, 0, 0, "the chemokine q; per-chunk partials only"),
    "transport_pressure_substep": (5, 3, 0, "S, P, R, F, M (F + M summed in the kernel); "
                                   "writes S, P, R "
                                   "(traffic.pressure_bytes)"),
    "observable_sums": (11 + 1, 0, 1, "every field of bench_tissue3d's state (S P R F M, "
                        "5 substrates, 1 exposure), T₀, the 1-byte labels; per-chunk "
                        "partials only (traffic.observables_bytes)"),
    "bmg_smooth": (2 + 2, 1, 0, "level 0: x, b, the a and D maps; writes y "
                   "(traffic.vcycle_batched_elems)"),
    "bmg_residual_restrict": (2 + 2, 1 / 8, 0, "level 0: y, b, a, D; writes the coarse b"),
    "bmg_prolong_smooth": (2 + 1 / 8 + 2, 1, 0, "level 0: y, the coarse x, b, a, D; writes x"),
    "bmg_residual_norms": (2 + 2, 0, 0, "level 0: x, b, a, D; per-chunk partials only"),
    "bmg_step_rhs": (2 + 2, 1, 0, "c, the b map, a, D; writes the right-hand side"),
    "bmg_predict": (2, 2, 0, "x, prev; writes both"),
    "bmg_restart": (1, 1, 0, "prev; writes x"),
    "bmg_coarsen": (2, (1 + 3) / 8, 0, "level 0: a, D; writes the coarse mass and 3 faces"),
    "niche_distance_pass": (1, 1, 0, "d2 (its line's 2·top + 1 values from cache); writes "
                            "best; float32 in either precision (traffic.niche_label_bytes)"),
    "niche_distance_pass_u8": (0, 0, 2, "the byte d2 (its line's values from cache); writes "
                               "the byte best (traffic.niche_label_bytes)"),
    "niche_mask": (2, 0, 1, "F, M; writes the 1-byte niche mask (traffic.niche_label_bytes)"),
    "niche_labels": (0, 0, 4 + 3, "k (float32: 4 bytes in either precision), the niche "
                     "and stratum bytes; writes the 1-byte label"),
    "niche_labels_u8": (0, 0, 1 + 3, "the byte k, the niche and stratum bytes; writes the "
                        "1-byte label"),
}
#: element size of a kernel whose arrays are one type whatever ``real`` is
FIXED_ITEMSIZE = {"niche_distance_pass": 4}
#: fine voxels one item of the kernel's loop covers (the loads one thread has in flight)
VOXELS_PER_ITEM = {"restrict_sum": 8, "bmg_residual_restrict": 8, "bmg_coarsen": 8}

_MIN_BLOCKS = re.compile(r"SDTP_KERNEL_MIN_BLOCKS\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*(\w+)\s*\(")


def min_blocks(source: str | None = None) -> dict[str, tuple[int, int]]:
    """The second launch bound (blocks per SM, float32 and float64) each kernel states."""
    source = module_source() if source is None else source
    return {m[2]: (int(m[0]), int(m[1])) for m in _MIN_BLOCKS.findall(source)}


# ----------------------------------------------------------------------------- compiler
_FUNCTION = re.compile(r"Compiling entry function '(\w+)' for 'sm_90'.*?"
                       r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill "
                       r"loads.*?Used (\d+) registers", re.S)


def nvcc_version() -> str:
    out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release ([\d.]+), V([\d.]+)", out)
    return m.group(2) if m else out.strip().splitlines()[-1]


def resource_usage(real: str, source: str | None = None) -> dict[str, dict]:
    """ptxas's figures per kernel: ``{name: {registers, stack, spill_stores, spill_loads}}``
    for ``-DSDTP_REAL=real`` (the backend's options, and CuPy's -ftz=true and sm_90)."""
    source = module_source() if source is None else source
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernels.cu"
        src.write_text(source)
        cmd = ["nvcc", "-std=c++14", f"-DSDTP_REAL={real}", "-ftz=true", "-arch=sm_90",
               "-cubin", "--resource-usage", "-o", str(Path(tmp) / "kernels.cubin"), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed:\n{proc.stderr[-3000:]}")
    log = proc.stdout + proc.stderr
    return {m[0]: dict(stack=int(m[1]), spill_stores=int(m[2]), spill_loads=int(m[3]),
                       registers=int(m[4])) for m in _FUNCTION.findall(log)}


def rows(source: str | None = None) -> list[dict]:
    """One row per kernel and precision, in the order of the kernels' files."""
    source = module_source() if source is None else source
    threads = block_threads(source)
    kernels = list(parse_signatures(source))
    missing = sorted(set(kernels) - set(TRAFFIC))
    if missing:
        raise KeyError(f"benchmarks/kernel_table.py: no traffic count for {missing}")
    out = []
    for real, real_size in (("float", 4), ("double", 8)):
        figures = resource_usage(real, source)
        for name in kernels:
            reads, writes, mask, note = TRAFFIC[name]
            f = figures[name]
            itemsize = FIXED_ITEMSIZE.get(name, real_size)
            read_bytes = reads * itemsize + mask
            occ = occupancy(f["registers"], threads)
            in_flight = read_bytes * VOXELS_PER_ITEM.get(name, 1)
            out.append(dict(kernel=name, real=real, threads=threads, note=note,
                            read_bytes=read_bytes, bytes=read_bytes + writes * itemsize,
                            occupancy=occ, fraction=latency_bound_fraction(occ, in_flight),
                            **f))
    return out


def _num(x: float) -> str:
    return f"{x:g}" if x == int(x) else f"{x:.1f}"


def table(source: str | None = None) -> str:
    """The README's table (markdown), with the heading that says what it is."""
    source = module_source() if source is None else source
    threads = block_threads(source)
    by_kernel: dict[str, dict[str, dict]] = {}
    for r in rows(source):
        by_kernel.setdefault(r["kernel"], {})[r["real"]] = r
    bounds = min_blocks(source)
    d = DEVICE
    needed = d["bandwidth"] * d["latency"] / d["sms"]
    lines = [
        f"Compiler-derived expectations, unverified on a GPU: `nvcc {nvcc_version()} "
        f"--resource-usage -cubin -arch=sm_90 -ftz=true`, blocks of {threads} threads "
        "(`SDTP_BLOCK_THREADS`, every kernel's `__launch_bounds__`). Occupancy: resident "
        "warps of 64 per SM (65536 registers, allocated per warp in units of 256; 2048 "
        "threads; 32 blocks); min blocks: the second `__launch_bounds__` argument "
        "(`SDTP_KERNEL_MIN_BLOCKS`). Bandwidth fraction: min(1, occupancy × 2048 × bytes "
        "read per loop item (8 voxels for a coarse cell) / "
        f"{needed / 1e3:.1f} kB), the loads in flight per SM that Little's law asks "
        f"for at {d['name']}'s {d['bandwidth'] / 1e12:g} TB/s, {d['latency'] * 1e9:g} ns and "
        f"{d['sms']} SMs — an upper bound that ignores instruction throughput "
        "(`cell_kinetics`, `observable_sums` are expected to be instruction-bound). Bytes "
        "per voxel (read + written, f32 / f64): `benchmarks/kernel_table.py`'s `TRAFFIC` "
        "(3D, no-flux, one drug, every coefficient a map).",
        "",
        "| kernel | bytes/voxel f32 / f64 | min blocks f32 / f64 | f32: registers | spills "
        "(st/ld B) | local B | occupancy | bandwidth fraction | f64: registers | spills "
        "(st/ld B) | local B | occupancy | bandwidth fraction |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by in by_kernel.items():
        mb = bounds.get(name)
        cells = [f"`{name}`", f"{_num(by['float']['bytes'])} / {_num(by['double']['bytes'])}",
                 f"{mb[0]} / {mb[1]}" if mb else "–"]
        for real in ("float", "double"):
            r = by[real]
            cells += [str(r["registers"]), f"{r['spill_stores']}/{r['spill_loads']}",
                      str(r["stack"]), f"{100 * r['occupancy']:g} %",
                      f"{100 * r['fraction']:.0f} %"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def readme_table(text: str | None = None) -> str | None:
    """The table between the markers of kernels/README.md (None without markers)."""
    text = README.read_text() if text is None else text
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write_readme(new: str) -> None:
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{BEGIN}\n{new}{END}{tail}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true",
                    help="replace the table in kernels/README.md")
    args = ap.parse_args(argv)
    if shutil.which("nvcc") is None:
        print("nvcc is not on this machine", file=sys.stderr)
        return 2
    t = table()
    if args.write:
        write_readme(t)
    print(t, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
