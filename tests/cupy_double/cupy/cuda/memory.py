"""``cupy.cuda.memory`` of the device double (its error type and pool)."""
from .._device import MemoryPool, OutOfMemoryError  # noqa: F401
