/* niche_distance.cu: one axis of the squared voxel distance to the niche, a min-plus pass.
 *
 *     best(i) = min_{|s| <= top, 0 <= k(i) + s < n_axis}  d2(i + s·stride) + s²
 *
 * k(i) = (i / stride) mod n_axis is the voxel's coordinate along the axis (C order: stride
 * is the product of the later axes' lengths). Run once per axis on d2 = 0 on the niche
 * and inf elsewhere, it gives the exact squared distance in voxel² units up to `top`
 * voxels (spatialdtp.run.niche.squared_voxel_distance). Every finite term is an integer
 * below 2^24 there (the caller checks the bound), so float32 is exact and the minimum is
 * the same in any order: the kernel is float whatever `real` is.
 *
 * Reference: spatialdtp.numerics.distance.min_plus_pass (unit 1). One thread per voxel
 * reads the 2·top + 1 values of its line (neighbouring threads read neighbouring
 * addresses on every axis: coalesced) and writes one.
 */
#include "sdtp.h"

SDTP_KERNEL_MIN_BLOCKS(6, 6) niche_distance_pass(idx_t n, const float* SDTP_RESTRICT d2,
                                             float* SDTP_RESTRICT best, idx_t n_axis,
                                             idx_t stride, idx_t top)
{
    FOR_EACH(i, n) {
        const idx_t k = (i / stride) % n_axis;
        const idx_t down = k < top ? k : top;
        const idx_t up = n_axis - 1 - k < top ? n_axis - 1 - k : top;
        float m = d2[i];
        for (idx_t s = 1; s <= down; ++s) {
            const float v = d2[i - s * stride] + (float)(s * s);
            m = v < m ? v : m;
        }
        for (idx_t s = 1; s <= up; ++s) {
            const float v = d2[i + s * stride] + (float)(s * s);
            m = v < m ? v : m;
        }
        best[i] = m;
    }
}
