/* batched_multigrid.cu: one level of the batched multigrid solve, every substrate at once.
 *
 * Reference: spatialdtp.numerics.implicit.batched_multigrid (its module docstring has the
 * equations). On a level every substrate s of the batch solves A_s x_s = b_s with
 *
 *     (A x)_i = mass_i x_i + Σ_f T_f (x_i − x_j)        (flux form, faces × θΔt/dx²)
 *
 * Level 0 (the tissue grid) builds mass and faces on the fly: mass = 1 + θΔt·a (a a map or
 * a number per substrate), an interior face ((D_i D_j)/(D_i + D_j))·2θΔt/dx² (a D map) or
 * one number D·θΔt/dx², a fixed face 2θΔt/dx²·D_i, the periodic wrap face like an interior
 * one. Coarser levels read mass and faces from arrays (bmg_coarsen writes them); a face
 * array a batch does not need is a null pointer, a face a substrate does not have is 0.
 *
 *   bmg_smooth          y = x + ω (b − A x)/d  (x null: y = ω b/d), optionally reducing
 *                       per (substrate, chunk) partials of max|r|/d, max|x|, non-finite
 *   bmg_residual_restrict   b_c[I] = Σ_children (b − A x)  (0 for a held child)
 *   bmg_prolong_smooth  x' = x + P e (P: separable linear interpolation, axes in order;
 *                       nothing added at a held voxel), then y = x' + ω (b − A x')/d
 *   bmg_residual_norms  partials of max|r|/d, max m/d (m: Σ|terms| of r), max|x|, non-
 *                       finite and Σ max(−x, 0); with clamp, x ← max(x, 0) first; the
 *                       active substrates only (a converged one is neither read nor
 *                       written, its partials are left as they are)
 *   bmg_step_rhs        rhs = c + s + w·(s + c − A c) (s = θΔt b + fixed sources; w = (1−θ)/θ,
 *                       0 for θ = 1) and the partials of the residual rhs − A c
 *   bmg_predict         x ← x + β (x − prev), prev ← x (pointwise)
 *   bmg_restart         x ← prev (pointwise, flagged substrates)
 *   bmg_coarsen         the next level's mass and faces (sums of the children in the
 *                       reference's pair-sum order; interior faces times the centre-distance
 *                       ratio before the sum, boundary faces after), level 0's held
 *                       voxels left out (below)
 *
 * Held voxels (fixed-value voxels, held by a penalty rate in a; the reference's module
 * docstring says why): held (unsigned char[B·N], level 0 only, null without any) marks them.
 * The coarse levels solve the error equation of the free voxels with the held ones as
 * zero-correction Dirichlet values: bmg_coarsen gives a free voxel its faces to held
 * neighbours as mass and a held voxel mass 1, and sums no face that touches a held voxel;
 * bmg_residual_restrict restricts 0 from a held voxel, bmg_prolong_smooth adds no
 * correction to one. With held null every kernel is what it was.
 *
 * Terms are added per voxel in the reference's order (base; per axis the upper face, the
 * lower face, the wrap face, the fixed low and high faces), each as the same product, so
 * float64 results agree with the NumPy twin to the last bit where the compiler does not
 * contract a multiply-add (the host build does not).
 *
 * Layout: a level is padded to three axes (n0, n1, n2), C order; a batch array is
 * (B, size) with size the per-substrate size (voxels, faces along k: N/n_k·(n_k − 1),
 * boundary plane: N/n_k). Items of a launch are (substrate, voxel) pairs, substrate major.
 * q (idx_t[B·BMG_QS]): per substrate the kinds of the six faces (BMG_NO_FLUX, BMG_FIXED,
 * BMG_PERIODIC; low and high of padded axes 0, 1, 2), then whether D, a, b are maps.
 * p (real[B·BMG_PS]): per substrate the uniform interior and fixed faces, the fixed faces'
 * value, and a and b when they are numbers. active (idx_t[B]): skip substrates with 0.
 */
#include "sdtp.h"

/* member functions of the small functors below (SDTP_INLINE is `static` on the host) */
#if defined(SDTP_GPU)
#define BMG_METHOD __device__ __forceinline__
#else
#define BMG_METHOD inline
#endif

/* the reductions' chunk loop; on the host parallel only for enough voxels (waking the
 * thread team costs more than a small level takes) */
#if defined(SDTP_GPU)
#define BMG_FOR_CHUNKS(cs, total, work) FOR_EACH(cs, total)
#else
#define BMG_FOR_CHUNKS(cs, total, work) \
    SDTP_PRAGMA(omp parallel for schedule(static, 1) if((idx_t)(work) >= SDTP_PARALLEL_MIN)) \
    for (idx_t cs = 0; cs < (idx_t)(total); ++cs)
#endif

enum { BMG_NO_FLUX = 0, BMG_FIXED = 1, BMG_PERIODIC = 2 };
enum { BMG_Q_KINDS = 0, BMG_Q_DMAP = 6, BMG_Q_AMAP = 7, BMG_Q_BMAP = 8, BMG_QS = 9 };
enum { BMG_P_TIN = 0, BMG_P_TFIXED = 1, BMG_P_VALUE = 2, BMG_P_A = 3, BMG_P_B = 4,
       BMG_PS = 5 };
enum { BMG_R, BMG_M, BMG_X, BMG_NONFINITE, BMG_CLAMPED, BMG_NORMS };

/* the operator of one level: level 0 from (a, D, p, q), coarser levels from arrays */
struct BmgOp {
    idx_t n[3], stride[3], N, fsize[3], psize[3];
    int level0;
    const real* a; const real* D; const real* p; const idx_t* q; real tdt, tmap;
    const real* mass; const real* tin[3]; const real* wrap[3]; const real* lo[3];
    const real* hi[3];
};

SDTP_INLINE BmgOp bmg_op(idx_t n0, idx_t n1, idx_t n2, idx_t level0, const real* a,
                         const real* D, const real* p, const idx_t* q, real tdt, real tmap,
                         const real* mass, const real* tin0, const real* tin1,
                         const real* tin2, const real* wrap0, const real* wrap1,
                         const real* wrap2, const real* lo0, const real* lo1, const real* lo2,
                         const real* hi0, const real* hi1, const real* hi2)
{
    BmgOp o;
    o.n[0] = n0; o.n[1] = n1; o.n[2] = n2;
    o.stride[0] = n1 * n2; o.stride[1] = n2; o.stride[2] = 1;
    o.N = n0 * n1 * n2;
    for (int k = 0; k < 3; ++k) {
        o.psize[k] = o.N / o.n[k];
        o.fsize[k] = o.psize[k] * (o.n[k] - 1);
    }
    o.level0 = (int)level0;
    o.a = a; o.D = D; o.p = p; o.q = q; o.tdt = tdt; o.tmap = tmap;
    o.mass = mass;
    o.tin[0] = tin0; o.tin[1] = tin1; o.tin[2] = tin2;
    o.wrap[0] = wrap0; o.wrap[1] = wrap1; o.wrap[2] = wrap2;
    o.lo[0] = lo0; o.lo[1] = lo1; o.lo[2] = lo2;
    o.hi[0] = hi0; o.hi[1] = hi1; o.hi[2] = hi2;
    return o;
}

/* coordinates of voxel i of the level, and per axis the outer block and plane index */
struct BmgAt { idx_t c[3], outer[3], plane[3]; };

SDTP_INLINE BmgAt bmg_at(const BmgOp& o, idx_t i)
{
    BmgAt v;
    const idx_t row = i / o.n[2];
    v.c[2] = i - row * o.n[2];
    v.c[0] = row / o.n[1];
    v.c[1] = row - v.c[0] * o.n[1];
    v.outer[0] = 0; v.outer[1] = v.c[0]; v.outer[2] = row;
    v.plane[0] = v.c[1] * o.n[2] + v.c[2];
    v.plane[1] = v.c[0] * o.n[2] + v.c[2];
    v.plane[2] = row;
    return v;
}

SDTP_INLINE real bmg_harmonic(real Da, real Db, real factor)
{
    const real prod = Da * Db;
    return (prod / (Da + Db)) * factor;
}

SDTP_INLINE int bmg_kind(const BmgOp& o, idx_t s, int k, int side)
{
    return (int)o.q[s * BMG_QS + BMG_Q_KINDS + 2 * k + side];
}

SDTP_INLINE real bmg_mass(const BmgOp& o, idx_t s, idx_t i)
{
    if (!o.level0)
        return o.mass[s * o.N + i];
    const real a = o.q[s * BMG_QS + BMG_Q_AMAP] ? o.a[s * o.N + i] : o.p[s * BMG_PS + BMG_P_A];
    const real m = a * o.tdt;
    return m + (real)1;
}

/* the interior face between voxel i and i + stride_k, face index f (coarse arrays) */
SDTP_INLINE real bmg_face(const BmgOp& o, idx_t s, int k, idx_t i, idx_t f)
{
    if (!o.level0)
        return o.tin[k][s * o.fsize[k] + f];
    if (o.q[s * BMG_QS + BMG_Q_DMAP])
        return bmg_harmonic(o.D[s * o.N + i], o.D[s * o.N + i + o.stride[k]], o.tmap);
    return o.p[s * BMG_PS + BMG_P_TIN];
}

/* boundary faces of axis k at voxel i (plane index fb): 1 and the value where present */
SDTP_INLINE int bmg_wrap(const BmgOp& o, idx_t s, int k, idx_t ilo, idx_t ihi, idx_t fb,
                         real* t)
{
    if (!o.level0) {
        if (!o.wrap[k]) return 0;
        *t = o.wrap[k][s * o.psize[k] + fb];
        return 1;
    }
    if (bmg_kind(o, s, k, 0) != BMG_PERIODIC) return 0;
    *t = o.q[s * BMG_QS + BMG_Q_DMAP]
        ? bmg_harmonic(o.D[s * o.N + ihi], o.D[s * o.N + ilo], o.tmap)
        : o.p[s * BMG_PS + BMG_P_TIN];
    return 1;
}

SDTP_INLINE int bmg_fixed(const BmgOp& o, idx_t s, int k, int side, idx_t i, idx_t fb, real* t)
{
    if (!o.level0) {
        const real* arr = side ? o.hi[k] : o.lo[k];
        if (!arr) return 0;
        *t = arr[s * o.psize[k] + fb];
        return 1;
    }
    if (bmg_kind(o, s, k, side) != BMG_FIXED) return 0;
    *t = o.q[s * BMG_QS + BMG_Q_DMAP] ? o.tmap * o.D[s * o.N + i]
                                      : o.p[s * BMG_PS + BMG_P_TFIXED];
    return 1;
}

/* The stencil at voxel i of substrate s with values X(j) (the iterate, possibly corrected
 * or clamped on the fly): out = base + sign·Σ faces (base = mass·x, or rhs − mass·x with
 * sign −1), the diagonal d and, if wanted, the magnitude m = |rhs| + |mass x| + Σ|face terms|. */
struct BmgRow { real out, d, mag; };

template <class XF>
SDTP_INLINE BmgRow bmg_row(const BmgOp& o, idx_t s, idx_t i, const BmgAt& v, XF X, int residual,
                           real rhs, int want_mag)
{
    const real xi = X(i);
    const real mi = bmg_mass(o, s, i);
    const real mx = mi * xi;
    BmgRow r;
    r.out = residual ? rhs - mx : mx;
    r.d = mi;
    r.mag = want_mag ? fabs(rhs) + fabs(mx) : (real)0;
    const real sign = residual ? (real)-1 : (real)1;
    /* unrolled, so that o's per-axis arrays are indexed by constants and stay in
     * registers: where nvcc kept the loop (a large X, as in bmg_prolong_smooth) it put
     * the whole BmgOp in local memory (328 B of stack) */
    SDTP_UNROLL
    for (int k = 0; k < 3; ++k) {
        const idx_t n = o.n[k], c = v.c[k], st = o.stride[k];
        if (n >= 2) {
            const idx_t f = i - v.outer[k] * st;
            if (c + 1 < n) {                      /* upper face: F = (x_j − x_i) T */
                const real t = bmg_face(o, s, k, i, f);
                const real F = (X(i + st) - xi) * t;
                r.out -= sign * F;
                r.d += t;
                if (want_mag) r.mag += fabs(F);
            }
            if (c > 0) {                          /* lower face: F = (x_i − x_j) T */
                const real t = bmg_face(o, s, k, i - st, f - st);
                const real F = (xi - X(i - st)) * t;
                r.out += sign * F;
                r.d += t;
                if (want_mag) r.mag += fabs(F);
            }
        }
        const idx_t fb = v.plane[k];
        const idx_t wrap = (n - 1) * st;
        real t;
        if ((c == n - 1 || c == 0) && bmg_wrap(o, s, k, i - c * st, i - c * st + wrap, fb, &t)) {
            if (c == n - 1) {                     /* F = (x_lo − x_hi) T, at the high cell */
                const real F = (X(i - wrap) - xi) * t;
                r.out -= sign * F;
                r.d += t;
                if (want_mag) r.mag += fabs(F);
            }
            if (c == 0) {                         /* at the low cell */
                const real F = (xi - X(i + wrap)) * t;
                r.out += sign * F;
                r.d += t;
                if (want_mag) r.mag += fabs(F);
            }
        }
        if (c == 0 && bmg_fixed(o, s, k, 0, i, fb, &t)) {
            const real F = t * xi;
            r.out += sign * F;
            r.d += t;
            if (want_mag) r.mag += fabs(F);
        }
        if (c == n - 1 && bmg_fixed(o, s, k, 1, i, fb, &t)) {
            const real F = t * xi;
            r.out += sign * F;
            r.d += t;
            if (want_mag) r.mag += fabs(F);
        }
    }
    return r;
}

SDTP_INLINE int bmg_finite(real v) { return v == v && v - v == v - v; }

/* per-chunk partials: max columns start at 0, the flag and the sum too */
SDTP_INLINE void bmg_partial_store(double* partial, idx_t s, idx_t c, idx_t chunks,
                                   const double* acc)
{
    for (int k = 0; k < BMG_NORMS; ++k)
        partial[(s * BMG_NORMS + k) * chunks + c] = acc[k];
}

struct BmgPlain {
    const real* x;
    BMG_METHOD real operator()(idx_t j) const { return x[j]; }
};

/* ------------------------------------------------------------------ the op arguments */
/* every level kernel takes the op's arguments, idx_t B, idx_t n0, idx_t n1, idx_t n2, idx_t level0,
        const real* a, const real* D, const real* p, const idx_t* q, real tdt, real tmap,
        const real* mass, const real* tin0, const real* tin1, const real* tin2,
        const real* wrap0, const real* wrap1, const real* wrap2,
        const real* lo0, const real* lo1, const real* lo2,
        const real* hi0, const real* hi1, const real* hi2 written out (the launchers
 * read the kernels' signatures from this text, so they are spelled out in each):
 *   idx_t B, idx_t n0, idx_t n1, idx_t n2, idx_t level0, a, D, p, q, tdt, tmap,
 *   mass, tin0..2, wrap0..2, lo0..2, hi0..2 */
#define BMG_OP_MAKE bmg_op(n0, n1, n2, level0, a, D, p, q, tdt, tmap, mass, tin0, tin1, tin2, \
                           wrap0, wrap1, wrap2, lo0, lo1, lo2, hi0, hi1, hi2)

/* ------------------------------------------------------------------ smoothing */
SDTP_KERNEL_MIN_BLOCKS(2, 2) bmg_smooth(idx_t chunks, idx_t B, idx_t n0, idx_t n1, idx_t n2, idx_t level0,
                         const real* a, const real* D, const real* p, const idx_t* q, real tdt, real tmap,
                         const real* mass, const real* tin0, const real* tin1, const real* tin2,
                         const real* wrap0, const real* wrap1, const real* wrap2,
                         const real* lo0, const real* lo1, const real* lo2,
                         const real* hi0, const real* hi1, const real* hi2, const real* x, const real* b, real* y,
                                        const idx_t* active, real omega, double* partial)
{
    const BmgOp o = BMG_OP_MAKE;
    (void)B;
    BMG_FOR_CHUNKS(cs, chunks * B, o.N * B) {
        const idx_t s = cs / chunks, c = cs - s * chunks;
        if (!active[s]) continue;
        double acc[BMG_NORMS] = {0, 0, 0, 0, 0};
        const BmgPlain X = {x ? x + s * o.N : (const real*)0};
        FOR_CHUNK_ITEMS(i, c, chunks, o.N) {
            const BmgAt v = bmg_at(o, i);
            const real bi = b[s * o.N + i];
            if (!x) {                          /* from zero: y = ω b/d */
                const BmgRow r = bmg_row(o, s, i, v, [](idx_t) { return (real)0; }, 0,
                                         (real)0, 0);
                y[s * o.N + i] = bi * (omega / r.d);
                continue;
            }
            const BmgRow r = bmg_row(o, s, i, v, X, 1, bi, 0);
            const real xi = X(i);
            y[s * o.N + i] = xi + r.out * (omega / r.d);
            if (partial) {
                if (!bmg_finite(r.out) || !bmg_finite(xi)) acc[BMG_NONFINITE] = 1;
                const double rs = (double)(fabs(r.out) / r.d), ax = (double)fabs(xi);
                if (rs > acc[BMG_R]) acc[BMG_R] = rs;
                if (ax > acc[BMG_X]) acc[BMG_X] = ax;
            }
        }
        if (partial) bmg_partial_store(partial, s, c, chunks, acc);
    }
}

/* ------------------------------------------------------------------ transfers */
/* the fine index of child d (0, 1) along axis k of coarse index I; -1 if it does not exist */
SDTP_INLINE idx_t bmg_child(idx_t I, int d, idx_t nf, idx_t coarsened)
{
    if (!coarsened) return d == 0 ? I : -1;
    const idx_t f = 2 * I + d;
    return f < nf ? f : -1;
}

SDTP_KERNEL_MIN_BLOCKS(2, 1) bmg_residual_restrict(idx_t n, idx_t B, idx_t n0, idx_t n1, idx_t n2, idx_t level0,
                         const real* a, const real* D, const real* p, const idx_t* q, real tdt, real tmap,
                         const real* mass, const real* tin0, const real* tin1, const real* tin2,
                         const real* wrap0, const real* wrap1, const real* wrap2,
                         const real* lo0, const real* lo1, const real* lo2,
                         const real* hi0, const real* hi1, const real* hi2, idx_t coarse0, idx_t coarse1,
                                                   idx_t coarse2, const real* x, const real* b, real* bc,
                                                   const idx_t* active, const unsigned char* held)
{
    const BmgOp o = BMG_OP_MAKE;
    const idx_t m1 = coarse1 ? (n1 + 1) / 2 : n1, m2 = coarse2 ? (n2 + 1) / 2 : n2;
    const idx_t m0 = coarse0 ? (n0 + 1) / 2 : n0, Nc = m0 * m1 * m2;
    const idx_t cf[3] = {coarse0, coarse1, coarse2};
    (void)B; (void)n;
    FOR_EACH(item, n) {
        const idx_t s = item / Nc, I = item - s * Nc;
        if (!active[s]) continue;
        const idx_t row = I / m2, I2 = I - row * m2, I0 = row / m1, I1 = row - I0 * m1;
        const BmgPlain X = {x + s * o.N};
        real acc = (real)0;
        int first = 1;
        /* children in itertools.product order over the coarsened axes (last fastest) */
        for (int d0 = 0; d0 < (cf[0] ? 2 : 1); ++d0) {
            const idx_t f0 = bmg_child(I0, d0, n0, cf[0]);
            if (f0 < 0) continue;
            for (int d1 = 0; d1 < (cf[1] ? 2 : 1); ++d1) {
                const idx_t f1 = bmg_child(I1, d1, n1, cf[1]);
                if (f1 < 0) continue;
                for (int d2 = 0; d2 < (cf[2] ? 2 : 1); ++d2) {
                    const idx_t f2 = bmg_child(I2, d2, n2, cf[2]);
                    if (f2 < 0) continue;
                    const idx_t i = (f0 * n1 + f1) * n2 + f2;
                    /* a held voxel's residual is not the coarse levels' to correct */
                    const real ri = held && held[s * o.N + i]
                        ? (real)0 : bmg_row(o, s, i, bmg_at(o, i), X, 1, b[s * o.N + i], 0).out;
                    acc = first ? ri : acc + ri;
                    first = 0;
                }
            }
        }
        bc[s * Nc + I] = acc;
    }
}

/* P e at fine voxel (i0, i1, i2): axis 0 interpolated first (innermost), as the reference
 * applies the coarsened axes in ascending order. ip: per axis (parent, other) pairs at
 * ip[off_k + 2 i], w: (w_parent, w_other) at w[off_k + 2 i]. */
struct BmgProlong {
    const real* e; idx_t m1, m2; const idx_t* ip; const real* w; idx_t off[3]; idx_t cf[3];

    BMG_METHOD real E(idx_t J0, idx_t J1, idx_t J2) const { return e[(J0 * m1 + J1) * m2 + J2]; }
    BMG_METHOD real f0(idx_t i0, idx_t J1, idx_t J2) const
    {
        if (!cf[0]) return E(i0, J1, J2);
        const idx_t k = off[0] + 2 * i0;
        return w[k] * E(ip[k], J1, J2) + w[k + 1] * E(ip[k + 1], J1, J2);
    }
    BMG_METHOD real f1(idx_t i0, idx_t i1, idx_t J2) const
    {
        if (!cf[1]) return f0(i0, i1, J2);
        const idx_t k = off[1] + 2 * i1;
        return w[k] * f0(i0, ip[k], J2) + w[k + 1] * f0(i0, ip[k + 1], J2);
    }
    BMG_METHOD real at(idx_t i0, idx_t i1, idx_t i2) const
    {
        if (!cf[2]) return f1(i0, i1, i2);
        const idx_t k = off[2] + 2 * i2;
        return w[k] * f1(i0, i1, ip[k]) + w[k + 1] * f1(i0, i1, ip[k + 1]);
    }
};

/* x + P e, nothing added at a held voxel (held: this substrate's marks, or null) */
struct BmgCorrected {
    const real* x; BmgProlong P; idx_t n1, n2; const unsigned char* held;
    BMG_METHOD real operator()(idx_t j) const
    {
        if (held && held[j]) return x[j];
        const idx_t row = j / n2, j2 = j - row * n2, j0 = row / n1, j1 = row - j0 * n1;
        return x[j] + P.at(j0, j1, j2);
    }
};

SDTP_KERNEL_MIN_BLOCKS(2, 2) bmg_prolong_smooth(idx_t n, idx_t B, idx_t n0, idx_t n1, idx_t n2, idx_t level0,
                         const real* a, const real* D, const real* p, const idx_t* q, real tdt, real tmap,
                         const real* mass, const real* tin0, const real* tin1, const real* tin2,
                         const real* wrap0, const real* wrap1, const real* wrap2,
                         const real* lo0, const real* lo1, const real* lo2,
                         const real* hi0, const real* hi1, const real* hi2, idx_t coarse0, idx_t coarse1,
                                                idx_t coarse2, const idx_t* ip, const real* w, const real* x,
                                                const real* e, const real* b, real* y, const idx_t* active,
                                                real omega, real* scratch, const unsigned char* held)
{
    const BmgOp o = BMG_OP_MAKE;
    const idx_t m0 = coarse0 ? (n0 + 1) / 2 : n0, m1 = coarse1 ? (n1 + 1) / 2 : n1;
    const idx_t m2 = coarse2 ? (n2 + 1) / 2 : n2, Nc = m0 * m1 * m2;
    (void)B;
    BmgProlong P;
    P.m1 = m1; P.m2 = m2; P.ip = ip; P.w = w;
    P.off[0] = 0; P.off[1] = 2 * n0; P.off[2] = 2 * (n0 + n1);
    P.cf[0] = coarse0; P.cf[1] = coarse1; P.cf[2] = coarse2;
#if defined(SDTP_GPU) || defined(BMG_ONE_PASS)
    /* one pass: every neighbour's corrected value recomputed (compute is cheap here);
     * BMG_ONE_PASS makes the host take this path, so that the tests run it */
    (void)scratch;
    FOR_EACH(item, n) {
        const idx_t s = item / o.N, i = item - s * o.N;
        if (!active[s]) continue;
        BmgCorrected X;
        X.x = x + s * o.N; X.n1 = n1; X.n2 = n2; X.P = P; X.P.e = e + s * Nc;
        X.held = held ? held + s * o.N : (const unsigned char*)0;
        const BmgRow r = bmg_row(o, s, i, bmg_at(o, i), X, 1, b[s * o.N + i], 0);
        y[s * o.N + i] = X(i) + r.out * (omega / r.d);
    }
#else
    /* the host computes x' = x + P e once per voxel into scratch, then sweeps it: the
     * same values as the GPU's pass, a fifth of its arithmetic */
    FOR_EACH(item, n) {
        const idx_t s = item / o.N, i = item - s * o.N;
        if (!active[s]) continue;
        BmgCorrected X;
        X.x = x + s * o.N; X.n1 = n1; X.n2 = n2; X.P = P; X.P.e = e + s * Nc;
        X.held = held ? held + s * o.N : (const unsigned char*)0;
        scratch[item] = X(i);
    }
    FOR_EACH(item, n) {
        const idx_t s = item / o.N, i = item - s * o.N;
        if (!active[s]) continue;
        const BmgPlain X = {scratch + s * o.N};
        const BmgRow r = bmg_row(o, s, i, bmg_at(o, i), X, 1, b[s * o.N + i], 0);
        y[s * o.N + i] = X(i) + r.out * (omega / r.d);
    }
#endif
}

/* ------------------------------------------------------------------ norms */
struct BmgClamped {
    const real* x;
    BMG_METHOD real operator()(idx_t j) const { return x[j] < (real)0 ? (real)0 : x[j]; }
};

SDTP_KERNEL_MIN_BLOCKS(2, 2) bmg_residual_norms(idx_t chunks, idx_t B, idx_t n0, idx_t n1, idx_t n2, idx_t level0,
                         const real* a, const real* D, const real* p, const idx_t* q, real tdt, real tmap,
                         const real* mass, const real* tin0, const real* tin1, const real* tin2,
                         const real* wrap0, const real* wrap1, const real* wrap2,
                         const real* lo0, const real* lo1, const real* lo2,
                         const real* hi0, const real* hi1, const real* hi2, real* x, const real* b,
                                                const idx_t* active, idx_t clamp, double* partial)
{
    const BmgOp o = BMG_OP_MAKE;
    (void)B;
    BMG_FOR_CHUNKS(cs, chunks * B, o.N * B) {
        const idx_t s = cs / chunks, c = cs - s * chunks;
        if (!active[s]) continue;
        double acc[BMG_NORMS] = {0, 0, 0, 0, 0};
        real* xs = x + s * o.N;
        const BmgPlain plain = {xs};
        const BmgClamped clamped = {xs};
        FOR_CHUNK_ITEMS(i, c, chunks, o.N) {
            const BmgAt v = bmg_at(o, i);
            const real bi = b[s * o.N + i];
            BmgRow r;
            real xi = xs[i];
            if (clamp) {
                /* neighbours are read through max(x, 0): the same value before and after
                 * their owner clears them, so the in-place clamp needs no second pass */
                r = bmg_row(o, s, i, v, clamped, 1, bi, 1);
                if (xi < (real)0) {
                    acc[BMG_CLAMPED] += -(double)xi;
                    xi = (real)0;
                    xs[i] = xi;
                }
            } else {
                r = bmg_row(o, s, i, v, plain, 1, bi, 1);
            }
            if (!bmg_finite(r.out) || !bmg_finite(xi)) acc[BMG_NONFINITE] = 1;
            const double rs = (double)(fabs(r.out) / r.d), ms = (double)(r.mag / r.d);
            const double ax = (double)fabs(xi);
            if (rs > acc[BMG_R]) acc[BMG_R] = rs;
            if (ms > acc[BMG_M]) acc[BMG_M] = ms;
            if (ax > acc[BMG_X]) acc[BMG_X] = ax;
        }
        bmg_partial_store(partial, s, c, chunks, acc);
    }
}

/* ------------------------------------------------------------------ the right-hand side */
SDTP_KERNEL_MIN_BLOCKS(2, 2) bmg_step_rhs(idx_t chunks, idx_t B, idx_t n0, idx_t n1, idx_t n2, idx_t level0,
                         const real* a, const real* D, const real* p, const idx_t* q, real tdt, real tmap,
                         const real* mass, const real* tin0, const real* tin1, const real* tin2,
                         const real* wrap0, const real* wrap1, const real* wrap2,
                         const real* lo0, const real* lo1, const real* lo2,
                         const real* hi0, const real* hi1, const real* hi2, const real* bmap, const real* cin,
                                          real* rhs, real w, double* partial)
{
    const BmgOp o = BMG_OP_MAKE;
    (void)B;
    BMG_FOR_CHUNKS(cs, chunks * B, o.N * B) {
        const idx_t s = cs / chunks, c = cs - s * chunks;
        double acc[BMG_NORMS] = {0, 0, 0, 0, 0};
        const BmgPlain C = {cin + s * o.N};
        FOR_CHUNK_ITEMS(i, c, chunks, o.N) {
            const BmgAt v = bmg_at(o, i);
            const real bi = o.q[s * BMG_QS + BMG_Q_BMAP] ? bmap[s * o.N + i]
                                                         : o.p[s * BMG_PS + BMG_P_B];
            real src = bi * o.tdt;
            const real g = o.p[s * BMG_PS + BMG_P_VALUE];
            for (int k = 0; k < 3; ++k) {
                const idx_t fb = v.plane[k];
                real t;
                if (g != (real)0 && v.c[k] == 0 && bmg_fixed(o, s, k, 0, i, fb, &t))
                    src += g * t;
                if (g != (real)0 && v.c[k] == o.n[k] - 1 && bmg_fixed(o, s, k, 1, i, fb, &t))
                    src += g * t;
            }
            const real ci = C(i);
            const BmgRow Ac = bmg_row(o, s, i, v, C, 0, (real)0, 0);
            real r_i = ci + src;
            if (w != (real)0) {
                real qv = src + ci;
                qv -= Ac.out;
                qv *= w;
                r_i += qv;
            }
            rhs[s * o.N + i] = r_i;
            /* the residual of x = c and its magnitude */
            const BmgRow r = bmg_row(o, s, i, v, C, 1, r_i, 1);
            const real res = r_i - Ac.out;
            if (!bmg_finite(res) || !bmg_finite(ci)) acc[BMG_NONFINITE] = 1;
            const double rs = (double)(fabs(res) / r.d), ms = (double)(r.mag / r.d);
            const double ax = (double)fabs(ci);
            if (rs > acc[BMG_R]) acc[BMG_R] = rs;
            if (ms > acc[BMG_M]) acc[BMG_M] = ms;
            if (ax > acc[BMG_X]) acc[BMG_X] = ax;
        }
        bmg_partial_store(partial, s, c, chunks, acc);
    }
}

/* ------------------------------------------------------------------ pointwise */
SDTP_KERNEL_MIN_BLOCKS(8, 8) bmg_predict(idx_t n, idx_t N, real* x, real* prev, real beta, const idx_t* active)
{
    FOR_EACH(item, n) {
        if (!active[item / N]) continue;
        const real old = x[item];
        if (beta != (real)0)
            x[item] = old + beta * (old - prev[item]);
        prev[item] = old;
    }
}

SDTP_KERNEL_MIN_BLOCKS(8, 8) bmg_restart(idx_t n, idx_t N, real* x, const real* prev, const idx_t* rows)
{
    FOR_EACH(item, n) {
        if (rows[item / N]) x[item] = prev[item];
    }
}

/* ------------------------------------------------------------------ coarsening */
/* Σ over the children of coarse (I0, I1, I2) of V(f0, f1, f2), in the reference's pair-sum
 * order: axis 0 innermost (pairs along 0 first, then along 1, then along 2); an axis in
 * `skip` (a face's own axis) or not coarsened takes the index I (already a fine index). */
template <class VF>
SDTP_INLINE real bmg_children(VF V, const idx_t* I, const idx_t* nf, const idx_t* cf, int skip)
{
    idx_t lim[3];
    for (int k = 0; k < 3; ++k) lim[k] = (cf[k] && k != skip) ? 2 : 1;
    real out2 = (real)0;
    for (int d2 = 0; d2 < lim[2]; ++d2) {
        const idx_t f2 = lim[2] == 2 ? 2 * I[2] + d2 : I[2];
        if (f2 >= nf[2]) break;
        real out1 = (real)0;
        for (int d1 = 0; d1 < lim[1]; ++d1) {
            const idx_t f1 = lim[1] == 2 ? 2 * I[1] + d1 : I[1];
            if (f1 >= nf[1]) break;
            real out0 = (real)0;
            for (int d0 = 0; d0 < lim[0]; ++d0) {
                const idx_t f0 = lim[0] == 2 ? 2 * I[0] + d0 : I[0];
                if (f0 >= nf[0]) break;
                const real v = V(f0, f1, f2);
                out0 = d0 ? out0 + v : v;
            }
            out1 = d1 ? out1 + out0 : out0;
        }
        out2 = d2 ? out2 + out1 : out1;
    }
    return out2;
}

/* the mass voxel i contributes to its coarse cell, held voxels taken out (the reference's
 * _free_operator): 1 at a held voxel; at a free one its mass plus its faces to held
 * neighbours, added in the stencil's order (per axis the upper face, the lower face, the
 * wrap face at the high cell, at the low cell) */
SDTP_INLINE real bmg_free_mass(const BmgOp& o, idx_t s, idx_t i, const unsigned char* held)
{
    const real m = bmg_mass(o, s, i);
    if (!held) return m;
    const unsigned char* h = held + s * o.N;
    if (h[i]) return (real)1;
    const BmgAt v = bmg_at(o, i);
    real out = m;
    SDTP_UNROLL
    for (int k = 0; k < 3; ++k) {
        const idx_t n = o.n[k], c = v.c[k], st = o.stride[k];
        const idx_t f = i - v.outer[k] * st;
        if (c + 1 < n && h[i + st]) out += bmg_face(o, s, k, i, f);
        if (c > 0 && h[i - st]) out += bmg_face(o, s, k, i - st, f - st);
        const idx_t ilo = i - c * st, ihi = ilo + (n - 1) * st;
        real t;
        if (c == n - 1 && h[ilo] && bmg_wrap(o, s, k, ilo, ihi, v.plane[k], &t)) out += t;
        if (c == 0 && h[ihi] && bmg_wrap(o, s, k, ilo, ihi, v.plane[k], &t)) out += t;
    }
    return out;
}

SDTP_KERNEL_MIN_BLOCKS(2, 1) bmg_coarsen(idx_t n, idx_t B, idx_t n0, idx_t n1, idx_t n2, idx_t level0,
                         const real* a, const real* D, const real* p, const idx_t* q, real tdt, real tmap,
                         const real* mass, const real* tin0, const real* tin1, const real* tin2,
                         const real* wrap0, const real* wrap1, const real* wrap2,
                         const real* lo0, const real* lo1, const real* lo2,
                         const real* hi0, const real* hi1, const real* hi2, idx_t coarse0, idx_t coarse1, idx_t coarse2,
                                         const real* ratio, const real* rfixed, real* cmass, real* ctin0,
                                         real* ctin1, real* ctin2, real* cwrap0, real* cwrap1, real* cwrap2,
                                         real* clo0, real* clo1, real* clo2, real* chi0, real* chi1,
                                         real* chi2, const unsigned char* held)
{
    const BmgOp o = BMG_OP_MAKE;
    const idx_t cf[3] = {coarse0, coarse1, coarse2};
    const idx_t nf[3] = {n0, n1, n2};
    idx_t m[3];
    for (int k = 0; k < 3; ++k) m[k] = cf[k] ? (nf[k] + 1) / 2 : nf[k];
    const idx_t Nc = m[0] * m[1] * m[2];
    real* ctin[3] = {ctin0, ctin1, ctin2};
    real* cwrap[3] = {cwrap0, cwrap1, cwrap2};
    real* clo[3] = {clo0, clo1, clo2};
    real* chi[3] = {chi0, chi1, chi2};
    /* ratio: per axis, at ratio[off + J], the interior-face ratio of coarse face J;
     * rfixed[3k + 0, 1, 2]: the low, high and wrap ratios of axis k (1 if not coarsened) */
    const idx_t roff[3] = {0, m[0], m[0] + m[1]};
    (void)B;
    FOR_EACH(item, n) {
        const idx_t s = item / Nc, Ic = item - s * Nc;
        idx_t I[3];
        I[2] = Ic % m[2];
        const idx_t row = Ic / m[2];
        I[1] = row % m[1];
        I[0] = row / m[1];
        const unsigned char* h = held ? held + s * o.N : (const unsigned char*)0;
        cmass[s * Nc + Ic] = bmg_children(
            [&](idx_t f0, idx_t f1, idx_t f2) {
                return bmg_free_mass(o, s, (f0 * n1 + f1) * n2 + f2, held);
            },
            I, nf, cf, -1);
        const idx_t cstride[3] = {m[1] * m[2], m[2], 1};
        const idx_t outer[3] = {0, I[0], I[0] * m[1] + I[1]};
        const idx_t cplane[3] = {I[1] * m[2] + I[2], I[0] * m[2] + I[2], I[0] * m[1] + I[1]};
        SDTP_UNROLL     /* constant k: the per-axis arrays stay in registers */
        for (int k = 0; k < 3; ++k) {
            const idx_t csize_k = Nc / m[k];
            /* interior face above coarse cell I along k */
            if (m[k] >= 2 && I[k] + 1 < m[k] && ctin[k]) {
                const idx_t fk = cf[k] ? 2 * I[k] + 1 : I[k];      /* the fine face index */
                const real rk = cf[k] ? ratio[roff[k] + I[k]] : (real)1;
                const idx_t J[3] = {k == 0 ? fk : I[0], k == 1 ? fk : I[1], k == 2 ? fk : I[2]};
                const real v = bmg_children([&](idx_t f0, idx_t f1, idx_t f2) {
                    const idx_t i = (f0 * n1 + f1) * n2 + f2;
                    if (h && (h[i] || h[i + o.stride[k]])) return (real)0;
                    const BmgAt at = bmg_at(o, i);
                    const real t = bmg_face(o, s, k, i, i - at.outer[k] * o.stride[k]);
                    return cf[k] ? t * rk : t;
                }, J, nf, cf, k);
                ctin[k][s * (csize_k * (m[k] - 1)) + Ic - outer[k] * cstride[k]] = v;
            }
            /* boundary faces of axis k: summed over the children in the plane, then times
             * the ratio */
            for (int side = 0; side < 2; ++side) {
                const idx_t edge = side ? m[k] - 1 : 0;
                if (I[k] != edge) continue;
                const idx_t fe = side ? nf[k] - 1 : 0;
                const idx_t J[3] = {k == 0 ? fe : I[0], k == 1 ? fe : I[1], k == 2 ? fe : I[2]};
                real* fixed_out = side ? chi[k] : clo[k];
                if (fixed_out) {
                    const real v = bmg_children([&](idx_t f0, idx_t f1, idx_t f2) {
                        const idx_t i = (f0 * n1 + f1) * n2 + f2;
                        const idx_t fb = bmg_at(o, i).plane[k];
                        real t = (real)0;
                        if (!(h && h[i])) bmg_fixed(o, s, k, side, i, fb, &t);
                        return t;
                    }, J, nf, cf, k);
                    fixed_out[s * csize_k + cplane[k]] = v * rfixed[3 * k + side];
                }
                if (side == 0 && cwrap[k]) {
                    const real v = bmg_children([&](idx_t f0, idx_t f1, idx_t f2) {
                        const idx_t i = (f0 * n1 + f1) * n2 + f2;
                        const idx_t fb = bmg_at(o, i).plane[k];
                        const idx_t wrap = (nf[k] - 1) * o.stride[k];
                        real t = (real)0;
                        if (!(h && (h[i] || h[i + wrap]))) bmg_wrap(o, s, k, i, i + wrap, fb, &t);
                        return t;
                    }, J, nf, cf, k);
                    cwrap[k][s * csize_k + cplane[k]] = v * rfixed[3 * k + 2];
                }
            }
        }
    }
}
