"""The emulated GPU: its memory, streams, events, host synchronisations and counters.

Execution model (what makes a missing copy or event show every time):

* work on the current stream (by default the null stream) runs eagerly, in issue order,
  exactly as a GPU runs one stream's work in order;
* an asynchronous device-to-host copy into pinned memory runs at the *latest* legal moment:
  when the host waits for it (``Event.synchronize``, ``Stream.synchronize``) or when another
  stream is made to wait for an event recorded after it. Until then the pinned buffer keeps
  its poison (0xFF bytes: NaN in floats), so reading it early shows;
* every access of device memory is checked against the ordering CUDA guarantees: each
  stream carries a vector clock (what it has waited for through events), the host one
  (what it has synchronised with). A read of memory written on another stream with no
  event ordering the write first, or a write of memory that an unordered copy on another
  stream still reads, raises :class:`RaceError` at once — on a GPU either would be a race
  that might only sometimes give a wrong frame;
* device memory freed while a copy still reads it is poisoned (the pool would hand it to
  the next allocation) and recorded in ``DEVICE.errors``; the copy raises when it runs.

Blocking streams (``Stream(non_blocking=False)``) synchronise implicitly with the null
stream, as CUDA's legacy default stream does; non-blocking ones only through events.
"""
from __future__ import annotations

import collections
import ctypes
import itertools
import os
import threading
import time
import traceback
import weakref

import numpy as np

# --------------------------------------------------------------------------- errors
class CUDARuntimeError(RuntimeError):
    """As ``cupy_backends.cuda.api.runtime.CUDARuntimeError``."""


class CUDADriverError(RuntimeError):
    """As ``cupy_backends.cuda.api.driver.CUDADriverError``."""


class OutOfMemoryError(MemoryError):
    """As ``cupy.cuda.memory.OutOfMemoryError``."""

    def __init__(self, size, total, limit=0):
        msg = f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes)."
        super().__init__(msg)


class RaceError(RuntimeError):
    """Device memory accessed by two streams without an ordering between the accesses."""


class UseAfterFreeError(RuntimeError):
    """A copy ran on memory that was freed (and could have been reused) before it ran."""


#: the figures the double counts (``DEVICE.counters``)
COUNTERS = (
    "kernel_launches",    # RawKernel launches (the backend's compiled kernels)
    "array_launches",     # CuPy array operations that would launch a kernel or a copy
    "host_syncs",         # the host waits for the device: blocking copies, synchronize()
    "allocations",        # device allocations asked of the memory pool
    "device_mallocs",     # of those, the ones the pool could not serve from freed blocks
    "h2d_copies", "d2h_copies",
    "compiles", "compile_cache_hits",
)

ALLOCATION_UNIT = 512          # CuPy's pool rounds every block up to this (memory.pyx)


def _round(nbytes: int) -> int:
    return max(1, -(-int(nbytes) // ALLOCATION_UNIT)) * ALLOCATION_UNIT


class Memory:
    """One device allocation: its bytes (a NumPy buffer the host can read) and the
    streams that last wrote and read it."""

    __slots__ = ("buf", "nbytes", "writer", "wseq", "readers", "deferred", "__weakref__")

    def __init__(self, buf: np.ndarray):
        self.buf = buf
        self.nbytes = _round(buf.nbytes)
        self.writer = None          # stream id of the last write
        self.wseq = 0               # its position in that stream
        self.readers = {}           # stream id -> position of its last read since the write
        self.deferred = 0           # copies queued on a stream that still read this memory

    def __del__(self):
        try:
            DEVICE._free(self)
        except Exception:      # noqa: BLE001  (interpreter shutdown)
            pass


class MemoryPool:
    """CuPy's device memory pool as far as its figures go: freed blocks are kept (by their
    rounded size) and handed to the next allocation of that size."""

    def __init__(self, device):
        self._device = device
        self._free = collections.Counter()
        self._used = 0

    def _malloc(self, nbytes):
        d = self._device
        d.counters["allocations"] += 1
        if self._free[nbytes] > 0:
            self._free[nbytes] -= 1
        else:
            if self.total_bytes() + nbytes > d.total_memory:
                self.free_all_blocks()
                if self.total_bytes() + nbytes > d.total_memory:
                    raise OutOfMemoryError(nbytes, self.total_bytes())
            d.counters["device_mallocs"] += 1
        self._used += nbytes

    def _release(self, nbytes):
        self._used -= nbytes
        self._free[nbytes] += 1

    def used_bytes(self):
        return self._used

    def free_bytes(self):
        return sum(size * n for size, n in self._free.items())

    def total_bytes(self):
        return self._used + self.free_bytes()

    def n_free_blocks(self):
        return sum(self._free.values())

    def free_all_blocks(self, stream=None):
        self._free.clear()

    def free_all_free(self):
        self.free_all_blocks()

    def set_limit(self, size=None, fraction=None):
        raise NotImplementedError("the device double has no pool limit")

    def get_limit(self):
        return 0


class PinnedMemoryPointer(bytearray):
    """Page-locked host memory (``cupy.cuda.alloc_pinned_memory``): a buffer NumPy can view
    (``numpy.frombuffer``), filled with 0xFF bytes until a copy writes it."""

    def __init__(self, size):
        super().__init__(int(size))
        self[:] = b"\xff" * int(size)
        self._cbuf = (ctypes.c_char * max(1, int(size))).from_buffer(self) if size else None
        self.ptr = ctypes.addressof(self._cbuf) if size else 0
        DEVICE._pinned.append((self.ptr, self.ptr + int(size), weakref.ref(self)))

    def size(self):
        return len(self)

    def __int__(self):
        return self.ptr


class PinnedMemoryPool:
    def free_all_blocks(self):
        DEVICE._pinned[:] = [p for p in DEVICE._pinned if p[2]() is not None]

    def n_free_blocks(self):
        return 0


# --------------------------------------------------------------------------- streams
_stream_ids = itertools.count(1)
STREAMS = weakref.WeakSet()          # every live stream (Device.synchronize waits for all)


class Stream:
    """``cupy.cuda.Stream``: an in-order queue of device work (see the module docstring)."""

    null = None          # set below

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        DEVICE.require()
        self.ptr = 0 if null else next(_stream_ids)
        self.device_id = -1 if null else 0
        self.non_blocking = bool(non_blocking) and not null
        self.seq = 0                        # operations issued on this stream so far
        self.clock = {}                     # stream id -> position waited for (events)
        self.pending = collections.deque()  # deferred copies: (seq, run, memories)
        DEVICE.new_stream(self)
        STREAMS.add(self)

    # ordering -----------------------------------------------------------------
    def _ordered_after(self, stream_id, seq) -> bool:
        """Is new work on this stream ordered after operation ``seq`` of ``stream_id``?"""
        if stream_id == self.ptr or stream_id is None:
            return True
        if not self.non_blocking and stream_id in DEVICE.legacy_group:
            return True          # the null stream and blocking streams synchronise
        return (self.clock.get(stream_id, 0) >= seq
                or DEVICE.host_clock.get(stream_id, 0) >= seq)

    def _issue(self) -> int:
        self.seq += 1
        return self.seq

    def _flush(self, upto=None):
        """Run the deferred copies issued up to ``upto`` (all by default)."""
        while self.pending and (upto is None or self.pending[0][0] <= upto):
            _seq, run, refs = self.pending.popleft()
            live = [r() for r in refs]
            for m in live:
                if m is not None:
                    m.deferred -= 1
            if any(m is None for m in live):
                raise UseAfterFreeError(
                    f"a copy queued on {_stream_name(self.ptr)} read device memory that was "
                    "freed before the copy ran (the pool may have handed it to another "
                    "array): keep the source alive until the copy's event is done")
            run()

    # the CuPy API --------------------------------------------------------------
    def record(self, event=None):
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        if event._stream is None:         # never recorded: CUDA waits for nothing
            return
        with DEVICE.lock:
            src = event._stream
            # this stream's next work runs after what the event covers: a copy deferred on
            # the other stream must happen now, before that work
            src._flush(event._seq)
            self.clock[src.ptr] = max(self.clock.get(src.ptr, 0), event._seq)
            for k, v in event._clock.items():
                self.clock[k] = max(self.clock.get(k, 0), v)

    def synchronize(self):
        with DEVICE.lock:
            DEVICE.count_sync("Stream.synchronize")
            self._flush()
            DEVICE.host_clock[self.ptr] = self.seq

    @property
    def done(self):
        self.synchronize()
        return True

    def use(self):
        DEVICE._set_current(self)
        return self

    def __enter__(self):
        DEVICE._push_current(self)
        return self

    def __exit__(self, *exc):
        DEVICE._pop_current()

    def __eq__(self, other):
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self):
        return hash(self.ptr)

    def __repr__(self):
        return f"<Stream {self.ptr} (device double{', non-blocking' if self.non_blocking else ''})>"


class Event:
    """``cupy.cuda.Event``: a point in one stream's work."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self._stream = None
        self._seq = 0
        self._clock = {}
        self._time = None

    def record(self, stream=None):
        stream = DEVICE.current_stream() if stream is None else stream
        with DEVICE.lock:
            self._stream, self._seq = stream, stream.seq
            self._clock = dict(stream.clock)
            self._time = time.perf_counter()

    def synchronize(self):
        if self._stream is None:
            return
        with DEVICE.lock:
            DEVICE.count_sync("Event.synchronize")
            self._stream._flush(self._seq)
            hc = DEVICE.host_clock
            hc[self._stream.ptr] = max(hc.get(self._stream.ptr, 0), self._seq)

    @property
    def done(self):
        self.synchronize()
        return True


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events: here the host time the emulation took."""
    if start_event._time is None or end_event._time is None:
        raise CUDARuntimeError("cudaErrorInvalidResourceHandle: an event was not recorded")
    end_event.synchronize()
    return (end_event._time - start_event._time) * 1e3


# --------------------------------------------------------------------------- the device
class DeviceDouble:
    """The one emulated GPU. Hidden (``enabled`` False, as on a machine without a GPU) until
    a test enables it, or the environment sets ``SPATIALDTP_CUPY_DOUBLE=1``."""

    name = "spatialdtp CuPy device double (host emulation)"
    compute_capability = "90"

    def __init__(self):
        self.enabled = os.environ.get("SPATIALDTP_CUPY_DOUBLE", "") == "1"
        # one multiprocessor: the backend's grid cap (a few blocks per SM) then bites at
        # test sizes, so every grid-stride loop strides on grids of a few thousand items
        self.multiprocessors = int(os.environ.get("SPATIALDTP_CUPY_DOUBLE_SMS", "1"))
        self.total_memory = int(os.environ.get("SPATIALDTP_CUPY_DOUBLE_MEMORY", 8 * 2**30))
        self.lock = threading.RLock()
        self.counters = collections.Counter({k: 0 for k in COUNTERS})
        self.kernel_counts = collections.Counter()
        self.sync_sites = collections.Counter()
        self.array_ops = collections.Counter()     # with trace: launches by operation and site
        self.trace_syncs = False
        self.errors = []
        self.host_clock = {}
        self.legacy_group = {0}         # stream ids that synchronise with the null stream
        self.pool = MemoryPool(self)
        self.pinned_pool = PinnedMemoryPool()
        self._pinned = []               # (start, end, weakref) of live pinned buffers
        self._roots = {}                # id(buffer) -> weakref(Memory)
        self._local = threading.local()

    # visibility -----------------------------------------------------------------
    def enable(self):
        self.enabled = True

    def disable(self):
        self.enabled = False

    def require(self):
        if not self.enabled:
            raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    # counters -------------------------------------------------------------------
    def reset_counters(self):
        for k in COUNTERS:
            self.counters[k] = 0
        self.kernel_counts.clear()
        self.sync_sites.clear()
        self.array_ops.clear()

    def snapshot(self) -> dict:
        return dict(self.counters)

    def count_sync(self, what):
        self.counters["host_syncs"] += 1
        if self.trace_syncs:
            self.sync_sites[_site(what)] += 1

    def count_launch(self, what):
        self.counters["array_launches"] += 1
        if self.trace_syncs:
            self.array_ops[_site(what)] += 1

    # streams --------------------------------------------------------------------
    def current_stream(self) -> Stream:
        stack = getattr(self._local, "stack", None)
        return stack[-1] if stack else Stream.null

    def _push_current(self, stream):
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        self._local.stack.append(stream)

    def _pop_current(self):
        self._local.stack.pop()

    def _set_current(self, stream):
        self._local.stack = [stream]

    def drain(self):
        """Run every queued copy (a test's end: nothing may leak into the next test)."""
        with self.lock:
            for s in list(STREAMS):
                while s.pending:
                    try:
                        s._flush()
                    except UseAfterFreeError as err:
                        if err not in self.errors:
                            self.errors.append(err)

    def new_stream(self, stream):
        if not stream.non_blocking:
            self.legacy_group.add(stream.ptr)

    # memory ---------------------------------------------------------------------
    def allocate(self, buf: np.ndarray, stream=None) -> Memory:
        """Register ``buf`` (a fresh NumPy array) as one device allocation written by
        ``stream`` (the current one by default)."""
        mem = Memory(buf)
        with self.lock:
            self.pool._malloc(mem.nbytes)
            self._roots[id(buf)] = weakref.ref(mem)
            s = self.current_stream() if stream is None else stream
            mem.writer, mem.wseq = s.ptr, s.seq
        return mem

    def memory_of(self, buf: np.ndarray):
        ref = self._roots.get(id(buf))
        return ref() if ref is not None else None

    def _free(self, mem: Memory):
        with self.lock:
            self._roots.pop(id(mem.buf), None)
            self.pool._release(mem.nbytes)
            if mem.deferred:
                # the pool hands these bytes to the next allocation of their size at once;
                # the copy that still reads them would see that array's values
                mem.buf.reshape(-1).view(np.uint8).fill(0xFF)
                self.errors.append(UseAfterFreeError(
                    "device memory was freed while an asynchronous copy on another stream "
                    "still read it: keep the array alive until the copy's event is done"))

    def is_pinned(self, a: np.ndarray) -> bool:
        start = a.__array_interface__["data"][0]
        return any(lo <= start < hi and ref() is not None for lo, hi, ref in self._pinned)

    # ordering checks ------------------------------------------------------------
    def access(self, stream: Stream, reads=(), writes=()):
        """Issue one operation on ``stream`` that reads and writes these memories; raise
        RaceError where CUDA would not order it after the accesses it depends on."""
        seq = stream._issue()
        sid = stream.ptr
        for m in reads:
            if m.writer != sid and not stream._ordered_after(m.writer, m.wseq):
                raise RaceError(_race_read(stream, m))
            m.readers[sid] = seq
        for m in writes:
            if m.writer != sid and not stream._ordered_after(m.writer, m.wseq):
                raise RaceError(_race_write(stream, m, "written"))
            for rid, rseq in m.readers.items():
                if rid != sid and not stream._ordered_after(rid, rseq):
                    raise RaceError(_race_write(stream, m, "read"))
            m.writer, m.wseq = sid, seq
            m.readers = {}
        return seq

    def defer(self, stream: Stream, seq: int, run, mems):
        """Queue ``run`` (a copy reading ``mems``) on ``stream`` until it must happen. The
        queue holds the memories weakly: freeing one first is the bug it should show."""
        for m in mems:
            m.deferred += 1
        stream.pending.append((seq, run, [weakref.ref(m) for m in mems]))


def _site(what):
    """``what at file:line (function)`` of the first caller outside the double."""
    frames = [f for f in traceback.extract_stack()[:-2] if "/cupy_double/" not in f.filename]
    site = frames[-1] if frames else None
    return f"{what} at {os.path.basename(site.filename)}:{site.lineno} ({site.name})" \
        if site else what


def _stream_name(sid):
    return "the null stream" if sid == 0 else f"stream {sid}"


def _race_read(stream, m):
    return (f"{_stream_name(stream.ptr)} reads device memory ({m.nbytes} bytes) that "
            f"{_stream_name(m.writer)} wrote (its operation {m.wseq}) with no event recorded "
            "after that write and waited on: on a GPU this read may run before the write "
            "(record an event after it and stream.wait_event it)")


def _race_write(stream, m, what):
    return (f"{_stream_name(stream.ptr)} overwrites device memory ({m.nbytes} bytes) that "
            f"an operation on another stream {what} without being ordered before this write: "
            "on a GPU that copy may see the new values (copy the data first, or wait on an "
            "event recorded after the copy)")


DEVICE = DeviceDouble()
Stream.null = Stream.__new__(Stream)
Stream.null.ptr, Stream.null.device_id, Stream.null.non_blocking = 0, -1, False
Stream.null.seq, Stream.null.clock, Stream.null.pending = 0, {}, collections.deque()
STREAMS.add(Stream.null)
