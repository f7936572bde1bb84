"""Copies between host and device, with CuPy's rules for when the host waits.

* ``ndarray.get()`` (blocking, the default), ``cupy.asnumpy``, ``float(a)``…: the copy runs
  after the stream's earlier work and the host waits for it (one host synchronisation);
* ``ndarray.get(stream=s, out=pinned, blocking=False)``: queued on ``s``; it runs when the
  host waits for ``s`` (or an event after it), or when another stream waits for such an
  event. Into pageable (non-pinned) memory the driver makes the copy synchronous, so it
  runs at once and the host waits (counted);
* host to device (``cupy.asarray(numpy_array)``, ``ndarray.set``): the host data is staged
  at the call, so later changes to it do not matter; the host does not wait.
"""
from __future__ import annotations

import numpy as np

from ._device import DEVICE


def device_to_host(a, stream=None, order="C", out=None, blocking=True):
    from ._core import device_call

    with DEVICE.lock:
        DEVICE.require()
        s = DEVICE.current_stream() if stream is None else stream
        src = a
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            if out.dtype != a.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from {a.dtype} array")
            if out.shape != a.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {a.shape}, "
                                 f"actual shape: {out.shape}")
            host = out
        else:
            order = "F" if order.upper() == "A" and a._a.flags.f_contiguous \
                and not a._a.flags.c_contiguous else ("C" if order.upper() == "A" else order)
            host = np.empty(a.shape, dtype=a.dtype, order=order)
        if not ((host.flags.c_contiguous and a._a.flags.c_contiguous)
                or (host.flags.f_contiguous and a._a.flags.f_contiguous)):
            with s:                         # CuPy makes the contiguous copy on that stream
                src = device_call("ndarray.get (contiguous copy)", np.array, (a,),
                                  {"order": "F" if host.flags.f_contiguous
                                   and not host.flags.c_contiguous else "C"})
        seq = DEVICE.access(s, [src._mem], [])
        DEVICE.counters["d2h_copies"] += 1
        data = src._a

        def run():
            if host.size:
                np.copyto(host, data)
        if not blocking and DEVICE.is_pinned(host):
            DEVICE.defer(s, seq, run, [src._mem])
            return host
        s._flush()
        run()
        DEVICE.count_sync("ndarray.get" if blocking else "ndarray.get into pageable memory")
        DEVICE.host_clock[s.ptr] = max(DEVICE.host_clock.get(s.ptr, 0), seq)
        return host


def host_to_device(a, arr, stream=None):
    if not isinstance(arr, np.ndarray):
        raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
    if a.dtype != arr.dtype:
        raise TypeError(f"{arr.dtype} array cannot be set to {a.dtype} array")
    if a.shape != arr.shape:
        raise ValueError(f"Shape mismatch. Old shape: {a.shape}, new shape: {arr.shape}")
    with DEVICE.lock:
        DEVICE.require()
        s = DEVICE.current_stream() if stream is None else stream
        DEVICE.access(s, [], [a._mem])
        DEVICE.counters["h2d_copies"] += 1
        np.copyto(a._a, arr)


def from_host(obj, dtype=None, order="K", ndmin=0):
    """A new device array holding a copy of host data ``obj`` (array, list or scalar)."""
    from ._core import ndarray

    with DEVICE.lock:
        DEVICE.require()
        h = np.array(obj, dtype=dtype, order=order, ndmin=ndmin, copy=True)
        if h.dtype == object:
            raise ValueError(f"Unsupported dtype {h.dtype}")
        stream = DEVICE.current_stream()
        mem = DEVICE.allocate(h, stream)
        DEVICE.access(stream, [], [mem])
        DEVICE.counters["h2d_copies"] += 1
        return ndarray._view(h, mem)
