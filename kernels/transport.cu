/* transport.cu: one explicit sub-step of crowding-limited cell motility and TAM chemotaxis,
 * and one of the tumour's pressure-driven expansion.
 *
 *     ∂n/∂t = −∇·J,   per face j+½ along an axis (a = n_j, b = n_{j+1}):
 *
 *     f_k     = clamp(1 − (o_k + n_k)/capacity, 0, 1)   room of voxel k (o: the other cell
 *                                                        types, frozen over the sub-steps)
 *     o_k     = ((o0_k + o1_k) + o2_k) + o3_k           the four other planes in cell order:
 *                                                        `o` when the launcher summed them,
 *                                                        else summed here where read
 *     J_{j+½} = (D (a f_{j+1} − b f_j)) / dx  +  (v > 0 ? v a f_{j+1} : v b f_j),
 *     v       = (χ (q_{j+1} − q_j)) / dx               (only for M: q the chemokine)
 *
 *     n_new_j = n_j + h Σ_axes (J_{j−½} − J_{j+½}) / dx      (axes slowest first: z, y, x)
 *
 * and, on the last sub-step of a half-step, n_new ← max(n_new, 0). Cells move only into
 * room (volume filling): a full voxel gains nothing; in empty tissue J is −D∇n + v n.
 *
 * Reference: spatialdtp.numerics.transport.move_cells (_tendency, free_fraction,
 * chemotactic_velocity, substeps). Every operation is the reference's, in its order and in
 * the field dtype, so that on the host float32 and float64 results agree with it to
 * rounding (on the GPU, up to the FMAs that NVRTC contracts). One thread per voxel reads n
 * and the others' total at itself and its 2·ndim neighbours (and q there, for the drift)
 * and writes a separate buffer: neighbours must see the old n. The others' total: on the
 * GPU (o null) summed here from the four planes where it is read, in others_total's
 * order, which saves the separate pass's DRAM traffic (three additions: 9 planes per
 * moving type and half step, against 3 more planes read per sub-step, from cache); on the
 * host the launcher passes it summed (o), which keeps the vectorised row loop at one load
 * per position (summing there made it 45 % slower at 64³).
 *
 * transport_max_jump: max over all faces of |q_{j+1} − q_j|, per chunk (the max over
 * chunks on the device). The reference's v_max = max |fl(fl(χ Δq)/dx)|; rounding is
 * monotone and sign-symmetric, so that equals fl(fl(χ max|Δq|)/dx) exactly (the launcher
 * does those two roundings in the field dtype) and the sub-step count, a ceil() of it, is
 * the reference's. A NaN propagates (as xp.max does).
 *
 * transport_pressure_substep: S, P and R pushed together down the gradient of T = S + P + R
 * (Darcy flow with a pressure linear in T), through stroma o = F + M that neither moves nor
 * pushes but holds room (`o` when the launcher summed it, else F[k] + M[k] here where read:
 * on the GPU, which saves the sum's pass, 3 planes a half step, for 1 more plane read per
 * sub-step):
 *
 *     s_k  = K − T_k > 0 ? clamp((K − T_k − o_k)/(K − T_k), 0, 1) : 0   room stroma leaves
 *     w_ik = T_k > 0 ? n_ik / T_k : 0                                   share of type i
 *     Φ    = c ((T_j − T_{j+1})(T_j + T_{j+1})),   c = D_p/(2K dx)      face j+½
 *     J_i  = Φ > 0 ? (Φ s_{j+1}) w_ij : (Φ s_j) w_i,j+1
 *     n_new_ij = n_ij + h Σ_axes (J_{i,j−½} − J_{i,j+½}) / dx, clamped to >= 0 on the last
 *
 * Reference: spatialdtp.numerics.transport.push_tumour (_pressure_tendencies, stroma_room,
 * tumour_shares), in its order of operations and dtype.
 */
#include "sdtp.h"

/* GCC turns the upwind select below into a vector blend only where it may assume that a
 * comparison does not trap; otherwise the host's drift loops stay scalar and branchy,
 * several times slower. The flag changes no value (nothing here reads FP exception flags);
 * it covers this file's functions only (all kernel files are one translation unit). */
#if !defined(SDTP_GPU) && defined(__GNUC__) && !defined(__clang__)
#define TRANSPORT_NO_TRAP 1
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

/* (z, y, x) of voxel i of an (nz, ny, nx) grid; 32-bit divisions where they suffice,
 * which are several times cheaper than 64-bit ones on the GPU */
SDTP_INLINE void transport_coords(idx_t i, idx_t n, idx_t ny, idx_t nx,
                                  idx_t* z, idx_t* y, idx_t* x)
{
    if (n <= (idx_t)0x7fffffff) {
        const unsigned ui = (unsigned)i, unx = (unsigned)nx, uny = (unsigned)ny;
        const unsigned row = ui / unx, zz = row / uny;
        *x = (idx_t)(ui - row * unx);
        *y = (idx_t)(row - zz * uny);
        *z = (idx_t)zz;
    } else {
        const idx_t row = i / nx, zz = row / ny;
        *x = i - row * nx;
        *y = row - zz * ny;
        *z = zz;
    }
}

/* the other cell types of a moving type: their total, or (sum null) four planes to add */
struct TransportOthers {
    const real* SDTP_RESTRICT sum;
    const real* SDTP_RESTRICT p0;
    const real* SDTP_RESTRICT p1;
    const real* SDTP_RESTRICT p2;
    const real* SDTP_RESTRICT p3;
};

/* o_k = Σ_{j ≠ i} n_j at voxel k, added in cell order as others_total adds them */
SDTP_INLINE real transport_others(const TransportOthers& o, idx_t k)
{
    return o.sum ? o.sum[k] : ((o.p0[k] + o.p1[k]) + o.p2[k]) + o.p3[k];
}

/* room of a voxel: clamp(1 − (o + n)/capacity, 0, 1); NaN stays NaN, as np.clip */
SDTP_INLINE real transport_room(real o, real n, real capacity)
{
    const real f = (real)1 - (o + n) / capacity;
    return f < (real)0 ? (real)0 : (f > (real)1 ? (real)1 : f);
}

/* room stroma o leaves in a voxel whose tumour cells leave gap = K − T > 0:
 * clamp((gap − o)/gap, 0, 1); NaN stays NaN, as np.clip */
SDTP_INLINE real transport_room_of_gap(real gap, real o)
{
    const real f = (gap - o) / gap;
    return f < (real)0 ? (real)0 : (f > (real)1 ? (real)1 : f);
}

/* flux through the face between a (lower index, room fa) and b (room fb); the drift
 * needs q there */
SDTP_INLINE real transport_face_flux(real a, real b, real fa, real fb, bool drift,
                                     const real* q, idx_t ia, idx_t ib, real d, real chi,
                                     real dx)
{
    const real into_b = a * fb, into_a = b * fa;
    real f = d * (into_b - into_a) / dx;
    if (drift) {
        const real v = chi * (q[ib] - q[ia]) / dx;
        const real from_a = v * a * fb, from_b = v * b * fa;   /* both: a select, no branch */
        f = f + (v > (real)0 ? from_a : from_b);
    }
    return f;
}

/* n_new of voxel i at (z, y, x), any position: a missing face (domain boundary) carries no
 * flux, an axis of extent 1 none at all (the reference adds 0 for it) */
SDTP_INLINE real transport_voxel(const real* SDTP_RESTRICT src, const TransportOthers& o,
                                 const real* SDTP_RESTRICT q,
                                 idx_t i, idx_t z, idx_t y, idx_t x,
                                 idx_t nz, idx_t ny, idx_t nx,
                                 real d, real chi, real dx, real capacity, real h, idx_t clamp)
{
    const bool drift = q != 0;
    const real c = src[i];
    const real fc = transport_room(transport_others(o, i), c, capacity);
    const idx_t extent[3] = {nz, ny, nx};
    const idx_t coord[3] = {z, y, x};
    const idx_t stride[3] = {nx * ny, nx, 1};
    real t = (real)0;
    for (int axis = 0; axis < 3; ++axis) {
        if (extent[axis] == 1)
            continue;
        const idx_t s = stride[axis];
        real lo = (real)0, hi = (real)0;
        if (coord[axis] > 0)
            lo = transport_face_flux(src[i - s], c, transport_room(transport_others(o, i - s), src[i - s], capacity),
                                     fc, drift, q, i - s, i, d, chi, dx);
        if (coord[axis] < extent[axis] - 1)
            hi = transport_face_flux(c, src[i + s], fc, transport_room(transport_others(o, i + s), src[i + s], capacity),
                                     drift, q, i, i + s, d, chi, dx);
        t = t + (lo - hi) / dx;
    }
    const real out = c + h * t;
    return (clamp && out < (real)0) ? (real)0 : out;      /* NaN stays NaN, as xp.maximum */
}

/* The voxel loop. The GPU runs one thread per voxel (consecutive threads on consecutive x:
 * coalesced). The host gives each thread whole rows along x: in a row whose y (and z)
 * neighbours all exist, the voxels between its two ends are one branch-free loop the
 * compiler vectorises (transport_row_inner), the same operations in the same order as
 * transport_voxel; every other voxel goes through transport_voxel.
 * SDTP_TRANSPORT_PER_VOXEL makes the host take the GPU's loop, so that tests run it. */
#if defined(SDTP_GPU) || defined(SDTP_TRANSPORT_PER_VOXEL)
#define TRANSPORT_PER_VOXEL 1
#else
#define TRANSPORT_PER_VOXEL 0

/* voxels i0 <= i < i1, all of whose 2·ndim neighbours exist */
template <bool HAS_Z, bool DRIFT>
static inline void transport_row_inner(const real* SDTP_RESTRICT src,
                                       const TransportOthers o,
                                       const real* SDTP_RESTRICT q, real* SDTP_RESTRICT dst,
                                       idx_t i0, idx_t i1, idx_t sz, idx_t sy, real d,
                                       real chi, real dx, real capacity, real h, bool clamp)
{
    /* the summed others (transport_row checked there is one) as a local restrict pointer:
     * GCC vectorises the loop only when it knows it does not alias dst */
    const real* SDTP_RESTRICT sum = o.sum;
#define TRANSPORT_ROOM(k) transport_room(sum[k], src[k], capacity)
    for (idx_t i = i0; i < i1; ++i) {
        const real c = src[i];
        const real fc = TRANSPORT_ROOM(i);
        real t = (real)0;
        if (HAS_Z)
            t = t + (transport_face_flux(src[i - sz], c, TRANSPORT_ROOM(i - sz), fc, DRIFT, q,
                                         i - sz, i, d, chi, dx)
                     - transport_face_flux(c, src[i + sz], fc, TRANSPORT_ROOM(i + sz), DRIFT, q,
                                           i, i + sz, d, chi, dx))
                    / dx;
        t = t + (transport_face_flux(src[i - sy], c, TRANSPORT_ROOM(i - sy), fc, DRIFT, q,
                                     i - sy, i, d, chi, dx)
                 - transport_face_flux(c, src[i + sy], fc, TRANSPORT_ROOM(i + sy), DRIFT, q,
                                       i, i + sy, d, chi, dx))
                / dx;
        t = t + (transport_face_flux(src[i - 1], c, TRANSPORT_ROOM(i - 1), fc, DRIFT, q,
                                     i - 1, i, d, chi, dx)
                 - transport_face_flux(c, src[i + 1], fc, TRANSPORT_ROOM(i + 1), DRIFT, q,
                                       i, i + 1, d, chi, dx))
                / dx;
        const real out = c + h * t;
        dst[i] = (clamp && out < (real)0) ? (real)0 : out;
    }
#undef TRANSPORT_ROOM
}

static inline void transport_row(const real* SDTP_RESTRICT src, const TransportOthers& o,
                                 const real* SDTP_RESTRICT q,
                                 real* SDTP_RESTRICT dst, idx_t row, idx_t nz, idx_t ny,
                                 idx_t nx, real d, real chi, real dx, real capacity, real h,
                                 idx_t clamp)
{
    const idx_t z = row / ny, y = row - z * ny, i0 = row * nx;
    const bool inner_y = ny > 1 && y > 0 && y < ny - 1;
    const bool inner_z = nz == 1 || (z > 0 && z < nz - 1);
    if (!(inner_y && inner_z && nx >= 3) || !o.sum) {
        for (idx_t x = 0; x < nx; ++x)
            dst[i0 + x] = transport_voxel(src, o, q, i0 + x, z, y, x, nz, ny, nx, d, chi, dx,
                                          capacity, h, clamp);
        return;
    }
    const idx_t sz = nx * ny, i1 = i0 + nx - 1;
    const bool cl = clamp != 0;
    dst[i0] = transport_voxel(src, o, q, i0, z, y, 0, nz, ny, nx, d, chi, dx, capacity, h, clamp);
    if (nz > 1 && q)
        transport_row_inner<true, true>(src, o, q, dst, i0 + 1, i1, sz, nx, d, chi, dx, capacity,
                                        h, cl);
    else if (nz > 1)
        transport_row_inner<true, false>(src, o, q, dst, i0 + 1, i1, sz, nx, d, chi, dx,
                                         capacity, h, cl);
    else if (q)
        transport_row_inner<false, true>(src, o, q, dst, i0 + 1, i1, sz, nx, d, chi, dx,
                                         capacity, h, cl);
    else
        transport_row_inner<false, false>(src, o, q, dst, i0 + 1, i1, sz, nx, d, chi, dx,
                                          capacity, h, cl);
    dst[i1] = transport_voxel(src, o, q, i1, z, y, nx - 1, nz, ny, nx, d, chi, dx, capacity, h,
                              clamp);
}
#endif

SDTP_KERNEL_MIN_BLOCKS(6, 4) transport_substep(idx_t n, idx_t nz, idx_t ny, idx_t nx,
                                               const real* SDTP_RESTRICT src,
                                               const real* SDTP_RESTRICT o,
                                               const real* SDTP_RESTRICT o0,
                                               const real* SDTP_RESTRICT o1,
                                               const real* SDTP_RESTRICT o2,
                                               const real* SDTP_RESTRICT o3,
                                               const real* SDTP_RESTRICT q, real* SDTP_RESTRICT dst, real d,
                                               real chi, real dx, real capacity, real h, idx_t clamp)
{
    const TransportOthers others = {o, o0, o1, o2, o3};
#if TRANSPORT_PER_VOXEL
    FOR_EACH(i, n) {
        idx_t z, y, x;
        transport_coords(i, n, ny, nx, &z, &y, &x);
        dst[i] = transport_voxel(src, others, q, i, z, y, x, nz, ny, nx, d, chi, dx,
                                 capacity, h, clamp);
    }
#else
    FOR_EACH(row, n / nx)
        transport_row(src, others, q, dst, row, nz, ny, nx, d, chi, dx, capacity, h, clamp);
#endif
}

/* max(m, d), NaN once either is NaN (as xp.max) */
SDTP_INLINE real transport_max_nan(real m, real d)
{
    return (d > m || d != d) ? d : m;
}

#if !TRANSPORT_PER_VOXEL
/* |d| as the bits of an unsigned integer of its size: for |d| >= 0 the integers order as
 * the magnitudes do, and every NaN lies above +inf, so an integer max is a NaN-propagating
 * max of |d|, branch-free and vectorised (a floating-point select with a NaN test is not) */
template <int N> struct TransportBits;
template <> struct TransportBits<4> { typedef unsigned int type; };
template <> struct TransportBits<8> { typedef unsigned long long type; };
typedef TransportBits<sizeof(real)>::type transport_bits;

static inline transport_bits transport_abs_bits(real d)
{
    transport_bits b;
    __builtin_memcpy(&b, &d, sizeof b);
    return b & (~(transport_bits)0 >> 1);
}

/* max(m, bits of |b_k − a_k|) over k < len */
static inline transport_bits transport_span_max(const real* SDTP_RESTRICT a,
                                                const real* SDTP_RESTRICT b, idx_t len,
                                                transport_bits m)
{
    for (idx_t k = 0; k < len; ++k) {
        const transport_bits v = transport_abs_bits(b[k] - a[k]);
        m = v > m ? v : m;
    }
    return m;
}

/* max(m, bits of |q_j+1 − q_j|) over the faces from the voxels of row `row` to their +x,
 * +y and +z neighbours */
static inline transport_bits transport_row_max_jump(const real* SDTP_RESTRICT q, idx_t row,
                                                    idx_t nz, idx_t ny, idx_t nx,
                                                    transport_bits m)
{
    const idx_t z = row / ny, y = row - z * ny;
    const real* r = q + row * nx;
    m = transport_span_max(r, r + 1, nx - 1, m);
    if (y + 1 < ny)
        m = transport_span_max(r, r + nx, nx, m);
    if (z + 1 < nz)
        m = transport_span_max(r, r + nx * ny, nx, m);
    return m;
}
#endif

SDTP_KERNEL_MIN_BLOCKS(8, 6) transport_max_jump(idx_t chunks, idx_t n, idx_t nz, idx_t ny, idx_t nx,
                                                const real* SDTP_RESTRICT q, double* SDTP_RESTRICT partial)
{
    FOR_EACH_CHUNK(c, chunks) {
#if TRANSPORT_PER_VOXEL
        real m = (real)0;
        FOR_CHUNK_ITEMS(i, c, chunks, n) {
            idx_t z, y, x;
            transport_coords(i, n, ny, nx, &z, &y, &x);
            if (x + 1 < nx)
                m = transport_max_nan(m, fabs(q[i + 1] - q[i]));
            if (y + 1 < ny)
                m = transport_max_nan(m, fabs(q[i + nx] - q[i]));
            if (z + 1 < nz)
                m = transport_max_nan(m, fabs(q[i + nx * ny] - q[i]));
        }
#else
        transport_bits bits = 0;
        FOR_CHUNK_ITEMS(row, c, chunks, n / nx)
            bits = transport_row_max_jump(q, row, nz, ny, nx, bits);
        real m;
        __builtin_memcpy(&m, &bits, sizeof m);
#endif
        partial[c] = (double)m;            /* exact: a max rounds nothing */
    }
}

/* room, total and shares of one voxel for the pressure flux */
struct PressureVoxel {
    real t, room, w[3];
};

/* the stroma: F + M summed by the launcher (sum), or here from the two planes */
struct PressureStroma {
    const real* SDTP_RESTRICT sum;
    const real* SDTP_RESTRICT F;
    const real* SDTP_RESTRICT M;
};

SDTP_INLINE PressureVoxel pressure_voxel(const real* SDTP_RESTRICT S, const real* SDTP_RESTRICT P,
                                         const real* SDTP_RESTRICT R, const PressureStroma& o,
                                         idx_t k, real capacity)
{
    PressureVoxel v;
    v.t = (S[k] + P[k]) + R[k];
    const real gap = capacity - v.t;
    const real stroma = o.sum ? o.sum[k] : o.F[k] + o.M[k];
    v.room = gap > (real)0 ? transport_room_of_gap(gap, stroma) : (real)0;
    const bool any = v.t > (real)0;
    v.w[0] = any ? S[k] / v.t : (real)0;
    v.w[1] = any ? P[k] / v.t : (real)0;
    v.w[2] = any ? R[k] / v.t : (real)0;
    return v;
}

/* the three types' fluxes through the face from a (lower index) to b */
SDTP_INLINE void pressure_face(const PressureVoxel& a, const PressureVoxel& b, real c, real* j)
{
    const real phi = c * ((a.t - b.t) * (a.t + b.t));
    const bool up = phi > (real)0;
    const real into_b = phi * b.room, into_a = phi * a.room;
    for (int k = 0; k < 3; ++k)
        j[k] = up ? into_b * a.w[k] : into_a * b.w[k];
}

SDTP_KERNEL_MIN_BLOCKS(5, 3) transport_pressure_substep(idx_t n, idx_t nz, idx_t ny, idx_t nx,
                                                        const real* SDTP_RESTRICT S, const real* SDTP_RESTRICT P,
                                                        const real* SDTP_RESTRICT R, const real* SDTP_RESTRICT o,
                                                        const real* SDTP_RESTRICT F, const real* SDTP_RESTRICT M,
                                                        real* SDTP_RESTRICT dS, real* SDTP_RESTRICT dP,
                                                        real* SDTP_RESTRICT dR, real c, real dx, real capacity,
                                                        real h, idx_t clamp)
{
    const PressureStroma stroma = {o, F, M};
    FOR_EACH(i, n) {
        idx_t z, y, x;
        transport_coords(i, n, ny, nx, &z, &y, &x);
        const PressureVoxel self = pressure_voxel(S, P, R, stroma, i, capacity);
        const idx_t extent[3] = {nz, ny, nx};
        const idx_t coord[3] = {z, y, x};
        const idx_t stride[3] = {nx * ny, nx, 1};
        real t[3] = {(real)0, (real)0, (real)0};
        for (int axis = 0; axis < 3; ++axis) {
            if (extent[axis] == 1)
                continue;
            const idx_t s = stride[axis];
            real lo[3] = {(real)0, (real)0, (real)0}, hi[3] = {(real)0, (real)0, (real)0};
            if (coord[axis] > 0)
                pressure_face(pressure_voxel(S, P, R, stroma, i - s, capacity), self, c, lo);
            if (coord[axis] < extent[axis] - 1)
                pressure_face(self, pressure_voxel(S, P, R, stroma, i + s, capacity), c, hi);
            for (int k = 0; k < 3; ++k)
                t[k] = t[k] + (lo[k] - hi[k]) / dx;
        }
        const real* src[3] = {S, P, R};
        real* dst[3] = {dS, dP, dR};
        for (int k = 0; k < 3; ++k) {
            const real out = src[k][i] + h * t[k];
            dst[k][i] = (clamp && out < (real)0) ? (real)0 : out;   /* NaN stays NaN */
        }
    }
}

#ifdef TRANSPORT_NO_TRAP
#pragma GCC pop_options
#endif
