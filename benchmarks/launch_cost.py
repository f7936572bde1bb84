"""The host cost of one kernel launch: checked and packed every time, or bound once.

A multigrid level's operator is launched dozens of times per step with the same geometry,
faces and parameter arrays. ``KernelLibrary.launch`` checks and packs every argument of
every launch (dtype, contiguity, writeability, the scalar conversions): on small grids that
Python glue, not the kernel, is the step's cost, and on a GPU it would hold grids up to
about 128³ at host speed. ``KernelLibrary.bind`` does it once for the leading arguments.

Measured here on ``stencil_apply`` (23 arguments) over a 4×4×4 level, where the kernel
itself takes almost nothing: per launch, the time of ``launch`` (all checked), of the
kernel bound once with all its arguments, and the floor, the backend's own call with
everything pre-packed. The glue is a time minus the floor; the
figures are ratios measured in one run, so a noisy machine does not move them much.

    python -m benchmarks.launch_cost [--backend cpu] [--repeats 20000]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

SHAPE = (4, 4, 4)


def stencil_arguments(xp, dtype):
    """The arguments of ``stencil_apply`` on a 4³ block with unit faces and no-flux walls."""
    n = int(np.prod(SHAPE))
    x = xp.asarray(np.linspace(0.0, 1.0, n).astype(dtype))
    out = xp.zeros(n, dtype)
    faces = []
    for k, m in enumerate(SHAPE):
        tin = xp.ones(n // m * (m - 1), dtype)
        faces += [tin, None, None, 0]
    leading = ("stencil_apply", n, *SHAPE)
    middle = (None, 0.0, 0, None, 1.0, *faces)      # rhs, rhs_value, residual, mass, mass_value
    return leading, (x, out), middle


def _per_call(fn, repeats: int) -> float:
    fn()                                             # warm (first-call costs are not glue)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def measure(backend_name: str = "cpu", dtype=np.float32, repeats: int = 20000) -> dict:
    from spatialdtp.backends import get_backend

    backend = get_backend(backend_name)
    lib = backend.library(dtype)
    xp = backend.xp
    leading, (x, out), middle = stencil_arguments(xp, dtype)
    name, rest = leading[0], leading[1:]
    args = (*rest, x, out, *middle)

    def launch():
        lib.launch(name, *args)

    # a level's V-cycle launches repeat with the same buffers (level.x, level.r, ...):
    # everything is bound once per step
    whole = lib.bind(name, *args)
    packed = whole._packed
    n = whole.n

    def floor():
        lib._call(name, n, packed)

    t_floor = _per_call(floor, repeats)
    t_launch = _per_call(launch, repeats)
    t_whole = _per_call(whole, repeats)
    backend.synchronize()
    us = 1e6
    glue = max(t_launch - t_floor, 1e-12)
    return {
        "backend": backend_name, "dtype": np.dtype(dtype).name, "kernel": name,
        "arguments": len(args) + 1, "voxels": n, "repeats": repeats,
        "launch_us": t_launch * us, "bound_us": t_whole * us, "floor_us": t_floor * us,
        "glue_us": {"launch": glue * us, "bound": (t_whole - t_floor) * us},
        "glue_ratio_bound_over_launch": (t_whole - t_floor) / glue,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--repeats", type=int, default=20000)
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.backend, repeats=args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
