"""Writing frames behind the compute: one background thread per run file."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


class WriteBehind:
    """Runs a writer's calls in order on one background thread, so a step computes while
    the previous frame is compressed and written.

    Only calls made through :meth:`submit` run in the background; before anything else
    touches the file (checkpoints, the failure record, closing), :meth:`drain` waits until
    every submitted call has finished, so that h5py is never used from two threads at once.
    An error in a background call is raised again by the next ``submit`` or ``drain``.

    At most ``depth`` calls are queued: a ``submit`` beyond that waits for the oldest. Each
    queued frame holds a copy of every field, so a writer slower than the compute (a slow
    disk, a frame every step) slows the run down instead of filling the memory; with the
    run's two calls per output step (observables, frame) one frame is in flight, as the
    memory estimate (config/memory.py ``write_behind_frame``) counts.
    """

    def __init__(self, depth: int = 2):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spatialdtp-writer")
        self._pending = []
        self._depth = depth

    def submit(self, fn, *args) -> None:
        self._raise_failed()
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > self._depth:
            self._pending.pop(0).result()

    def _raise_failed(self):
        while self._pending and self._pending[0].done():
            self._pending.pop(0).result()

    def drain(self) -> None:
        """Wait for every submitted call; raise the first error one of them had."""
        pending, self._pending = self._pending, []
        first = None
        for fut in pending:
            try:
                fut.result()
            except BaseException as err:    # keep waiting for the rest, then raise
                first = first or err
        if first is not None:
            raise first

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)
