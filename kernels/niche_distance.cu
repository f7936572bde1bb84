/* niche_distance.cu: one axis of the squared voxel distance to the niche, a min-plus pass.
 *
 *     best(i) = min_{|s| <= top, 0 <= k(i) + s < n_axis}  d2(i + s·stride) + s²
 *
 * k(i) = (i / stride) mod n_axis is the voxel's coordinate along the axis (C order: stride
 * is the product of the later axes' lengths). Run once per axis on d2 = 0 on the niche
 * and "beyond" elsewhere, it gives the exact squared distance in voxel² units up to `top`
 * voxels (spatialdtp.run.niche.squared_voxel_distance). Every finite term is an integer,
 * so the minimum is the same in any order and the kernels do not depend on `real`:
 *
 *   niche_distance_pass     float32, "beyond" = inf: exact while the bound ndim·top² is
 *                           below 2^24 (the caller checks it);
 *   niche_distance_pass_u8  one unsigned byte, "beyond" = 255 and sums saturating there:
 *                           exact where the bound is below 255 (the niche labels' reach
 *                           on most grids), a quarter of float32's bytes; a voxel whose
 *                           distance is not below 255 reads 255, beyond every cut the
 *                           labels compare with.
 *
 * Reference: spatialdtp.numerics.distance.min_plus_pass (unit 1, both dtypes). One thread
 * per voxel reads the 2·top + 1 values of its line (neighbouring threads read neighbouring
 * addresses on every axis: coalesced) and writes one.
 */
#include "sdtp.h"

SDTP_INLINE float niche_plus(float d, idx_t s2) { return d + (float)s2; }

SDTP_INLINE unsigned char niche_plus(unsigned char d, idx_t s2)
{
    /* in 32 bits (s2 < 255 wherever a byte distance is used; larger saturates) */
    const unsigned v = (unsigned)d + (s2 < 255 ? (unsigned)s2 : 255u);
    return (unsigned char)(v < 255u ? v : 255u);
}

template <class T>
SDTP_INLINE void niche_pass(idx_t i, const T* SDTP_RESTRICT d2, T* SDTP_RESTRICT best,
                            idx_t n_axis, idx_t stride, idx_t top)
{
    const idx_t k = (i / stride) % n_axis;
    const idx_t down = k < top ? k : top;
    const idx_t up = n_axis - 1 - k < top ? n_axis - 1 - k : top;
    T m = d2[i];
    for (idx_t s = 1; s <= down; ++s) {
        const T v = niche_plus(d2[i - s * stride], s * s);
        m = v < m ? v : m;
    }
    for (idx_t s = 1; s <= up; ++s) {
        const T v = niche_plus(d2[i + s * stride], s * s);
        m = v < m ? v : m;
    }
    best[i] = m;
}

SDTP_KERNEL_MIN_BLOCKS(6, 6) niche_distance_pass(idx_t n, const float* SDTP_RESTRICT d2,
                                             float* SDTP_RESTRICT best, idx_t n_axis,
                                             idx_t stride, idx_t top)
{
    FOR_EACH(i, n) {
        niche_pass(i, d2, best, n_axis, stride, top);
    }
}

SDTP_KERNEL_MIN_BLOCKS(6, 6) niche_distance_pass_u8(idx_t n, const unsigned char* SDTP_RESTRICT d2,
                                                unsigned char* SDTP_RESTRICT best, idx_t n_axis,
                                                idx_t stride, idx_t top)
{
    FOR_EACH(i, n) {
        niche_pass(i, d2, best, n_axis, stride, top);
    }
}
