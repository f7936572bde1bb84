"""``cupy.cuda`` of the device double: the device, streams, events, pinned memory and the
runtime/driver/NVRTC/compiler modules, as far as spatialdtp and its tests use them."""
from __future__ import annotations

from .. import _device
from .._device import DEVICE, Event, Stream, get_elapsed_time
from . import compiler, driver, memory, nvrtc, profiler, runtime  # noqa: F401


class Device:
    """``cupy.cuda.Device``: the one emulated GPU (id 0)."""

    def __init__(self, device=None):
        DEVICE.require()
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise runtime.CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    @property
    def compute_capability(self):
        return DEVICE.compute_capability

    @property
    def mem_info(self):
        return runtime.memGetInfo()

    def synchronize(self):
        """Wait for every stream (counted as one host synchronisation)."""
        with DEVICE.lock:
            DEVICE.count_sync("Device.synchronize")
            for s in list(_device.STREAMS):
                s._flush()
                DEVICE.host_clock[s.ptr] = s.seq

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return self.id


def get_current_stream(device_id=-1):
    DEVICE.require()
    return DEVICE.current_stream()


def get_device_id():
    DEVICE.require()
    return 0


def alloc_pinned_memory(size):
    """Page-locked host memory of ``size`` bytes (0xFF bytes until something writes it)."""
    DEVICE.require()
    return _device.PinnedMemoryPointer(size)


def is_available():
    return DEVICE.enabled


__all__ = ["Device", "Event", "Stream", "alloc_pinned_memory", "compiler", "driver",
           "get_current_stream", "get_device_id", "get_elapsed_time", "is_available",
           "memory", "nvrtc", "profiler", "runtime"]
