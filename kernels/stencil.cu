/* stencil.cu: the operator, residual and damped-Jacobi sweep of one multigrid level.
 *
 * On a level of the implicit diffusion solve the system is (mass + K) x = b with K in flux
 * form, summed over the faces f of voxel i (neighbour j, transmissibility T_f):
 *
 *     stencil_apply:   out_i =          mass_i x_i + Σ_f T_f (x_i − x_j)       (operator)
 *                      out_i = rhs_i − [mass_i x_i + Σ_f T_f (x_i − x_j)]      (residual)
 *     jacobi_sweep:    x'_i  = x_i + w_i (b_i − [mass_i x_i + Σ_f T_f (x_i − x_j)])
 *
 * A fixed face has no neighbour (x_j = 0: its boundary value is a source of the rhs); a
 * periodic axis couples its first and last cells through one wrap face; a no-flux face adds
 * nothing. References: spatialdtp.numerics.implicit.stencil.apply_stencil and jacobi_sweep. The terms are
 * added in the reference's order (mass, then per axis: the upper face, the lower face, the
 * boundary faces), each as the same product, so float64 results agree to the last bit
 * wherever the compiler does not contract a multiply-add.
 *
 * Layout (C order, x fastest): the level is padded to three axes (n0, n1, n2) (a 2D level
 * is (1, ny, nx), its axis 0 without faces). Axis k of a voxel i = (o n_k + c) s_k + r has
 * stride s_k = Π_{j>k} n_j, coordinate c, outer block o and offset r < s_k. Its interior
 * faces tin_k have n_k − 1 cells along k, so the face between c and c + 1 is i − o s_k;
 * its boundary faces tlo_k, thi_k have one cell along k: o s_k + r. A null tin_k (n_k = 1),
 * tlo_k or thi_k (no_flux) contributes nothing; periodic_k ≠ 0 makes tlo_k the wrap face.
 *
 * The sweep reads neighbours' old values, so it writes a separate array (the launcher
 * ping-pongs two buffers instead of copying back).
 *
 * restrict_sum / prolong_add: the multigrid transfers between a level (fine shape n0..n2)
 * and the next (axes with coarse_k ≠ 0 halved, an odd last cell kept single). Restriction
 * sums the children of each coarse cell in the order the reference adds them (parities in
 * itertools.product order, the last axis fastest); prolongation adds each coarse value to
 * its children. References: the transfers of ImplicitSolver._vcycle (lev.pairs).
 */
#include "sdtp.h"

/* one axis of the stencil as seen from one voxel */
struct StencilAxis {
    const real* tin;
    const real* tlo;
    const real* thi;
    idx_t n, stride;
    idx_t periodic;
};

SDTP_INLINE StencilAxis stencil_axis(const real* tin, const real* tlo, const real* thi,
                                     idx_t n, idx_t stride, idx_t periodic)
{
    StencilAxis a;
    a.tin = tin; a.tlo = tlo; a.thi = thi; a.n = n; a.stride = stride; a.periodic = periodic;
    return a;
}

/* acc + sign·Σ_f T_f (x_i − x_j) over the faces of axis a. sign = −1 (residual) flips each
 * term exactly, so the rounding is that of the reference's `out -= F` / `out += F`. */
SDTP_INLINE real add_axis(real acc, real sign, const real* SDTP_RESTRICT x, idx_t i, real xi,
                          idx_t c, idx_t o, idx_t r, const StencilAxis& a)
{
    if (a.tin) {
        const idx_t f = i - o * a.stride;          /* the face between c and c + 1 */
        if (c + 1 < a.n)
            acc -= sign * ((x[i + a.stride] - xi) * a.tin[f]);
        if (c > 0)
            acc += sign * ((xi - x[i - a.stride]) * a.tin[f - a.stride]);
    }
    const idx_t fb = o * a.stride + r;
    if (a.periodic) {
        const idx_t wrap = (a.n - 1) * a.stride;
        if (c == a.n - 1)
            acc -= sign * ((x[i - wrap] - xi) * a.tlo[fb]);
        if (c == 0)
            acc += sign * ((xi - x[i + wrap]) * a.tlo[fb]);
    } else {
        if (a.tlo && c == 0)
            acc += sign * (a.tlo[fb] * xi);
        if (a.thi && c == a.n - 1)
            acc += sign * (a.thi[fb] * xi);
    }
    return acc;
}

/* base + sign·(Σ over every axis) for voxel i = row·n2 + c2, row = c0·n1 + c1: base is
 * mass_i x_i, or rhs_i − mass_i x_i with sign −1 */
SDTP_INLINE real add_faces(real base, real sign, const real* SDTP_RESTRICT x, idx_t i,
                           idx_t c0, idx_t c1, idx_t c2, idx_t row, idx_t n2,
                           const StencilAxis& a0, const StencilAxis& a1, const StencilAxis& a2)
{
    const real xi = x[i];
    real acc = add_axis(base, sign, x, i, xi, c0, 0, c1 * n2 + c2, a0);
    acc = add_axis(acc, sign, x, i, xi, c1, c0, c2, a1);
    return add_axis(acc, sign, x, i, xi, c2, row, 0, a2);
}

/* the coordinates (c0, c1, c2) and row index of voxel i of an (n0, n1, n2) grid of n
 * voxels. In 32 bits where the grid fits: a 64-bit division is a long software routine
 * on the GPU, and these run once per voxel there. */
struct VoxelCoords { idx_t c0, c1, c2, row; };
SDTP_INLINE VoxelCoords voxel_coords(idx_t i, idx_t n, idx_t n1, idx_t n2)
{
    VoxelCoords v;
    if (n <= (idx_t)0xffffffffLL) {
        const unsigned int ii = (unsigned int)i, m1 = (unsigned int)n1, m2 = (unsigned int)n2;
        const unsigned int row = ii / m2, c0 = row / m1;
        v.row = row; v.c2 = ii - row * m2; v.c0 = c0; v.c1 = row - c0 * m1;
    } else {
        v.row = i / n2; v.c2 = i - v.row * n2; v.c0 = v.row / n1; v.c1 = v.row - v.c0 * n1;
    }
    return v;
}

/* The voxel loop. The GPU runs one thread per voxel (consecutive threads on consecutive x:
 * coalesced). The host gives each thread whole rows along x (stencil_row): a row whose
 * y/z neighbours all exist is one fused loop over its inner cells; any other row is
 * worked through in runs of STENCIL_RUN voxels, one term at a time over the whole run
 * (add_faces_run). Both add the same terms in the same order per voxel as add_faces, but
 * as loops the compiler vectorises, with the y/z branches decided once per row.
 * SDTP_STENCIL_PER_VOXEL makes the host take the GPU's loop, so that the tests run it. */
#if defined(SDTP_GPU) || defined(SDTP_STENCIL_PER_VOXEL)
#define STENCIL_PER_VOXEL 1
#else
#define STENCIL_PER_VOXEL 0
#define STENCIL_RUN 256

/* acc[j] += sign·Σ T (x_i − x_j) over the faces of axis a (not x) for the run of voxels
 * i0 + j, j < m, which share their coordinate c and outer block o along a; r0 is the
 * offset of i0 inside its block. The terms and their order are those of add_axis. */
static inline void add_axis_run(real* SDTP_RESTRICT acc, real sign, const real* SDTP_RESTRICT x,
                                idx_t i0, idx_t m, idx_t c, idx_t o, idx_t r0,
                                const StencilAxis& a)
{
    const real* SDTP_RESTRICT xi = x + i0;
    if (a.tin) {
        const real* SDTP_RESTRICT t = a.tin + (i0 - o * a.stride);
        if (c + 1 < a.n) {
            const real* SDTP_RESTRICT xj = xi + a.stride;
            for (idx_t j = 0; j < m; ++j)
                acc[j] -= sign * ((xj[j] - xi[j]) * t[j]);
        }
        if (c > 0) {
            const real* SDTP_RESTRICT xj = xi - a.stride;
            const real* SDTP_RESTRICT tl = t - a.stride;
            for (idx_t j = 0; j < m; ++j)
                acc[j] += sign * ((xi[j] - xj[j]) * tl[j]);
        }
    }
    const idx_t fb = o * a.stride + r0;
    if (a.periodic) {
        const idx_t wrap = (a.n - 1) * a.stride;
        const real* SDTP_RESTRICT t = a.tlo + fb;
        if (c == a.n - 1) {
            const real* SDTP_RESTRICT xj = xi - wrap;
            for (idx_t j = 0; j < m; ++j)
                acc[j] -= sign * ((xj[j] - xi[j]) * t[j]);
        }
        if (c == 0) {
            const real* SDTP_RESTRICT xj = xi + wrap;
            for (idx_t j = 0; j < m; ++j)
                acc[j] += sign * ((xi[j] - xj[j]) * t[j]);
        }
    } else {
        if (a.tlo && c == 0) {
            const real* SDTP_RESTRICT t = a.tlo + fb;
            for (idx_t j = 0; j < m; ++j)
                acc[j] += sign * (t[j] * xi[j]);
        }
        if (a.thi && c == a.n - 1) {
            const real* SDTP_RESTRICT t = a.thi + fb;
            for (idx_t j = 0; j < m; ++j)
                acc[j] += sign * (t[j] * xi[j]);
        }
    }
}

/* add_faces for the run of voxels row·n2 + c2, c2 in [j0, j0 + m) */
static inline void add_faces_run(real* SDTP_RESTRICT acc, real sign, const real* SDTP_RESTRICT x,
                                 idx_t j0, idx_t m, idx_t c0, idx_t c1, idx_t row, idx_t n2,
                                 const StencilAxis& a0, const StencilAxis& a1,
                                 const StencilAxis& a2)
{
    const idx_t i0 = row * n2 + j0;
    add_axis_run(acc, sign, x, i0, m, c0, 0, c1 * n2 + j0, a0);
    add_axis_run(acc, sign, x, i0, m, c1, c0, j0, a1);
    /* along x: the end cells by the per-voxel code, the cells between by whole-run loops */
    idx_t lo = 0, hi = m;
    if (j0 == 0) {
        acc[0] = add_axis(acc[0], sign, x, i0, x[i0], 0, row, 0, a2);
        lo = 1;
    }
    if (j0 + m == n2 && hi > lo) {
        acc[m - 1] = add_axis(acc[m - 1], sign, x, i0 + m - 1, x[i0 + m - 1], n2 - 1, row, 0, a2);
        hi = m - 1;
    }
    if (hi > lo) {            /* interior cells: both x faces exist (so tin2 does) */
        const real* SDTP_RESTRICT xi = x + i0;
        const real* SDTP_RESTRICT t = a2.tin + (i0 - row);
        for (idx_t j = lo; j < hi; ++j)
            acc[j] -= sign * ((xi[j + 1] - xi[j]) * t[j]);
        for (idx_t j = lo; j < hi; ++j)
            acc[j] += sign * ((xi[j] - xi[j - 1]) * t[j - 1]);
    }
}

/* what axis a adds to a row at coordinate c: nothing, exactly its two interior faces, or
 * something else (a boundary face) */
enum { AXIS_NONE, AXIS_INTERIOR, AXIS_OTHER };
static inline int axis_kind(const StencilAxis& a, idx_t c)
{
    if (a.tin && c > 0 && c + 1 < a.n)
        return AXIS_INTERIOR;
    if ((a.tin && a.n > 1) || a.periodic || (a.tlo && c == 0) || (a.thi && c == a.n - 1))
        return AXIS_OTHER;
    return AXIS_NONE;
}

/* voxels i0 < i < i1 of a row whose x, y (and z if HAS0) neighbours all exist: add_faces
 * as one loop. t0, t1, t2 are the interior faces, o1/o2 their offsets (face = i − o). */
template <bool HAS0, class Base, class Store>
static inline void interior_run(idx_t i0, idx_t i1, real sign, const real* SDTP_RESTRICT x,
                                const real* SDTP_RESTRICT t0, idx_t s0,
                                const real* SDTP_RESTRICT t1, idx_t s1, idx_t o1,
                                const real* SDTP_RESTRICT t2, idx_t o2, Base base, Store store)
{
    for (idx_t i = i0 + 1; i < i1; ++i) {
        const real xi = x[i];
        real acc = base(i);
        if (HAS0) {
            acc -= sign * ((x[i + s0] - xi) * t0[i]);
            acc += sign * ((xi - x[i - s0]) * t0[i - s0]);
        }
        acc -= sign * ((x[i + s1] - xi) * t1[i - o1]);
        acc += sign * ((xi - x[i - s1]) * t1[i - o1 - s1]);
        acc -= sign * ((x[i + 1] - xi) * t2[i - o2]);
        acc += sign * ((xi - x[i - 1]) * t2[i - o2 - 1]);
        store(i, acc);
    }
}

/* every voxel of row `row`: store(i, base(i) + sign·Σ_f T_f (x_i − x_j)) */
template <class Base, class Store>
static inline void stencil_row(idx_t row, idx_t n1, idx_t n2, real sign, const real* x,
                               const StencilAxis& a0, const StencilAxis& a1,
                               const StencilAxis& a2, Base base, Store store)
{
    const idx_t c0 = row / n1, c1 = row - c0 * n1, i0 = row * n2;
    const int k0 = axis_kind(a0, c0), k1 = axis_kind(a1, c1);
    if (n2 >= 3 && a2.tin && k1 == AXIS_INTERIOR && k0 != AXIS_OTHER) {
        store(i0, add_faces(base(i0), sign, x, i0, c0, c1, 0, row, n2, a0, a1, a2));
        if (k0 == AXIS_INTERIOR)
            interior_run<true>(i0, i0 + n2 - 1, sign, x, a0.tin, a0.stride, a1.tin, n2, c0 * n2,
                               a2.tin, row, base, store);
        else
            interior_run<false>(i0, i0 + n2 - 1, sign, x, a0.tin, a0.stride, a1.tin, n2,
                                c0 * n2, a2.tin, row, base, store);
        const idx_t i = i0 + n2 - 1;
        store(i, add_faces(base(i), sign, x, i, c0, c1, n2 - 1, row, n2, a0, a1, a2));
        return;
    }
    real acc[STENCIL_RUN];
    for (idx_t j0 = 0; j0 < n2; j0 += STENCIL_RUN) {
        const idx_t m = n2 - j0 < STENCIL_RUN ? n2 - j0 : STENCIL_RUN;
        for (idx_t j = 0; j < m; ++j)
            acc[j] = base(i0 + j0 + j);
        add_faces_run(acc, sign, x, j0, m, c0, c1, row, n2, a0, a1, a2);
        for (idx_t j = 0; j < m; ++j)
            store(i0 + j0 + j, acc[j]);
    }
}
#endif

SDTP_KERNEL_MIN_BLOCKS(8, 8) stencil_apply(idx_t n, idx_t n0, idx_t n1, idx_t n2,
                                           const real* SDTP_RESTRICT x, real* SDTP_RESTRICT out,
                                           const real* rhs, real rhs_value, idx_t residual,
                                           const real* mass, real mass_value,
                                           const real* tin0, const real* tlo0, const real* thi0, idx_t periodic0,
                                           const real* tin1, const real* tlo1, const real* thi1, idx_t periodic1,
                                           const real* tin2, const real* tlo2, const real* thi2, idx_t periodic2)
{
    const StencilAxis a0 = stencil_axis(tin0, tlo0, thi0, n0, n1 * n2, periodic0);
    const StencilAxis a1 = stencil_axis(tin1, tlo1, thi1, n1, n2, periodic1);
    const StencilAxis a2 = stencil_axis(tin2, tlo2, thi2, n2, 1, periodic2);
    const real sign = residual ? (real)-1 : (real)1;
#if STENCIL_PER_VOXEL
    FOR_EACH(i, n) {
        const VoxelCoords v = voxel_coords(i, n, n1, n2);
        real base = (mass ? mass[i] : mass_value) * x[i];
        if (residual)
            base = (rhs ? rhs[i] : rhs_value) - base;
        out[i] = add_faces(base, sign, x, i, v.c0, v.c1, v.c2, v.row, n2, a0, a1, a2);
    }
#else
    auto store = [out](idx_t i, real v) { out[i] = v; };
    /* the four forms of the base, so that each row loop is branch-free */
    if (!residual && mass) {
        FOR_EACH_ROW(row, n / n2, n2)
            stencil_row(row, n1, n2, sign, x, a0, a1, a2,
                        [x, mass](idx_t i) { return mass[i] * x[i]; }, store);
    } else if (!residual) {
        FOR_EACH_ROW(row, n / n2, n2)
            stencil_row(row, n1, n2, sign, x, a0, a1, a2,
                        [x, mass_value](idx_t i) { return mass_value * x[i]; }, store);
    } else if (mass && rhs) {
        FOR_EACH_ROW(row, n / n2, n2)
            stencil_row(row, n1, n2, sign, x, a0, a1, a2,
                        [x, mass, rhs](idx_t i) { return rhs[i] - mass[i] * x[i]; }, store);
    } else {
        FOR_EACH_ROW(row, n / n2, n2)
            stencil_row(row, n1, n2, sign, x, a0, a1, a2,
                        [x, mass, mass_value, rhs, rhs_value](idx_t i) {
                            return (rhs ? rhs[i] : rhs_value)
                                   - (mass ? mass[i] : mass_value) * x[i];
                        }, store);
    }
#endif
}

SDTP_KERNEL_MIN_BLOCKS(8, 6) jacobi_sweep(idx_t n, idx_t n0, idx_t n1, idx_t n2,
                                          const real* SDTP_RESTRICT x, real* SDTP_RESTRICT x_new,
                                          const real* SDTP_RESTRICT b, const real* SDTP_RESTRICT winv,
                                          const real* SDTP_RESTRICT mass,
                                          const real* tin0, const real* tlo0, const real* thi0, idx_t periodic0,
                                          const real* tin1, const real* tlo1, const real* thi1, idx_t periodic1,
                                          const real* tin2, const real* tlo2, const real* thi2, idx_t periodic2)
{
    const StencilAxis a0 = stencil_axis(tin0, tlo0, thi0, n0, n1 * n2, periodic0);
    const StencilAxis a1 = stencil_axis(tin1, tlo1, thi1, n1, n2, periodic1);
    const StencilAxis a2 = stencil_axis(tin2, tlo2, thi2, n2, 1, periodic2);
#if STENCIL_PER_VOXEL
    FOR_EACH(i, n) {
        const VoxelCoords v = voxel_coords(i, n, n1, n2);
        const real r = add_faces(b[i] - mass[i] * x[i], (real)-1, x, i, v.c0, v.c1, v.c2,
                                 v.row, n2, a0, a1, a2);
        x_new[i] = x[i] + r * winv[i];
    }
#else
    FOR_EACH_ROW(row, n / n2, n2)
        stencil_row(row, n1, n2, (real)-1, x, a0, a1, a2,
                    [x, b, mass](idx_t i) { return b[i] - mass[i] * x[i]; },
                    [x, x_new, winv](idx_t i, real r) { x_new[i] = x[i] + r * winv[i]; });
#endif
}

/* ------------------------------------------------------------------ transfers */

/* restrict_sum: coarse_I = Σ of the children of I, in the reference's order.
 * GPU: one thread per coarse cell (shape m0, m1, m2); host: one coarse row at a time. */
SDTP_KERNEL_MIN_BLOCKS(5, 5) restrict_sum(idx_t n, idx_t n0, idx_t n1, idx_t n2,
                                          idx_t coarse0, idx_t coarse1, idx_t coarse2,
                                          const real* SDTP_RESTRICT fine, real* SDTP_RESTRICT coarse)
{
    const idx_t m1 = coarse1 ? (n1 + 1) / 2 : n1, m2 = coarse2 ? (n2 + 1) / 2 : n2;
    const int s0 = coarse0 ? 2 : 1, s1 = coarse1 ? 2 : 1, s2 = coarse2 ? 2 : 1;
#if STENCIL_PER_VOXEL
    FOR_EACH(i, n) {
        const VoxelCoords C = voxel_coords(i, n, m1, m2);
        const idx_t f0 = s0 * C.c0, f1 = s1 * C.c1, f2 = s2 * C.c2;   /* the first child */
        real acc = fine[(f0 * n1 + f1) * n2 + f2];
        for (int d0 = 0; d0 < s0 && f0 + d0 < n0; ++d0)
            for (int d1 = 0; d1 < s1 && f1 + d1 < n1; ++d1)
                for (int d2 = 0; d2 < s2 && f2 + d2 < n2; ++d2)
                    if (d0 | d1 | d2)
                        acc += fine[((f0 + d0) * n1 + f1 + d1) * n2 + f2 + d2];
        coarse[i] = acc;
    }
#else
    FOR_EACH_ROW(row, n / m2, m2) {
        const idx_t C0 = row / m1, C1 = row - C0 * m1;
        const real* rows[4];                   /* the fine rows of the children, in order */
        int nr = 0;
        for (int d0 = 0; d0 < s0 && s0 * C0 + d0 < n0; ++d0)
            for (int d1 = 0; d1 < s1 && s1 * C1 + d1 < n1; ++d1)
                rows[nr++] = fine + ((s0 * C0 + d0) * n1 + s1 * C1 + d1) * n2;
        real* SDTP_RESTRICT out = coarse + row * m2;
        if (s2 == 1) {
            for (idx_t C2 = 0; C2 < m2; ++C2) out[C2] = rows[0][C2];
            for (int r = 1; r < nr; ++r)
                for (idx_t C2 = 0; C2 < m2; ++C2) out[C2] += rows[r][C2];
        } else {
            const idx_t pairs = n2 / 2;         /* an odd last cell has one child along x */
            for (int r = 0; r < nr; ++r) {
                const real* SDTP_RESTRICT f = rows[r];
                if (r == 0)
                    for (idx_t C2 = 0; C2 < pairs; ++C2) out[C2] = f[2 * C2] + f[2 * C2 + 1];
                else
                    for (idx_t C2 = 0; C2 < pairs; ++C2)
                        out[C2] = (out[C2] + f[2 * C2]) + f[2 * C2 + 1];
                if (pairs < m2)
                    out[pairs] = r == 0 ? f[2 * pairs] : out[pairs] + f[2 * pairs];
            }
        }
    }
#endif
}

/* prolong_add: fine_i += coarse value of its parent */
SDTP_KERNEL_MIN_BLOCKS(8, 8) prolong_add(idx_t n, idx_t n0, idx_t n1, idx_t n2,
                                         idx_t coarse0, idx_t coarse1, idx_t coarse2,
                                         const real* SDTP_RESTRICT coarse, real* SDTP_RESTRICT fine)
{
    (void)n0;
    const idx_t m1 = coarse1 ? (n1 + 1) / 2 : n1, m2 = coarse2 ? (n2 + 1) / 2 : n2;
#if STENCIL_PER_VOXEL
    FOR_EACH(i, n) {
        const VoxelCoords v = voxel_coords(i, n, n1, n2);
        const idx_t C0 = coarse0 ? v.c0 / 2 : v.c0, C1 = coarse1 ? v.c1 / 2 : v.c1;
        const idx_t C2 = coarse2 ? v.c2 / 2 : v.c2;
        fine[i] += coarse[(C0 * m1 + C1) * m2 + C2];
    }
#else
    FOR_EACH_ROW(row, n / n2, n2) {
        const idx_t c0 = row / n1, c1 = row - c0 * n1;
        const idx_t C0 = coarse0 ? c0 / 2 : c0, C1 = coarse1 ? c1 / 2 : c1;
        const real* SDTP_RESTRICT from = coarse + (C0 * m1 + C1) * m2;
        real* SDTP_RESTRICT to = fine + row * n2;
        if (coarse2)
            for (idx_t c2 = 0; c2 < n2; ++c2) to[c2] += from[c2 / 2];
        else
            for (idx_t c2 = 0; c2 < n2; ++c2) to[c2] += from[c2];
    }
#endif
}
