"""Choosing a backend, its errors, and the kernel sources' build for host and GPU."""
import logging
import re
import shutil
import subprocess

import numpy as np
import pytest

from spatialdtp import backends
from spatialdtp.api import load_config
from spatialdtp.backends import BackendUnavailable, get_backend
from spatialdtp.backends.kernels import kernel_sources, module_source, parse_signatures
from spatialdtp.config import ConfigError
from spatialdtp.run.simulation import Simulation


def test_auto_picks_the_compiled_cpu_backend_without_a_gpu_and_says_so(caplog, monkeypatch):
    monkeypatch.setitem(backends._REGISTRY, "cupy", _unavailable("no GPU in this test"))
    with caplog.at_level(logging.INFO, logger="spatialdtp"):
        chosen = get_backend("auto")
    assert chosen.name == "cpu"
    assert "backend=auto chose 'cpu'" in caplog.text
    assert "no GPU in this test" in caplog.text


def test_auto_keeps_small_grids_on_numpy_where_kernel_launches_cost_more(caplog, monkeypatch):
    monkeypatch.setitem(backends._REGISTRY, "cupy", _unavailable("no GPU in this test"))
    with caplog.at_level(logging.INFO, logger="spatialdtp"):
        assert get_backend("auto", voxels=96 * 96).name == "numpy"
        assert get_backend("auto", voxels=512 * 512).name == "cpu"
    assert "no faster than numpy below 32768 voxels (this grid has 9216)" in caplog.text


def test_auto_falls_back_to_numpy_without_a_compiler(caplog, monkeypatch, tmp_path):
    monkeypatch.setitem(backends._REGISTRY, "cupy", _unavailable("no GPU in this test"))
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setenv("SPATIALDTP_KERNEL_CACHE", str(tmp_path))    # nothing cached to reuse
    with caplog.at_level(logging.INFO, logger="spatialdtp"):
        chosen = get_backend("auto")
    assert chosen.name == "numpy"
    assert "no-such-compiler" in caplog.text


def test_default_config_uses_auto():
    assert load_config([]).backend.name == "auto"


def test_asking_for_cupy_without_a_gpu_says_how_to_install_the_gpu_extra():
    try:
        get_backend("cupy")
    except BackendUnavailable as err:
        assert "pip install 'spatialdtp[gpu]'" in str(err)
        assert "cupy-cuda13x" in str(err)
    else:
        pytest.skip("a GPU is usable here")


def test_unknown_backend_name_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"backend.name='tpu'.*auto.*numpy.*cpu.*cupy"):
        Simulation(load_config(["backend.name=tpu", "experiment=quick"]),
                   get_backend("numpy"))


def test_a_grid_that_does_not_fit_the_device_is_refused_with_bytes_needed_and_free():
    class Tiny(backends.numpy_backend.NumpyBackend):
        def free_memory(self):
            return 10_000_000
    cfg = load_config(["experiment=quick", "grid.shape=[512,512]"])
    with pytest.raises(ConfigError) as err:
        Simulation(cfg, Tiny())
    assert re.search(r"grid.shape=\[512, 512\]: the run needs about [\d.]+ GiB .* but only "
                     r"0.01 GiB is free", str(err.value))


def test_kernel_arguments_of_the_wrong_dtype_are_refused_by_name():
    lib = get_backend("cpu").library(np.float32)
    n = 8
    good = np.zeros(n, np.float32)
    with pytest.raises(TypeError, match=r"substrate_coefficients: argument 'vessels' must be "
                                        r"a float32 array, got float64"):
        lib.launch("substrate_coefficients", n, 1, np.zeros(5 * n, np.float32), np.zeros(n),
                   0, good, np.zeros(34, np.float32), None, good, good)
    with pytest.raises(TypeError, match="takes 10 arguments"):
        lib.launch("substrate_coefficients", n, good)


def test_host_library_is_cached_and_rebuilt_when_a_kernel_changes(tmp_path, monkeypatch):
    from spatialdtp.backends.cpu_backend import build_library

    monkeypatch.setenv("SPATIALDTP_KERNEL_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "kernels"
    src.mkdir()
    for p in kernel_sources():
        shutil.copy(p, src)
    for h in kernel_sources()[0].parent.glob("*.h"):
        shutil.copy(h, src)
    first = build_library(np.float64, directory=src)
    assert build_library(np.float64, directory=src) == first       # cached
    header = src / "sdtp.h"
    header.write_text(header.read_text() + "\n/* changed */\n")
    assert build_library(np.float64, directory=src) != first       # the header is in the key


def test_every_kernel_file_states_its_equation_and_uses_the_portability_header():
    for path in kernel_sources():
        text = path.read_text()
        assert text.lstrip().startswith("/*"), f"{path.name}: start with a comment block"
        assert '#include "sdtp.h"' in text, path.name
        assert parse_signatures(module_source(path.parent)), path.name


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on this machine")
@pytest.mark.parametrize("real", ["float", "double"])
def test_every_kernel_compiles_for_sm80_and_sm90_with_nvcc(tmp_path, real):
    src = tmp_path / "kernels.cu"
    src.write_text(module_source())
    cmd = ["nvcc", "-std=c++14", f"-DSDTP_REAL={real}", "--fatbin", "-Werror", "all-warnings",
           "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
           "-o", str(tmp_path / "kernels.fatbin"), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every kernel of the sources is in the binary, for both architectures
    names = subprocess.run(["cuobjdump", "-symbols", str(tmp_path / "kernels.fatbin")],
                           capture_output=True, text=True).stdout if shutil.which("cuobjdump") else ""
    for kernel in parse_signatures(module_source()):
        if names:
            assert kernel in names, kernel


def _unavailable(reason):
    def make():
        raise BackendUnavailable(reason)
    return make


def _nvrtc_or_skip():
    """The real NVRTC of an installed CuPy (``cupy_backends``; in the test process ``cupy``
    may be the device double), where it can compile here (no GPU needed), else skip."""
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()                  # loads libnvrtc: raises where it is missing
    except Exception as err:  # noqa: BLE001  (ImportError, or CuPy without an NVRTC library)
        pytest.skip(f"CuPy's NVRTC cannot compile here ({type(err).__name__}: {err})")
    return nvrtc


#: what CuPy adds to a RawModule's options before NVRTC compiles it (CuPy 14,
#: cupy/cuda/compiler.py: _compile_with_cache_cuda and _compile_using_nvrtc_no_warning):
#: flush float denormals, a real sm_90 binary (so ptxas runs: registers and spills are
#: decided there, not in the PTX), unannotated functions on the device; its include paths
#: are left out (the kernels include nothing once their headers are inlined)
CUPY_NVRTC_OPTIONS = ("-ftz=true", "-arch=sm_90", "--device-as-default-execution-space")

#: registers per thread each kernel may use on sm_90 with the backend's 256-thread blocks.
#: A multiprocessor holds 65536 registers and 2048 threads, so ⌊65536 / (256·R)⌋ blocks of
#: a kernel using R registers are resident. The memory-bound kernels need two (25 %
#: occupancy): the bytes in flight must cover bandwidth × latency, 3.35 TB/s × ≈ 600 ns /
#: 132 SMs ≈ 15 kB per SM, and 512 threads × 8 independent 4-byte loads (a stencil reads
#: x and its 6 neighbours, mass, faces) are 16 kB: R ≤ 128. cell_kinetics is bound by its
#: ≈ 20 exponentials per voxel, not by memory: one resident block will do, R ≤ 255, the
#: hardware's limit. (Issue 13 item 5 is to bring these down from the compiler's figures.)
#: Two float64 kernels state one block (SDTP_KERNEL_MIN_BLOCKS(2, 1)), R ≤ 255: bounded
#: at two, NVRTC 13.5 spills them (bmg_residual_restrict 16/48 bytes stored/loaded,
#: bmg_coarsen 8/8); bmg_coarsen runs once per level and step (the set-up, not the
#: cycles), bmg_residual_restrict in every cycle: a float64 GPU run has 12.5 % occupancy
#: there (kernels/README.md's table), whether that costs bandwidth is for a GPU to measure.
MAX_REGISTERS = {"cell_kinetics": 255, ("bmg_residual_restrict", "float64"): 255,
                 ("bmg_coarsen", "float64"): 255}
MEMORY_BOUND_MAX_REGISTERS = 128
#: local memory a kernel may use by design: observable_sums indexes its per-label
#: accumulators (3 × OBS_MAX_LABELS = 96 doubles, kernels/observables.cu) by each voxel's
#: label at run time, so they cannot be registers: 96 × 8 B. Every other kernel: none.
LOCAL_BYTES = {"observable_sums": 3 * 32 * 8}

_PTXAS = re.compile(r"Compiling entry function '(\w+)' for 'sm_90'.*?"
                    r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill "
                    r"loads.*?Used (\d+) registers", re.S)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_every_kernel_compiles_to_an_sm90_binary_without_spills_or_local_memory(dtype):
    """NVRTC with the backend's options and CuPy's additions builds an sm_90 cubin; ptxas
    reports, for every kernel, no stack frame (local memory), no spills, and registers
    within MAX_REGISTERS. Prints the figures (kernels/README.md records them)."""
    from conftest import real_cupy_modules
    from spatialdtp.backends.cupy_backend import nvrtc_options

    source = module_source()
    options = [*nvrtc_options(dtype), *CUPY_NVRTC_OPTIONS, "-Xptxas=-v"]
    with real_cupy_modules():
        nvrtc = _nvrtc_or_skip()
        prog = nvrtc.createProgram(source, "spatialdtp_kernels.cu", [], [])
        try:
            try:
                nvrtc.compileProgram(prog, options)
            except nvrtc.NVRTCError as err:
                pytest.fail(f"NVRTC: {err}\n{nvrtc.getProgramLog(prog)[-3000:]}")
            log = nvrtc.getProgramLog(prog)
            cubin = nvrtc.getCUBIN(prog)
        finally:
            nvrtc.destroyProgram(prog)
    log = log.decode() if isinstance(log, bytes) else log
    assert "warning" not in log.lower(), log[-3000:]
    assert cubin[:4] == b"\x7fELF"                 # a binary for the device, not PTX
    figures = {m[0]: tuple(int(v) for v in m[1:]) for m in _PTXAS.findall(log)}
    assert set(figures) == set(parse_signatures(source)), log[-3000:]
    for kernel, (stack, spill_st, spill_ld, registers) in sorted(figures.items()):
        print(f"{np.dtype(dtype)} {kernel}: {registers} registers, {stack} bytes stack, "
              f"{spill_st}/{spill_ld} bytes spilled")
        assert stack <= LOCAL_BYTES.get(kernel, 0), \
            f"{kernel}: {stack} bytes of local memory (stack frame)"
        assert spill_st == spill_ld == 0, f"{kernel}: registers spilled"
        limit = MAX_REGISTERS.get((kernel, np.dtype(dtype).name),
                                  MAX_REGISTERS.get(kernel, MEMORY_BOUND_MAX_REGISTERS))
        assert registers <= limit, f"{kernel}: {registers} registers > {limit}"


def test_one_compiled_backend_serves_simulations_of_different_grids():
    backend = get_backend("cpu")
    for shape in ("[20,24]", "[31,17]", "[6,7,8]"):
        overrides = ["experiment=quick", f"grid.shape={shape}", "backend.precision=float64"]
        if shape.count(",") == 2:
            overrides += ["tissue=spheroid3d", "tissue.tumour.radius=40"]
        ref = Simulation(load_config(overrides), get_backend("numpy"))
        got = Simulation(load_config(overrides), backend)
        ref.step(), got.step()
        for name in ("oxygen", "P", "M"):
            np.testing.assert_allclose(got.field(name), ref.field(name), rtol=1e-10, atol=1e-300)


def test_a_bound_kernel_computes_what_a_checked_launch_computes_and_checks_what_it_binds():
    """``lib.bind`` packs the leading arguments once; the launch must be the same kernel
    call (the same output bits), the bound arguments checked at bind time as ``launch``
    checks them, and the remaining ones at every call."""
    import sys

    from conftest import ROOT
    sys.path.insert(0, str(ROOT))
    from benchmarks.launch_cost import stencil_arguments

    lib = get_backend("cpu").library(np.float32)
    leading, (x, out), middle = stencil_arguments(np, np.float32)
    name, rest = leading[0], leading[1:]
    lib.launch(name, *rest, x, out, *middle)
    checked = out.copy()
    assert np.any(checked != 0)
    out[...] = 0
    lib.bind(name, *rest, x, out, *middle)()
    assert np.array_equal(out, checked)
    out[...] = 0
    bound = lib.bind(name, *rest)
    bound(x, out, *middle)
    assert np.array_equal(out, checked)
    with pytest.raises(TypeError, match=r"argument 'x' must be a float32 array, got float64"):
        lib.bind(name, *rest, x.astype(np.float64))
    with pytest.raises(TypeError, match=r"argument 'out' must be a float32 array"):
        bound(x, out.astype(np.float64), *middle)
    with pytest.raises(TypeError, match=r"takes 19 more arguments"):
        bound(x, out)


def test_binding_a_launch_removes_its_python_glue():
    """The benchmark's claim as a ratio measured in one run: a bound launch of
    ``stencil_apply`` spends less than half the Python glue (time above the backend's own
    pre-packed call) of a checked one. Bound, only the call remains, so the ratio is near
    0 (≈ 0.02 here); half leaves room for a noisy machine without letting a bind that
    re-checks its 24 arguments pass (that ratio is ≈ 1)."""
    import sys

    from conftest import ROOT
    sys.path.insert(0, str(ROOT))
    from benchmarks.launch_cost import measure

    figures = measure("cpu", repeats=3000)
    assert figures["glue_ratio_bound_over_launch"] < 0.5, figures


@pytest.mark.skipif(shutil.which("g++") is None, reason="backend cpu needs g++")
@pytest.mark.parametrize("env, spin", [({}, "0"), ({"OMP_WAIT_POLICY": "ACTIVE"}, None)])
def test_cpu_backend_threads_wait_passively_unless_the_user_chose(env, spin):
    """libgomp reports how long an idle thread spins before it sleeps (OMP_DISPLAY_ENV=
    VERBOSE, GOMP_SPINCOUNT): 0 by default, so that a shared machine's other programs get
    the cores (unset it would be 300000); the user's choice is kept (ACTIVE spins on)."""
    import os
    import sys

    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = "from spatialdtp.backends import get_backend; get_backend('cpu').library(__import__('numpy').float32)"
    proc = subprocess.run([sys.executable, "-c", code],
                          env={**clean, **env, "OMP_DISPLAY_ENV": "VERBOSE"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    count = re.search(r"GOMP_SPINCOUNT = '(\w+)'", proc.stderr + proc.stdout)
    assert count, proc.stderr[-2000:]
    assert (count.group(1) == "0") == (spin == "0"), count.group(0)


def test_the_block_size_is_read_from_sdtp_h_and_checked():
    from spatialdtp.backends.kernels import block_threads

    assert block_threads() == 256                      # kernels/sdtp.h's SDTP_BLOCK_THREADS
    assert block_threads("#define SDTP_BLOCK_THREADS 128\n") == 128
    for bad in ("", "#define SDTP_BLOCK_THREADS 100\n", "#define SDTP_BLOCK_THREADS 2048\n",
                "#define SDTP_BLOCK_THREADS 128\n#define SDTP_BLOCK_THREADS 256\n"):
        with pytest.raises(ValueError, match="SDTP_BLOCK_THREADS"):
            block_threads(bad)


def test_a_struct_of_reals_by_value_is_a_parameter_of_its_literal_length():
    source = ("struct Coeffs { real v[3]; };\n"
              "SDTP_KERNEL_MIN_BLOCKS(2, 1) k(idx_t n, const Coeffs c, real* x) {}\n")
    (n, c, x), = parse_signatures(source).values()
    assert (c.kind, c.pointee) == ("reals", 3) and x.kind == "pointer"
    with pytest.raises(TypeError, match="structs"):
        parse_signatures("SDTP_KERNEL k(idx_t n, const Other c) {}\n")
    lib = get_backend("cpu").ops(np.float64).lib
    with pytest.raises(TypeError, match=r"cell_kinetics: argument 'pv' is 36 reals"):
        lib.launch("cell_kinetics", 1, np.zeros(9), np.zeros(1), np.zeros(35), None,
                   np.zeros(14, dtype=np.int64), 1.0)
