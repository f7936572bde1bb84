"""``cupy.cuda.nvrtc`` of the device double.

The double compiles with the host's C++ compiler, so "NVRTC" is always present; its
version is that of the CUDA the double emulates. It offers no ``createProgram``: code that
needs the real NVRTC (the sm_90 cubin test) imports ``cupy_backends.cuda.libs.nvrtc``.
"""


class NVRTCError(RuntimeError):
    pass


def getVersion():
    return (13, 0)
