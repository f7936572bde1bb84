/* niche_labels.cu: the niche voxels, and the per-voxel labels of the niche contrast.
 *
 * niche_mask:    niche_i = (F_i + M_i) >= threshold                      (1 / 0)
 * niche_labels:  lab_i = s_i          if s_i ≠ 255 and k_i <= near       (near, stratum s)
 *                        s_i + S      if s_i ≠ 255 and k_i >  far        (far)
 *                        127          otherwise                          (no label)
 *                then | 128 where niche_i                                (a niche voxel)
 *
 * s: the tumour bed's edge stratum of each voxel as a byte (255 outside the bed), S the
 * number of strata, k the squared voxel distance to the nearest niche voxel (integers:
 * float32 in niche_labels, a byte in niche_labels_u8, see niche_distance.cu; null where
 * there is no niche voxel, when every bed voxel is far), near and far its integer cuts (exact in `real`). Comparing integers, the labels are the
 * reference's in any precision.
 *
 * Reference: spatialdtp.numerics.niche_labels.niche_mask and label_voxels. One thread per
 * voxel: niche_mask reads F, M and writes a byte (no F + M array: 9 bytes a voxel for the
 * 17 of the sum and the comparison); niche_labels reads k, the niche byte and the stratum
 * byte and writes the label (7 bytes a voxel for the masks, wheres and casts of the array
 * expressions, about 35).
 */
#include "sdtp.h"

SDTP_KERNEL_MIN_BLOCKS(8, 8) niche_mask(idx_t n, const real* SDTP_RESTRICT F,
                                        const real* SDTP_RESTRICT M, real threshold,
                                        unsigned char* SDTP_RESTRICT niche)
{
    FOR_EACH(i, n) {
        niche[i] = (F[i] + M[i]) >= threshold ? 1 : 0;
    }
}

template <class T>
SDTP_INLINE unsigned char niche_label(idx_t i, const T* SDTP_RESTRICT k,
                                      const unsigned char* SDTP_RESTRICT niche,
                                      const unsigned char* SDTP_RESTRICT stratum,
                                      idx_t n_strata, real near_cut, real far_cut)
{
    const int s = stratum[i];
    int out = 127;
    if (s != 255) {
        if (!k)
            out = s + (int)n_strata;
        else if ((real)k[i] <= near_cut)
            out = s;
        else if ((real)k[i] > far_cut)
            out = s + (int)n_strata;
    }
    return (unsigned char)(niche[i] ? out | 128 : out);
}

SDTP_KERNEL_MIN_BLOCKS(8, 8) niche_labels(idx_t n, const float* SDTP_RESTRICT k,
                                          const unsigned char* SDTP_RESTRICT niche,
                                          const unsigned char* SDTP_RESTRICT stratum,
                                          idx_t n_strata, real near_cut, real far_cut,
                                          unsigned char* SDTP_RESTRICT label)
{
    FOR_EACH(i, n) {
        label[i] = niche_label(i, k, niche, stratum, n_strata, near_cut, far_cut);
    }
}

SDTP_KERNEL_MIN_BLOCKS(8, 8) niche_labels_u8(idx_t n, const unsigned char* SDTP_RESTRICT k,
                                             const unsigned char* SDTP_RESTRICT niche,
                                             const unsigned char* SDTP_RESTRICT stratum,
                                             idx_t n_strata, real near_cut, real far_cut,
                                             unsigned char* SDTP_RESTRICT label)
{
    FOR_EACH(i, n) {
        label[i] = niche_label(i, k, niche, stratum, n_strata, near_cut, far_cut);
    }
}
