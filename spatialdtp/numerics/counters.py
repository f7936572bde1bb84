"""What a step costs besides its bytes: kernel launches and device→host reads, counted.

One :class:`Counters` belongs to a backend's ops (``backend.ops(dtype).counters``, shared
by every dtype of that backend). Two kinds of event are counted where they happen:

* a **launch**: every kernel run through a :class:`~spatialdtp.backends.kernels.KernelLibrary`
  (``launch(name, ...)`` counts it under its kernel name);
* a **sync**: every read of a device value by the host (a residual check, a reduction's
  result, a field copied back), counted under the name of its site. The code reads device
  scalars only through ``ops.read(array, site)`` (or ``backend.to_host``), so the count is
  the number of times a GPU run would wait for the device.

Hooks: ``counters.hooks`` is a list of callables ``hook(kind, name)`` (``kind`` is
``"launch"`` or ``"sync"``) called on every event. A device double (a fake device that
runs on the host and checks what the GPU path does, issue 13) adds its hook here to
assert per-step ceilings, or reports the syncs it detects itself through :meth:`sync`.
"""
from __future__ import annotations

from collections import Counter


class Counters:
    """Counts of kernel launches and host syncs, in total and by name."""

    def __init__(self):
        self.launches = 0
        self.syncs = 0
        self.by_kernel: Counter = Counter()
        self.by_site: Counter = Counter()
        self.hooks: list = []

    def launch(self, name: str) -> None:
        self.launches += 1
        self.by_kernel[name] += 1
        for hook in self.hooks:
            hook("launch", name)

    def sync(self, site: str, n: int = 1) -> None:
        self.syncs += n
        self.by_site[site] += n
        for hook in self.hooks:
            hook("sync", site)

    def snapshot(self) -> dict:
        """The counts so far (JSON-able)."""
        return {"launches": self.launches, "syncs": self.syncs,
                "by_kernel": dict(self.by_kernel), "by_site": dict(self.by_site)}

    def since(self, before: dict) -> dict:
        """The counts added since ``before`` (a :meth:`snapshot`)."""
        now = self.snapshot()
        return {"launches": now["launches"] - before["launches"],
                "syncs": now["syncs"] - before["syncs"],
                "by_kernel": {k: v - before["by_kernel"].get(k, 0)
                              for k, v in now["by_kernel"].items()
                              if v != before["by_kernel"].get(k, 0)},
                "by_site": {k: v - before["by_site"].get(k, 0)
                            for k, v in now["by_site"].items()
                            if v != before["by_site"].get(k, 0)}}

    def reset(self) -> None:
        self.launches = self.syncs = 0
        self.by_kernel.clear()
        self.by_site.clear()
