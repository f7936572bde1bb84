"""``cupy.linalg`` of the device double: NumPy's linear algebra on device arrays."""
import numpy as np

from ._core import device_call

_NAMES = ("cholesky cond det eig eigh eigvals eigvalsh inv lstsq matrix_power matrix_rank "
          "norm pinv qr slogdet solve svd tensorinv tensorsolve").split()
LinAlgError = np.linalg.LinAlgError


def _wrap(name):
    fn = getattr(np.linalg, name)

    def f(*args, **kwargs):
        return device_call(f"linalg.{name}", fn, args, kwargs)
    f.__name__ = name
    return f


globals().update({n: _wrap(n) for n in _NAMES if hasattr(np.linalg, n)})
