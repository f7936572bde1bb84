"""Shared test set-up.

Tests marked ``gpu`` run the ``cupy`` backend: on a real GPU where CuPy sees one, and
everywhere else on the CuPy device double of ``tests/cupy_double`` (imported as ``cupy``
in this process; see its package docstring). The double's device is enabled only for the
duration of a ``gpu`` test (or one asking for the ``double`` fixture), so every other test
sees a machine without a GPU, as before. A ``gpu`` test fails if the double recorded an
error it could not raise in place (memory freed under a pending copy). Tests marked
``slow`` run only under ``pytest -m slow``.
"""
import contextlib
import functools
import os
import sys
from pathlib import Path

import pytest

DOUBLE_DIR = Path(__file__).resolve().parent / "cupy_double"
ROOT = Path(__file__).resolve().parents[1]


def _real_gpu() -> bool:
    if os.environ.get("SPATIALDTP_CUPY_DOUBLE") == "1":
        return False
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001  (no CuPy, or CuPy without a driver/GPU)
        return False


def _cupy_modules() -> list:
    return [m for m in sys.modules if m == "cupy" or m.startswith("cupy.")]


REAL_GPU = _real_gpu()
#: an installed CuPy without a GPU, set aside for its NVRTC (see real_cupy_modules)
REAL_CUPY_MODULES = {}
if not REAL_GPU:
    REAL_CUPY_MODULES = {m: sys.modules.pop(m) for m in _cupy_modules()}
    sys.path.insert(0, str(DOUBLE_DIR))
    import cupy as _double_cupy  # noqa: E402
    DOUBLE = _double_cupy._double
    DOUBLE.disable()            # SPATIALDTP_CUPY_DOUBLE=1 is for subprocesses; here per test
else:
    DOUBLE = None


@contextlib.contextmanager
def real_cupy_modules():
    """Within the block ``cupy`` is the installed CuPy (if any), not the double: CuPy's
    NVRTC bindings (``cupy_backends``) look up ``cupy._environment`` when they load."""
    if REAL_GPU:
        yield
        return
    double = {m: sys.modules.pop(m) for m in _cupy_modules()}
    sys.modules.update(REAL_CUPY_MODULES)
    try:
        yield
    finally:
        for m in _cupy_modules():
            del sys.modules[m]
        sys.modules.update(double)


def gpu_env(**extra) -> dict:
    """The environment of a subprocess that should see the same GPU as a ``gpu`` test: the
    real one, or the double with its device enabled."""
    env = {**os.environ, **extra}
    paths = [str(ROOT)] + ([str(DOUBLE_DIR)] if DOUBLE is not None else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    if DOUBLE is not None:
        env["SPATIALDTP_CUPY_DOUBLE"] = "1"
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


@functools.lru_cache(maxsize=1)
def gpu_unavailable_reason():
    """None where backend cupy works here (on the GPU or the double), else why not."""
    from spatialdtp.backends import BackendUnavailable, get_backend

    if DOUBLE is not None:
        DOUBLE.enable()
    try:
        get_backend("cupy")
    except BackendUnavailable as err:
        return str(err)
    finally:
        if DOUBLE is not None:
            DOUBLE.disable()
    return None


def pytest_collection_modifyitems(config, items):
    # longer validation (``slow``) runs only where asked for: -m slow (or an expression
    # naming it)
    if "slow" not in (config.getoption("markexpr") or ""):
        skip_slow = pytest.mark.skip(reason="slow validation: run it with -m slow")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip_slow)
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    reason = gpu_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs a GPU: {reason.splitlines()[0][:160]}")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _device_double_for_gpu_tests(request):
    if DOUBLE is None or (request.node.get_closest_marker("gpu") is None
                          and "double" not in request.fixturenames):
        yield
        return
    DOUBLE.enable()
    DOUBLE.reset_counters()
    seen = len(DOUBLE.errors)
    try:
        yield
    finally:
        DOUBLE.drain()
        DOUBLE.disable()
        errors = DOUBLE.errors[seen:]
        del DOUBLE.errors[seen:]
    if errors:
        pytest.fail(f"the CuPy device double recorded: {errors}")


@pytest.fixture
def double():
    """The double's device (enabled for the test); skips where a real GPU is used instead."""
    if DOUBLE is None:
        pytest.skip("a real GPU is here: the CuPy device double is not in use")
    return DOUBLE


@pytest.fixture(scope="session")
def cpu():
    """The compiled cpu backend (skips where no C++ compiler is found)."""
    from spatialdtp.backends import BackendUnavailable, get_backend

    try:
        return get_backend("cpu")
    except BackendUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def per_voxel_library():
    """``build(dtype, tmp, kernel_file, define)``: one kernel file compiled for the host with
    the GPU's per-voxel loop (``#define <define> 1``), so the host tests check the index
    arithmetic the GPU runs. Built in its own cache under ``tmp``."""
    import shutil

    from spatialdtp.backends.cpu_backend import HostKernelLibrary
    from spatialdtp.resources import kernels_dir

    def build(dtype, tmp, kernel_file, define):
        src = tmp / "kernels"
        src.mkdir(exist_ok=True)
        shutil.copy(kernels_dir() / "sdtp.h", src / "sdtp.h")
        text = (kernels_dir() / kernel_file).read_text()
        (src / kernel_file).write_text(f"#define {define} 1\n" + text)
        old = os.environ.get("SPATIALDTP_KERNEL_CACHE")
        os.environ["SPATIALDTP_KERNEL_CACHE"] = str(tmp / "cache")
        try:
            return HostKernelLibrary(dtype, directory=src)
        finally:
            if old is None:
                del os.environ["SPATIALDTP_KERNEL_CACHE"]
            else:
                os.environ["SPATIALDTP_KERNEL_CACHE"] = old
    return build


@pytest.fixture
def napari_settings_in_memory(monkeypatch):
    """napari settings held in memory for the test: the viewer records reader preferences
    (``plugins.extension2reader``), which must not reach the user's settings file."""
    import napari.settings
    from napari.settings import NapariSettings

    monkeypatch.setattr(napari.settings, "_SETTINGS", NapariSettings(config_path=None))
    yield napari.settings.get_settings()


@pytest.fixture(scope="session")
def quick_run_40(tmp_path_factory):
    """A 2D run with CAF niches (``experiment=quick``, 40×40 voxels of 20 µm, one day:
    frames every 6 h), made once per test process and shared read-only by the viewer
    tests (copy it before changing it)."""
    from spatialdtp import api

    path = tmp_path_factory.mktemp("quick40") / "run.h5"
    api.simulation(["experiment=quick", "grid.shape=[40,40]", "run.plot=false"]).run_until(
        path=path)
    return path
