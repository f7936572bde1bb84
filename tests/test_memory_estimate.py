"""The memory estimate against the measured peak (issue 14 item 7): within 15 % on every
backend, the write-behind copies and the solver's work arrays included.

Each run is measured in a child process (``tests/memory_peak_child.py``): its peak resident
memory (``VmHWM`` after a reset) less the resident memory before the simulation is built,
after the same configuration has run on an 8-voxel-wide grid, so that imports, compiled
kernels and HDF5's own set-up are part of the baseline. The run writes a run file with a
frame every step and a checkpoint every second one (3 steps).

The grids are large enough that what does not grow with the grid is small: the fixed part,
measured as the peak of the same run on a 16-voxel-wide grid, must be under 3 % of the
case's estimate (asserted, so a case too small to say anything fails instead of passing by
luck). Two cases run by default (``numpy`` float64 640², ``cpu`` float32 96³: about 40 s of
CPU on 2 cores) and the ``cupy`` check on the device double; ``-m slow`` runs every
backend, precision and dimension at 1024² and 96³, and a run without a run file.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spatialdtp import cli
from spatialdtp.config import estimate_memory, memory_contributions

ROOT = Path(__file__).resolve().parents[1]
CHILD = ROOT / "tests" / "memory_peak_child.py"
#: the issue's requirement: |estimate − measured| <= 15 % of measured
TOLERANCE = 0.15
#: the largest share of the estimate the fixed (grid-independent) part may have
FIXED_SHARE = 0.03
STEPS = 3


def measure(tmp_path, shape, *overrides, frames=True):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in
                                          env.get("PYTHONPATH", "").split(os.pathsep) if p])
    size = "x".join(str(n) for n in shape)
    argv = [sys.executable, "-W", "ignore", str(CHILD), str(tmp_path), size, str(STEPS),
            *overrides] + ([] if frames else ["--no-file"])
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


_FIXED = {}


def fixed_part(tmp_path, backend, precision, ndim, extra):
    """The measured peak of a 16-voxel-wide run: what does not grow with the grid."""
    key = (backend, precision, ndim)
    if key not in _FIXED:
        _FIXED[key] = measure(tmp_path, [16] * ndim, f"backend={backend}",
                              f"backend.precision={precision}", *extra)["measured"]
    return _FIXED[key]


def check(tmp_path, backend, precision, shape, *extra, frames=True):
    ndim = len(shape)
    fixed = fixed_part(tmp_path, backend, precision, ndim, extra)
    r = measure(tmp_path, shape, f"backend={backend}", f"backend.precision={precision}",
                *extra, frames=frames)
    est, got = r["estimate"], r["measured"]
    table = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in r["parts"].items())
    line = (f"{backend} {precision} {'x'.join(map(str, shape))}: measured {got / 1e6:.1f} MB, "
            f"estimate {est / 1e6:.1f} MB ({100 * (est - got) / got:+.1f} %); fixed part "
            f"{fixed / 1e6:.1f} MB; {table}")
    print(line)
    assert fixed < FIXED_SHARE * est, (
        f"the grid is too small to test the estimate: the fixed part ({fixed / 1e6:.1f} MB "
        f"measured on a 16-voxel-wide grid) is over {FIXED_SHARE:.0%} of it; {line}")
    assert abs(est - got) <= TOLERANCE * got, line


def _3d(shape):
    return ("tissue=spheroid3d",) if len(shape) == 3 else ()


# --- by default: one reference and one compiled backend, each dimension and precision once
@pytest.mark.parametrize("backend, precision, shape", [
    ("numpy", "float64", (640, 640)),
    ("cpu", "float32", (96, 96, 96)),
])
def test_estimate_within_15_percent_of_measured_peak(tmp_path, backend, precision, shape):
    check(tmp_path, backend, precision, shape, *_3d(shape))


# --- every backend, precision and dimension at 1024² and 96³ (-m slow)
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1024, 1024), (96, 96, 96)])
def test_estimate_within_15_percent_everywhere(tmp_path, backend, precision, shape):
    check(tmp_path, backend, precision, shape, *_3d(shape))


@pytest.mark.slow
def test_estimate_without_run_file(tmp_path):
    """No run file: no frame copies, no HDF5 buffers (``frames=False``)."""
    check(tmp_path, "cpu", "float32", (1024, 1024), frames=False)


# --- what moves the estimate, without running anything
def _cfg(*overrides):
    return cli.compose(["experiment=quick", *overrides])


def test_estimate_moves_with_precision_dimension_drugs_and_frames():
    base = _cfg("grid.shape=[1024,1024]")
    parts = memory_contributions(base, "numpy")
    for name in ("state", "write_behind_frame", "multigrid_work", "multigrid_hierarchy",
                 "substrate_coefficients", "hdf5_chunk_buffers", "allocator_retained",
                 "observable_history"):
        assert parts[name] > 0, name
    assert sum(parts.values()) == estimate_memory(base, "numpy")
    # float64 doubles every array of the run's precision
    f64 = estimate_memory(_cfg("grid.shape=[1024,1024]", "backend.precision=float64"), "numpy")
    assert 1.6 < f64 / estimate_memory(base, "numpy") < 2.1
    # a drug is a substrate and has an exposure map: more fields, a larger batch
    none = memory_contributions(_cfg("grid.shape=[1024,1024]", "treatment=none"), "numpy")
    assert none["state"] < parts["state"]
    assert none["multigrid_work"] < parts["multigrid_work"]
    # no run file: no frame copy, no HDF5 buffers
    quiet = memory_contributions(base, "numpy", frames=False)
    assert "write_behind_frame" not in quiet and "hdf5_chunk_buffers" not in quiet
    # the hierarchy's coarse levels: 1/3 of the fine grid in 2D, 1/7 in 3D
    from spatialdtp.config.memory import coarse_voxels
    assert abs(coarse_voxels((512, 512)) / 512**2 - 1 / 3) < 0.01
    assert abs(coarse_voxels((64, 64, 64)) / 64**3 - 1 / 7) < 0.01
    # the compiled backends build the fine operator on the fly; the reference stores it
    cpu = memory_contributions(base, "cpu")
    assert cpu["multigrid_hierarchy"] < parts["multigrid_hierarchy"]
    assert "transport_buffers" in cpu
    # numerics.solver=pcg: no multigrid, the PCG solver's arrays instead
    pcg = memory_contributions(_cfg("grid.shape=[1024,1024]", "numerics.solver=pcg"), "numpy")
    assert "multigrid_work" not in pcg and pcg["pcg_solver"] > 0
    # a well-mixed tissue is one voxel whatever grid.shape says
    wm = estimate_memory(_cfg("grid.shape=[2048,2048]", "tissue=well_mixed"), "numpy")
    assert wm < 2**27


def test_estimate_scales_with_the_grid():
    small = estimate_memory(_cfg("grid.shape=[512,512]"), "cpu", frames=False)
    large = estimate_memory(_cfg("grid.shape=[1024,1024]"), "cpu", frames=False)
    assert math.isclose(large / small, 4.0, rel_tol=0.01)


# --- cupy: device memory, on the CuPy device double's memory pool
@pytest.mark.gpu
def test_cupy_device_estimate_on_the_double(tmp_path, double, monkeypatch):
    """On the device double every device array is a block of its memory pool, so the pool's
    high-water mark of bytes in use is the run's peak of device memory (the pool's
    rounding to 512 bytes included): it must be within 15 % of ``estimate_memory(cfg,
    "cupy")``. The double allocates nothing that is not an array, so a small grid says as
    much as a large one. (A real GPU is not measured here: CuPy's pool has no high-water
    mark, and the double's fixture skips there.)"""
    from spatialdtp.backends import get_backend
    from spatialdtp.run.simulation import Simulation

    pool = double.pool
    malloc = type(pool)._malloc
    peak = [0]

    def counted(self, nbytes):
        malloc(self, nbytes)
        peak[0] = max(peak[0], self.used_bytes())

    backend = get_backend("cupy")
    for precision, shape in (("float32", [96, 96]), ("float64", [24, 24, 24])):
        cfg = cli.compose(["experiment=quick", f"grid.shape={shape}", "backend=cupy",
                           f"backend.precision={precision}", "run.plot=false",
                           "run.output_interval_hours=0.3333333333333333",
                           "run.checkpoint_interval_hours=0.6666666666666666",
                           f"run.days={STEPS * 20 / 1440!r}"]
                          + (["tissue=spheroid3d"] if len(shape) == 3 else []))
        base = pool.used_bytes()
        peak[0] = base
        monkeypatch.setattr(type(pool), "_malloc", counted)
        sim = Simulation(cfg, backend)
        sim.run_until(path=tmp_path / f"{precision}.h5", overwrite=True)
        monkeypatch.setattr(type(pool), "_malloc", malloc)
        got, est = peak[0] - base, estimate_memory(cfg, "cupy")
        line = (f"cupy (device double) {precision} {shape}: device peak {got / 1e6:.2f} MB, "
                f"estimate {est / 1e6:.2f} MB ({100 * (est - got) / got:+.1f} %); "
                + ", ".join(f"{k} {v / 1e6:.2f}"
                            for k, v in memory_contributions(cfg, "cupy").items()))
        print(line)
        del sim
        assert abs(est - got) <= TOLERANCE * got, line


@pytest.mark.parametrize("shape", [(96, 96), (1024, 1024), (33, 47), (3, 100), (96, 96, 96),
                                   (16, 16, 16), (40, 24, 17)])
def test_the_estimate_counts_the_multigrid_levels_the_solver_builds(shape):
    """config.memory counts the coarse levels itself (config sits below numerics); on the
    grids here they are the solver's own, voxel for voxel."""
    from spatialdtp.config.memory import coarse_voxels
    from spatialdtp.numerics.implicit.batched_multigrid import hierarchy

    assert coarse_voxels(shape) == sum(level.size for level in hierarchy(shape)[1:])
