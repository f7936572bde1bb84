"""Shared test set-up: tests marked ``gpu`` skip, with the reason, where CuPy has no GPU."""
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
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    reason = gpu_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs a GPU: {reason.splitlines()[0][:160]}")
    for item in gpu_items:
        item.add_marker(skip)
