"""The CuPy device double fails where CuPy or the GPU would, and only there.

Each test below is a mistake that passes on the host build (backend ``cpu``) and would be
wrong, or refused, on a GPU: the double must catch it every time. The kernels here are
small CUDA sources of their own, so that what is checked is the double, not spatialdtp.
"""
import gc
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the double compiles with g++")

SCALE = r"""
extern "C" __global__ void scale(long long n, float* x, float a)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        x[i] = a * x[i];
}
extern "C" __global__ void scale_no_stride(long long n, float* x, float a)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] = a * x[i];
}
extern "C" __global__ void axpy(long long n, const double* x, double* y, const float* p)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        y[i] = y[i] + (p ? (double)p[0] : 1.0) * x[i];
}
"""


@pytest.fixture
def cp(double):
    import cupy
    return cupy


@pytest.fixture
def module(cp):
    return cp.RawModule(code=SCALE, options=("--std=c++14",))


def test_the_device_is_hidden_until_a_test_asks_for_it(cp, double):
    double.disable()
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="cudaErrorNoDevice"):
        cp.cuda.runtime.getDeviceCount()
    double.enable()
    assert cp.cuda.runtime.getDeviceCount() == 1


# --------------------------------------------------------------------------- launches
def test_a_grid_stride_loop_covers_every_item_of_a_capped_grid_and_a_plain_index_does_not(
        cp, module):
    n, threads, blocks = 10_000, 128, 8            # 1024 threads for 10 000 items
    x = cp.ones(n, dtype=cp.float32)
    module.get_function("scale")((blocks,), (threads,), (np.int64(n), x, np.float32(3.0)))
    assert bool((x == 3.0).all())
    y = cp.ones(n, dtype=cp.float32)
    module.get_function("scale_no_stride")((blocks,), (threads,), (np.int64(n), y, np.float32(3.0)))
    host = cp.asnumpy(y)
    assert (host[:blocks * threads] == 3.0).all() and (host[blocks * threads:] == 1.0).all()


@pytest.mark.parametrize("bad,match", [
    ((np.int64(8), "x", 3.0), r"parameter 2 \(a\) is float \(4 bytes\); a double \(8 bytes\) "
                              r"was passed \(a Python float is packed as a double\)"),
    ((np.int32(8), "x", np.float32(3)), r"parameter 0 \(n\) is long long \(8 bytes\); a int "
                                        r"\(4 bytes\)"),
    ((8, "x", np.float32(3)), None),                            # a Python int is an int64: fine
    ((np.int64(8), "x64", np.float32(3)), r"parameter 1 \(x\) is float\*; a float64 array"),
    ((np.int64(8), np.zeros(8, np.float32), np.float32(3)), r"numpy.ndarray of shape \(8,\)"),
])
def test_kernel_arguments_are_checked_as_the_gpu_reads_them(cp, module, bad, match):
    arrays = {"x": cp.ones(8, dtype=cp.float32), "x64": cp.ones(8, dtype=cp.float64)}
    args = tuple(arrays.get(a, a) if isinstance(a, str) else a for a in bad)
    kernel = module.get_function("scale")
    if match is None:
        kernel((1,), (8,), args)
        assert bool((arrays["x"] == 3.0).all())
    else:
        with pytest.raises(TypeError, match=match):
            kernel((1,), (8,), args)


def test_null_pointers_are_8_bytes_as_cupy_packs_none(cp, module):
    x, y = cp.ones(4, dtype=cp.float64), cp.zeros(4, dtype=cp.float64)
    axpy = module.get_function("axpy")
    axpy((1,), (32,), (np.int64(4), x, y, None))
    axpy((1,), (32,), (np.int64(4), x, y, np.uint64(0)))
    assert float(y.sum()) == 8.0
    with pytest.raises(TypeError, match=r"parameter 3 \(p\) is a pointer .* a 4-byte null"):
        axpy((1,), (32,), (np.int64(4), x, y, np.uint32(0)))


def test_launch_limits_are_the_drivers(cp, module):
    x = cp.ones(8, dtype=cp.float32)
    args = (np.int64(8), x, np.float32(2))
    kernel = module.get_function("scale")
    for grid, block in [((1,), (2048,)), ((1,), (32, 32, 2)), ((1, 70000), (32,))]:
        with pytest.raises(cp.cuda.driver.CUDADriverError, match="CUDA_ERROR_INVALID_VALUE"):
            kernel(grid, block, args)
    with pytest.raises(TypeError, match="expected tuple"):
        kernel([1], (32,), args)
    kernel((1,), (1024,), args)                       # the largest block is allowed


BOUNDED = r"""
#define BLOCK 128
extern "C" __global__ void __launch_bounds__(BLOCK) bounded(long long n, float* x)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        x[i] = 2.0f * x[i];
}
extern "C" __global__ void __launch_bounds__((64), 4) bounded_min_blocks(long long n, float* x)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        x[i] = 3.0f * x[i];
}
"""


def test_a_block_larger_than_the_kernels_launch_bounds_is_refused(cp):
    """ptxas sizes a kernel's registers for its __launch_bounds__, and the driver refuses a
    launch of more threads per block; CuPy reports the bound as max_threads_per_block."""
    mod = cp.RawModule(code=BOUNDED, options=("--std=c++14",))
    x = cp.ones(1000, dtype=cp.float32)
    for name, bound, factor in (("bounded", 128, 2.0), ("bounded_min_blocks", 64, 3.0)):
        kernel = mod.get_function(name)
        assert kernel.attributes["max_threads_per_block"] == bound
        for block in ((bound + 32,), (bound // 2, 4), (1024,)):
            with pytest.raises(cp.cuda.driver.CUDADriverError,
                               match=rf"LAUNCH_OUT_OF_RESOURCES.*{name}.*allows {bound}"):
                kernel((2,), block, (np.int64(1000), x))
        x[...] = 1
        kernel((2,), (bound,), (np.int64(1000), x))          # the bound itself is allowed
        assert float(x.sum()) == factor * 1000
    # a kernel without a bound takes the driver's 1024
    assert cp.RawModule(code=SCALE, options=("--std=c++14",)).get_function(
        "scale").attributes["max_threads_per_block"] == 1024


BY_VALUE = r"""
struct Coeffs { double v[5]; };
extern "C" __global__ void weighted(long long n, const Coeffs c, double* x, float s)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        x[i] = c.v[i % 5] * (double)s;
}
"""


def test_a_struct_passes_by_value_as_a_numpy_record_of_its_size(cp):
    """CuPy passes a NumPy structured scalar by its bytes; the kernel reads the struct's
    size there, so a record of another size (or a plain number) is refused."""
    kernel = cp.RawModule(code=BY_VALUE, options=("--std=c++14",)).get_function("weighted")
    record = np.zeros((), dtype=[("v", np.float64, (5,))])
    record["v"] = [1, 2, 3, 4, 5]
    x = cp.zeros(12, dtype=cp.float64)
    kernel((1,), (32,), (np.int64(12), record[()], x, np.float32(2)))
    np.testing.assert_array_equal(cp.asnumpy(x), 2.0 * (np.arange(12) % 5 + 1))
    short = np.zeros((), dtype=[("v", np.float64, (4,))])[()]
    wide = np.zeros((), dtype=[("v", np.float32, (5,))])[()]
    for bad, match in ((short, "record of 32 bytes"),
                       (wide, "record of 20 bytes"), (1.0, "a float was passed")):
        with pytest.raises(TypeError,
                           match=rf"parameter 1 \(c\) is a struct of 40 bytes .*{match}"):
            kernel((1,), (32,), (np.int64(12), bad, x, np.float32(2)))


def test_a_compile_error_raises_cupys_compile_exception_with_the_compilers_log(cp):
    bad = cp.RawModule(code='extern "C" __global__ void k(long long n) { undeclared(n); }')
    with pytest.raises(cp.cuda.compiler.CompileException, match="undeclared"):
        bad.compile()
    with pytest.raises(cp.cuda.driver.CUDADriverError, match="named symbol not found"):
        cp.RawModule(code=SCALE).get_function("missing")


def test_float32_denormals_flush_to_zero_and_multiply_adds_contract(cp, double):
    code = r"""
    extern "C" __global__ void half(long long n, float* x) { x[0] = x[0] * 0.5f; }
    extern "C" __global__ void half64(long long n, double* x) { x[0] = x[0] * 0.5; }
    extern "C" __global__ void square_less_one(long long n, const double* a, double* out)
    { out[0] = a[0] * a[0] - 1.0; }
    """
    mod = cp.RawModule(code=code)
    x = cp.asarray(np.array([np.finfo(np.float32).tiny], np.float32))   # smallest normal
    mod.get_function("half")((1,), (1,), (np.int64(1), x))
    assert float(x[0]) == 0.0                        # -ftz=true: the denormal result is 0
    y = cp.asarray(np.array([np.finfo(np.float64).tiny]))
    mod.get_function("half64")((1,), (1,), (np.int64(1), y))
    assert float(y[0]) == np.finfo(np.float64).tiny / 2     # doubles keep their denormals
    # a = 1 + 2^-30: a·a − 1 is 2^-29 + 2^-60 exactly; rounding a·a first loses the 2^-60
    a = cp.asarray(np.array([1.0 + 2.0**-30]))
    out = cp.zeros(1)
    mod.get_function("square_less_one")((1,), (1,), (np.int64(1), a, out))
    if not cp._raw._host_has_fma():
        pytest.skip("this CPU has no FMA: contraction is not emulated (float32 FTZ was)")
    assert float(out[0]) == 2.0**-29 + 2.0**-60     # contracted, as NVRTC does by default


# --------------------------------------------------------------------------- strictness
def test_host_arrays_and_implicit_conversions_are_refused_as_cupy_refuses_them(cp):
    a = cp.arange(4, dtype=cp.float64)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    for op in (lambda: a + np.ones(4), lambda: np.ones(4) + a, lambda: cp.add(a, [1, 2, 3, 4]),
               lambda: cp.multiply(a, np.float64(2) * np.ones(1)), lambda: cp.sum(np.ones(3))):
        with pytest.raises(TypeError, match="Unsupported type"):
            op()
    assert float(np.sum(a)) == 6.0                   # NumPy functions dispatch to CuPy's
    assert isinstance(cp.sum(a), cp.ndarray) and cp.sum(a).shape == ()


def test_host_synchronisations_launches_and_allocations_are_counted(cp, double):
    a = cp.zeros(1000, dtype=cp.float32)             # 1 allocation, 1 launch (memset)
    double.reset_counters()
    b = a + 1.0                                      # 1 launch, 1 allocation
    a += b                                           # 1 launch, in place
    s = float(a.sum())                               # 1 launch + 0-d result, 1 sync
    assert s == 1000.0
    c = double.snapshot()
    assert (c["array_launches"], c["allocations"], c["host_syncs"]) == (3, 2, 1)
    assert (c["d2h_copies"], c["kernel_launches"]) == (1, 0)
    _ = a[3:7]                                       # a view: nothing launched or allocated
    assert double.snapshot() == c


# --------------------------------------------------------------------------- streams
def _pending_copy(cp, a, stream, device_copy=True, event=True):
    """The cupy backend's frame snapshot, with its steps optional."""
    src = a.copy() if device_copy else a
    pinned = cp.cuda.alloc_pinned_memory(src.nbytes)
    host = np.frombuffer(pinned, src.dtype, src.size).reshape(src.shape)
    if event:
        stream.wait_event(cp.cuda.get_current_stream().record())
    src.get(stream=stream, out=host, blocking=False)
    return host, stream.record(), src


def test_an_asynchronous_copy_runs_when_it_is_waited_for(cp):
    stream = cp.cuda.Stream(non_blocking=True)
    a = cp.full(5, 2.0)
    host, done, keep = _pending_copy(cp, a, stream)
    assert np.isnan(host).all()                      # not copied yet: the pinned poison
    a *= 3.0                                         # the compute stream goes on
    done.synchronize()
    assert (host == 2.0).all()                       # the value at the time of the snapshot


def test_a_copy_without_its_device_copy_races_with_the_next_step(cp):
    stream = cp.cuda.Stream(non_blocking=True)
    a = cp.full(5, 2.0)
    host, done, keep = _pending_copy(cp, a, stream, device_copy=False)
    with pytest.raises(cp._device.RaceError, match="overwrites device memory"):
        a *= 3.0
    done.synchronize()


def test_a_copy_without_its_event_races_with_the_write_it_copies(cp):
    stream = cp.cuda.Stream(non_blocking=True)
    a = cp.full(5, 2.0)
    with pytest.raises(cp._device.RaceError, match="with no event recorded"):
        _pending_copy(cp, a, stream, event=False)


def test_freeing_the_source_of_a_pending_copy_is_caught(cp, double):
    stream = cp.cuda.Stream(non_blocking=True)
    host, done, keep = _pending_copy(cp, cp.full(5, 2.0), stream)
    del keep
    gc.collect()
    with pytest.raises(cp._device.UseAfterFreeError):
        done.synchronize()
    assert double.errors and isinstance(double.errors[-1], cp._device.UseAfterFreeError)
    double.errors.clear()
