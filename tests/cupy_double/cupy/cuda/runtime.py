"""``cupy.cuda.runtime`` of the device double."""
from __future__ import annotations

from .._device import DEVICE, CUDARuntimeError  # noqa: F401

is_hip = False
streamDefault, streamNonBlocking = 0, 1


def getDeviceCount():
    DEVICE.require()
    return 1


def getDevice():
    DEVICE.require()
    return 0


def setDevice(device):
    DEVICE.require()
    if int(device) != 0:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")


def getDeviceProperties(device):
    """The properties the double's device reports (an sm_90 part with DEVICE's SM count)."""
    DEVICE.require()
    cc = DEVICE.compute_capability
    return {"name": DEVICE.name.encode(), "totalGlobalMem": DEVICE.total_memory,
            "multiProcessorCount": DEVICE.multiprocessors, "major": int(cc[0]),
            "minor": int(cc[1:]), "maxThreadsPerBlock": 1024, "maxThreadsDim": (1024, 1024, 64),
            "maxGridSize": (2**31 - 1, 65535, 65535), "warpSize": 32,
            "regsPerBlock": 65536, "regsPerMultiprocessor": 65536,
            "maxThreadsPerMultiProcessor": 2048, "sharedMemPerBlock": 49152,
            "l2CacheSize": 50 * 2**20, "clockRate": 0, "memoryClockRate": 0,
            "memoryBusWidth": 0}


def memGetInfo():
    """(free, total) bytes: the device's size less what the memory pool holds."""
    DEVICE.require()
    return DEVICE.total_memory - DEVICE.pool.total_bytes(), DEVICE.total_memory


def runtimeGetVersion():
    return 13000


def driverGetVersion():
    DEVICE.require()
    return 13000


def deviceSynchronize():
    from . import Device
    Device().synchronize()
