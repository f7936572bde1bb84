/* cuda_on_host.h: what NVRTC gives a CUDA source, for the host's C++ compiler.
 *
 * The device double of tests/cupy_double compiles a RawModule's code with g++ after this
 * prelude, so that the GPU branch of the code is what runs: NVRTC's predefined macros
 * (__CUDACC__, __CUDACC_RTC__, __CUDA_ARCH__), __global__/__device__, the built-in
 * threadIdx/blockIdx/blockDim/gridDim (set by the launch stubs for every thread of the
 * launch configuration), and the device math functions in the global namespace with their
 * float and double overloads. Threads run one after another, so shared memory and barriers
 * are refused at compile time instead of being emulated wrongly.
 */
#ifndef SDTP_CUDA_ON_HOST_H
#define SDTP_CUDA_ON_HOST_H

#include <cmath>
#include <cstddef>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#define __CUDACC__ 1
#define __CUDACC_RTC__ 1
#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 900
#endif
#define __CUDACC_VER_MAJOR__ 13
#define __CUDACC_VER_MINOR__ 0
#ifndef SDTP_DOUBLE_PREPROCESS          /* kept as a token when the double lists kernels */
#define __global__
#endif
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#ifndef SDTP_DOUBLE_PREPROCESS          /* kept when listing kernels: the double reads the bound */
#define __launch_bounds__(...)
#endif
#define __constant__
#define __shared__ sdtp_double_does_not_emulate_shared_memory
#define __syncthreads() sdtp_double_does_not_emulate_barriers()

struct uint3 { unsigned int x, y, z; };
struct dim3 { unsigned int x, y, z; };
static uint3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;

/* CUDA's math API: overloaded for float and double in the global namespace */
using std::abs; using std::acos; using std::asin; using std::atan; using std::atan2;
using std::cbrt; using std::ceil; using std::copysign; using std::cos; using std::cosh;
using std::erf; using std::erfc; using std::exp; using std::exp2; using std::expm1;
using std::fabs; using std::floor; using std::fma; using std::fmax; using std::fmin;
using std::fmod; using std::hypot; using std::isfinite; using std::isinf; using std::isnan;
using std::log; using std::log10; using std::log1p; using std::log2; using std::lround;
using std::nearbyint; using std::pow; using std::rint; using std::round; using std::signbit;
using std::sin; using std::sinh; using std::sqrt; using std::tan; using std::tanh;
using std::trunc;
/* __expf and __logf: glibc declares them (its own expf and logf), as CUDA declares its
 * fast intrinsics */
static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
static inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }
static inline float __fdividef(float a, float b) { return a / b; }
template <class T> static inline T __ldg(const T* p) { return *p; }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
static inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
static inline float min(float a, float b) { return std::fmin(a, b); }
static inline float max(float a, float b) { return std::fmax(a, b); }
static inline double min(double a, double b) { return std::fmin(a, b); }
static inline double max(double a, double b) { return std::fmax(a, b); }

/* ---- the launch stubs (used by the code the double appends after the source) ---- */
namespace sdtp_double {

template <class T> constexpr int kind_of()
{
    return std::is_same<T, bool>::value ? 'b'
         : std::is_floating_point<T>::value ? 'f'
         : std::is_integral<T>::value ? (std::is_unsigned<T>::value ? 'u' : 'i')
         : std::is_pointer<T>::value ? 'p'
         : std::is_class<T>::value ? 'S' : '?';   /* 'S': a struct passed by value */
}
template <class T> struct size_or_zero { static constexpr int value = sizeof(T); };
template <> struct size_or_zero<void> { static constexpr int value = 0; };
template <> struct size_or_zero<const void> { static constexpr int value = 0; };

/* five ints per parameter: kind, size, pointee kind, pointee size, pointee is const */
template <class T> void describe_one(int* o)
{
    typedef typename std::remove_cv<T>::type U;
    if (std::is_pointer<U>::value) {
        typedef typename std::remove_pointer<U>::type P;
        o[0] = 'p'; o[1] = (int)sizeof(void*);
        o[2] = kind_of<typename std::remove_cv<P>::type>();
        o[3] = size_or_zero<P>::value; o[4] = std::is_const<P>::value ? 1 : 0;
    } else {
        o[0] = kind_of<U>(); o[1] = (int)sizeof(U); o[2] = o[3] = o[4] = 0;
    }
}

template <class... A> int describe(void (*)(A...), int* out)
{
    int k = 0;
    int dummy[] = {0, (describe_one<A>(out + 5 * k++), 0)...};
    (void)dummy;
    return (int)sizeof...(A);
}

/* a parameter read from the driver's argument buffer by the kernel's own type: as
 * cuLaunchKernel does, sizeof(T) bytes from where kernelParams[k] points */
template <class T> T load(void* p)
{
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

template <class F, F f> struct Launch;
template <class... A, void (*f)(A...)> struct Launch<void (*)(A...), f> {
    template <std::size_t... I>
    static void run(void** params, const unsigned* g, const unsigned* b, int ftz,
                    std::index_sequence<I...>)
    {
        std::tuple<typename std::decay<A>::type...> args(
            load<typename std::decay<A>::type>(params[I])...);
#if defined(__x86_64__) || defined(__i386__)
        const unsigned csr = _mm_getcsr();
        if (ftz)                 /* NVRTC's -ftz=true: denormal float results and inputs are 0 */
            _mm_setcsr(csr | 0x8040);
#endif
        gridDim.x = g[0]; gridDim.y = g[1]; gridDim.z = g[2];
        blockDim.x = b[0]; blockDim.y = b[1]; blockDim.z = b[2];
        const long long blocks = (long long)g[0] * g[1] * g[2];
        /* blocks last-first: a kernel that relies on blocks running in order (or on the
         * host build's ascending loop) sees another order here */
        for (long long lin = blocks - 1; lin >= 0; --lin) {
            blockIdx.x = (unsigned)(lin % g[0]);
            blockIdx.y = (unsigned)((lin / g[0]) % g[1]);
            blockIdx.z = (unsigned)(lin / ((long long)g[0] * g[1]));
            for (unsigned tz = 0; tz < b[2]; ++tz)
                for (unsigned ty = 0; ty < b[1]; ++ty)
                    for (unsigned tx = 0; tx < b[0]; ++tx) {
                        threadIdx.x = tx; threadIdx.y = ty; threadIdx.z = tz;
                        f(std::get<I>(args)...);
                    }
        }
#if defined(__x86_64__) || defined(__i386__)
        _mm_setcsr(csr);
#endif
    }
    static void launch(void** params, const unsigned* g, const unsigned* b, int ftz)
    {
        run(params, g, b, ftz, std::index_sequence_for<A...>{});
    }
};

}  // namespace sdtp_double

#define SDTP_DOUBLE_STUB(name)                                                             \
    extern "C" int sdtp_double_describe_##name(int* out)                                   \
    { return sdtp_double::describe(&name, out); }                                          \
    extern "C" void sdtp_double_launch_##name(void** p, const unsigned* g,                 \
                                              const unsigned* b, int ftz)                  \
    { sdtp_double::Launch<decltype(&name), &name>::launch(p, g, b, ftz); }

#endif /* SDTP_CUDA_ON_HOST_H */
