"""Shared test set-up: tests marked ``gpu`` skip, with the reason, where CuPy has no GPU;
tests marked ``slow`` run only under ``pytest -m slow``."""
import functools

import pytest


@functools.lru_cache(maxsize=1)
def gpu_unavailable_reason():
    """None where backend cupy works here, else why not."""
    from spatialdtp.backends import BackendUnavailable, get_backend

    try:
        get_backend("cupy")
    except BackendUnavailable as err:
        return str(err)
    return None


def pytest_collection_modifyitems(config, items):
    # longer validation runs only when asked for (pytest -m slow), keeping CI fast
    if "slow" not in (config.option.markexpr or ""):
        skip_slow = pytest.mark.skip(reason="longer validation: run with pytest -m slow")
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
    import os
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
