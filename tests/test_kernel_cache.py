"""The cpu backend's kernel cache: a cached library is loaded only once verified (its
SHA-256 equals the one recorded beside it, it and its directory belong to this user and
nobody else can write them); anything else is rebuilt, never loaded."""
from __future__ import annotations

import os

import numpy as np
import pytest

from spatialdtp.backends import cpu_backend as cb

pytestmark = pytest.mark.skipif(cb.compiler() is None, reason="no C++ compiler")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("kcache")
    os.chmod(d, 0o700)
    old = os.environ.get("SPATIALDTP_KERNEL_CACHE")
    os.environ["SPATIALDTP_KERNEL_CACHE"] = str(d)
    try:
        yield d, cb.build_library(np.float64)
    finally:
        if old is None:
            del os.environ["SPATIALDTP_KERNEL_CACHE"]
        else:
            os.environ["SPATIALDTP_KERNEL_CACHE"] = old


def replace_bytes(path, data):
    """Give ``path`` new content as a new file renamed over it, as a writer on disk would.
    Never in place: this process has the library loaded (mapped), and rewriting a mapped
    file truncates the loader's view of it, so a later dlopen or unwind walking the loaded
    objects dies with SIGBUS (it did, in the napari tests run after these)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def verified(path):
    fd = cb.verified_library(path)
    if fd is not None:
        os.close(fd)
    return fd is not None


def test_a_fresh_build_is_verified_and_loads(cache):
    _, lib = cache
    assert verified(lib)
    assert cb.load_library(lib) is not None


def test_foreign_truncated_or_open_libraries_are_refused(cache):
    d, lib = cache
    good = lib.read_bytes()
    try:
        replace_bytes(lib, good[:-1] + bytes([good[-1] ^ 1]))  # one bit: a planted library
        assert not verified(lib)
        replace_bytes(lib, b"")                                 # a full disk's 0-byte file
        assert not verified(lib)
        with pytest.raises(cb.BackendUnavailable):
            cb.load_library(lib)
        replace_bytes(lib, good)
        assert verified(lib)
        os.chmod(lib, 0o775)                                    # group may write it
        assert not verified(lib)
        os.chmod(lib, 0o755)
        os.chmod(d, 0o777)                                      # anyone may plant in it
        assert not verified(lib)
    finally:
        os.chmod(d, 0o700)
        os.chmod(lib, 0o755)
        replace_bytes(lib, good)


def test_a_corrupt_cached_library_is_rebuilt(cache):
    _, lib = cache
    replace_bytes(lib, b"")
    assert cb.build_library(np.float64) == lib
    assert lib.stat().st_size > 0 and verified(lib)


def test_both_precisions_load_their_own_library_in_one_process():
    """Libraries are loaded through /proc/self/fd/N; the loader knows a library by that
    name, so a descriptor closed and reused for the second precision would hand back the
    first library (float kernels called with double arrays: garbage, NaN). Each precision
    must get its own handle, and the float64 kernels must compute in float64."""
    import subprocess
    import sys
    code = (
        "import numpy as np\n"
        "from spatialdtp.backends import get_backend\n"
        "b = get_backend('cpu')\n"
        "f, d = b.library(np.float32), b.library(np.float64)\n"
        "assert f._dll._handle != d._dll._handle, 'one handle for both precisions'\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


def test_one_log_line_says_the_kernels_are_compiling_and_none_once_cached(cache, tmp_path,
                                                                          monkeypatch, caplog):
    """The first use is otherwise silent for about a minute: one INFO line before the build
    starts, naming the compiler and the cache; a verified cached library logs nothing."""
    import logging

    caplog.set_level(logging.INFO, logger=cb.log.name)
    cb.build_library(np.float64)                       # the fixture's library, cached
    assert not [r for r in caplog.records if "compiling" in r.getMessage()]
    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o700)
    monkeypatch.setenv("SPATIALDTP_KERNEL_CACHE", str(fresh))

    def no_build(*args):
        raise RuntimeError("stopped before the build")
    monkeypatch.setattr(cb, "_compile", no_build)
    with pytest.raises(RuntimeError, match="stopped"):
        cb.build_library(np.float64)
    lines = [r for r in caplog.records if "compiling" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    message = lines[0].getMessage()
    assert message.startswith("backend cpu: compiling") and str(fresh) in message
    assert "\n" not in message
