"""Backend ``cupy`` as users run it: simulations, run files, the CLI, the benchmarks, and
what happens when its kernels do not compile. On a GPU where CuPy sees one, else on the
CuPy device double (tests/cupy_double), which runs the real ``cupy_backend.py``.

Whole-run parity against NumPy on small grids is in ``test_backend_parity.py``; here the
grids are larger than the backend's capped launch, so every grid-stride loop strides.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import DOUBLE, ROOT, gpu_env
from spatialdtp.api import load_config
from spatialdtp.backends import cupy_backend, get_backend
from spatialdtp.run.simulation import Simulation
from test_backend_parity import FLOAT32_TOLERANCE, assert_runs_agree

pytestmark = pytest.mark.gpu

QUICK = ["experiment=quick", "run.progress=false", "run.plot=false", "numerics.rtol=1e-12"]


def capped_launch_threads() -> int:
    """The most threads one launch of the cupy backend has on this device: its grid is
    capped at _BLOCKS_PER_SM blocks per multiprocessor, and the kernels stride beyond."""
    lib = get_backend("cupy").ops(np.float64).lib
    return cupy_backend._BLOCKS_PER_SM * lib.sms * lib.block_threads


def test_a_grid_larger_than_one_launch_runs_as_the_numpy_reference():
    cap = capped_launch_threads()
    nx = 128
    ny = math.ceil(1.5 * cap / nx)                   # half as many voxels again as threads
    overrides = QUICK + [f"grid.shape=[{ny},{nx}]", "backend.precision=float64",
                         "tissue.tumour.radius=600"]
    runs = {}
    for name in ("numpy", "cupy"):
        sim = Simulation(load_config(overrides), get_backend(name))
        for _ in range(2):
            sim.step()
        runs[name] = sim.fields(), sim.observables()
    assert ny * nx > cap
    # float64, as test_backend_parity: only summation order differs
    assert_runs_agree(runs["numpy"], runs["cupy"], 1e-10)


def _frames(path):
    with h5py.File(path) as f:
        return f["time"][:], {k: f["fields"][k][:] for k in f["fields"]}


def test_frames_written_behind_the_steps_hold_the_state_of_their_time(tmp_path):
    """Frames are copied on a side stream while the next steps run: a frame must be the
    state at its own time, not a later one (a missing device copy or event shows here)."""
    overrides = QUICK + ["grid.shape=[20,18]", "backend.precision=float64", "run.dt=20",
                         "run.output_interval_hours=0.3333333333333333"]
    got = {}
    for name in ("numpy", "cupy"):
        sim = Simulation(load_config(overrides), get_backend(name))
        sim.run_until(days=0.15, path=tmp_path / f"{name}.h5")
        got[name] = _frames(tmp_path / f"{name}.h5")
    (t_ref, ref), (t, frames) = got["numpy"], got["cupy"]
    assert len(t) == len(t_ref) >= 10 and np.allclose(t, t_ref)
    for field, series in ref.items():
        scale = max(float(np.abs(series).max()), 1e-300)
        worst = float(np.abs(frames[field] - series).max()) / scale
        assert worst <= 1e-10, f"{field}: frames differ by {worst:.3g} of the peak"
    # the frames do change from one to the next (else a stale frame could not show)
    assert np.abs(np.diff(ref["S"], axis=0)).max() > 1e-6 * np.abs(ref["S"]).max()


def run_cli(args, cwd):
    proc = subprocess.run([sys.executable, "-m", "spatialdtp", *args], cwd=cwd, env=gpu_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_the_command_line_runs_backend_cupy_as_numpy(tmp_path):
    common = ["experiment=quick", "run.days=0.25", "run.plot=false", "numerics.rtol=1e-12"]
    run_cli(common + ["backend=cupy64", "hydra.run.dir=gpu"], tmp_path)
    run_cli(common + ["backend=numpy64", "hydra.run.dir=ref"], tmp_path)
    with h5py.File(tmp_path / "gpu" / "run.h5") as f, h5py.File(tmp_path / "ref" / "run.h5") as g:
        assert f.attrs["backend"] == "cupy" and f.attrs["status"] == "complete"
        assert "GPU 0" in f.attrs["device"]
        for name in g["fields"]:
            a, b = f["fields"][name][:], g["fields"][name][:]
            assert np.abs(a - b).max() <= 1e-10 * max(float(np.abs(b).max()), 1e-300), name


def test_benchmark_quick_mode_measures_cupy_and_cupy_arrays_as_numpy(tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks import report

    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path),
                           "--backends", "numpy,cupy,cupy-arrays", "--budget", "120"],
                          cwd=ROOT, env=gpu_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    for name in ("cupy", "cupy-arrays"):
        assert res["backends"][name]["available"], res["backends"][name]
    cases = [c for c in res["coupled"] + res["substrates"] if c["backend"] != "numpy"]
    assert {c["backend"] for c in cases} == {"cupy", "cupy-arrays"}
    assert "device" in res["copy_bandwidth"]
    for case in cases:
        # float32 runs of the same steps: within the tolerance derived in test_backend_parity
        d = report.agreement(res, case)
        assert d is not None and d <= FLOAT32_TOLERANCE, (case["backend"], case["problem"], d)


def test_every_kernel_is_launched_with_the_block_size_of_its_launch_bounds(monkeypatch):
    """kernels/sdtp.h's SDTP_BLOCK_THREADS is both the launcher's block and every kernel's
    __launch_bounds__ (the compiled function reports it as max_threads_per_block); a
    launcher block that drifted from it would be refused by the driver, as it is here."""
    from spatialdtp.backends.kernels import block_threads

    threads = block_threads()
    for dtype in (np.float32, np.float64):
        lib = get_backend("cupy").ops(dtype).lib
        assert lib.block_threads == threads
        for name in lib.signatures:
            assert lib.function(name).attributes["max_threads_per_block"] == threads, name
    import cupy
    x = cupy.zeros(4 * threads, dtype=np.float64)
    monkeypatch.setattr(lib, "block_threads", 2 * threads)
    with pytest.raises(cupy.cuda.driver.CUDADriverError, match="OUT_OF_RESOURCES"):
        lib.launch("bmg_predict", x.size, threads, x, x.copy(), 0.5,
                   cupy.ones(4, dtype=np.int64))


def test_kernels_that_do_not_compile_make_cupy_unavailable_and_auto_falls_back(monkeypatch,
                                                                              caplog):
    import logging

    from spatialdtp.backends import BackendUnavailable

    good = cupy_backend.module_source
    monkeypatch.setattr(cupy_backend, "module_source",
                        lambda: good() + "\nSDTP_KERNEL broken(idx_t n) { undeclared_name(n); }\n")
    with pytest.raises(BackendUnavailable, match=r"(?s)could not compile.*undeclared_name"):
        get_backend("cupy")
    with caplog.at_level(logging.INFO, logger="spatialdtp"):
        chosen = get_backend("auto")
    assert chosen.name == "cpu"
    assert "cupy: backend cupy: NVRTC could not compile" in caplog.text
    assert "undeclared_name" in caplog.text


@pytest.mark.skipif(DOUBLE is None, reason="counts compilations: the device double's counter")
def test_sweep_jobs_share_one_compile_cache(tmp_path):
    """Each job of a sweep is a process that builds backend cupy; the kernels must compile
    once (CuPy's on-disk cache, keyed by source and options) and load in every later job."""
    job = ("import cupy; from spatialdtp.backends import get_backend; get_backend('cupy'); "
           "c = cupy._double.snapshot(); print(c['compiles'], c['compile_cache_hits'])")
    env = gpu_env(CUPY_CACHE_DIR=str(tmp_path / "cache"))
    counts = []
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", job], env=env, capture_output=True,
                              text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        counts.append(tuple(int(v) for v in proc.stdout.split()))
    assert counts == [(2, 0), (0, 2), (0, 2)]        # two precisions, compiled once
    assert len(list(Path(tmp_path / "cache").glob("*.so"))) == 2
