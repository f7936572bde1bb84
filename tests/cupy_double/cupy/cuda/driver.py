"""``cupy.cuda.driver`` of the device double (its error type)."""
from .._device import CUDADriverError  # noqa: F401
