/* sdtp.h: one header that lets every kernel in this folder compile twice.
 *
 *  - for the GPU, by CuPy's NVRTC (RawModule) or nvcc: a kernel is a __global__ function
 *    and FOR_EACH is a grid-stride loop, so any launch size covers any grid;
 *  - for the host, by g++ -fopenmp (backend "cpu", loaded through ctypes): a kernel is a
 *    plain C function and FOR_EACH is an OpenMP parallel loop.
 *
 * The body of every kernel is therefore the same text on both, and CI (no GPU) runs it on
 * the host against the NumPy reference: a wrong index fails there too.
 *
 * Types: `real` is float or double (-DSDTP_REAL=...), `idx_t` a 64-bit index. Kernels take
 * only pointers, idx_t and real arguments (that is what the Python launchers pass).
 * Accumulations of reductions are always in double.
 */
#ifndef SDTP_H
#define SDTP_H

#ifndef SDTP_REAL
#define SDTP_REAL double
#endif
typedef SDTP_REAL real;
typedef long long idx_t;

/* Threads per block of every GPU launch. The one definition: the GPU launcher
 * (spatialdtp/backends/cupy_backend.py) reads it from this file with
 * spatialdtp.backends.kernels.block_threads(), and every kernel declares it as its
 * __launch_bounds__, so ptxas allocates registers for this block size and the driver refuses
 * a launch of more threads. Change it here only.
 *
 * SDTP_KERNEL_MIN_BLOCKS(f32, f64) name(...) is SDTP_KERNEL with the second bound, the
 * blocks of SDTP_BLOCK_THREADS that must fit on one SM, for float32 and float64: ptxas then
 * keeps registers within 65536 / (blocks · threads). A bare __launch_bounds__(256) lets
 * ptxas pick that target itself, and nvcc 13.0 picked targets that spill (cell_kinetics,
 * transport, batched multigrid: 8 to 164 bytes); each kernel states the blocks it reached
 * without bounds instead (kernels/README.md's table: no kernel spills), and raising them is
 * for a GPU measurement to decide. */
#define SDTP_BLOCK_THREADS 256
#define SDTP_PICK_float(f32, f64) f32
#define SDTP_PICK_double(f32, f64) f64
#define SDTP_PICK_(r, f32, f64) SDTP_PICK_##r(f32, f64)
#define SDTP_PICK(r, f32, f64) SDTP_PICK_(r, f32, f64)

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SDTP_GPU 1
#define SDTP_KERNEL extern "C" __global__ void __launch_bounds__(SDTP_BLOCK_THREADS)
#define SDTP_KERNEL_MIN_BLOCKS(f32, f64) extern "C" __global__ void \
    __launch_bounds__(SDTP_BLOCK_THREADS, SDTP_PICK(SDTP_REAL, f32, f64))
#define SDTP_INLINE __device__ __forceinline__
#define SDTP_RESTRICT __restrict__
/* a loop over the 3 axes unrolled: arrays indexed by its counter then stay in registers */
#define SDTP_UNROLL _Pragma("unroll")
/* one thread per item, striding by the whole launch */
#define FOR_EACH(i, n) \
    for (idx_t i = (idx_t)blockIdx.x * blockDim.x + threadIdx.x; i < (idx_t)(n); \
         i += (idx_t)blockDim.x * gridDim.x)
#define FOR_EACH_ROW(r, rows, row_length) FOR_EACH(r, rows)
/* reductions: `chunks` independent partial results; on the GPU chunk c takes items
 * c, c + chunks, ... so that neighbouring threads read neighbouring voxels (coalesced) */
#define FOR_EACH_CHUNK(c, chunks) FOR_EACH(c, chunks)
#define FOR_CHUNK_ITEMS(i, c, chunks, n) for (idx_t i = (c); i < (idx_t)(n); i += (chunks))
#else
#include <cmath>
using std::exp; using std::expm1; using std::fabs; using std::fmax; using std::fmin;
using std::pow; using std::sqrt; using std::isfinite;
#define SDTP_KERNEL extern "C" void
#define SDTP_KERNEL_MIN_BLOCKS(f32, f64) extern "C" void
#define SDTP_INLINE static inline
#define SDTP_RESTRICT __restrict__
#define SDTP_UNROLL /* the host compiler decides */
#define SDTP_PRAGMA(x) _Pragma(#x)
/* small loops stay on one thread: waking the team costs more than they take */
#define SDTP_PARALLEL_MIN 32768
#define FOR_EACH(i, n) \
    SDTP_PRAGMA(omp parallel for schedule(static) if((idx_t)(n) >= SDTP_PARALLEL_MIN)) \
    for (idx_t i = 0; i < (idx_t)(n); ++i)
/* a loop over rows of row_length voxels each (host code paths that vectorise along x) */
#define FOR_EACH_ROW(r, rows, row_length) \
    SDTP_PRAGMA(omp parallel for schedule(static) \
                if((idx_t)(rows) * (idx_t)(row_length) >= SDTP_PARALLEL_MIN)) \
    for (idx_t r = 0; r < (idx_t)(rows); ++r)
/* on the host chunk c is one contiguous slice, so each thread streams its own memory */
#define FOR_EACH_CHUNK(c, chunks) \
    _Pragma("omp parallel for schedule(static, 1)") for (idx_t c = 0; c < (idx_t)(chunks); ++c)
#define FOR_CHUNK_ITEMS(i, c, chunks, n) \
    for (idx_t i = (idx_t)(n) * (c) / (chunks), i##_end = (idx_t)(n) * ((c) + 1) / (chunks); \
         i < i##_end; ++i)
#endif

SDTP_INLINE real clamp01(real x) { return x < (real)0 ? (real)0 : (x > (real)1 ? (real)1 : x); }

#endif /* SDTP_H */
