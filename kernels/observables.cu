/* observables.cu: every sum the per-step observables are made of, in one pass.
 *
 * Reference: spatialdtp.run.observables.Observer.sums_reference. With T = S + P + R (summed in
 * the field dtype, as the reference does, so that the tumour test below decides the same
 * voxels), tumour(x) = T >= floor and T > 0, near(x) the niche mask:
 *
 *     out[0..4]  = Σ S, Σ P, Σ R, Σ F, Σ M
 *     out[5]     = Σ O2                       out[6] = Σ T [O2 < hypoxic threshold]
 *     out[7]     = Σ HGF
 *     out[8]     = #(near ∧ tumour)           out[9]  = Σ P [near ∧ tumour]
 *     out[10]    = #(¬near ∧ tumour)          out[11] = Σ P [¬near ∧ tumour]
 *     out[12+d]  = Σ drug_d
 *
 * all accumulated in double. Each chunk writes its partial sums to
 * partial[k * chunks + c] (k-major: on the GPU consecutive chunks are consecutive
 * threads, so each store is coalesced); the launcher sums the chunks with xp.
 *
 * planes (idx_t[]): the field planes of `data` in the order S, P, R, F, M, oxygen, hgf,
 * then the n_drugs drugs. Every voxel's fields are read once (drug planes in their own
 * loop over the chunk, so that any number of drugs needs no fixed-size accumulator).
 */
#include "sdtp.h"

#define OBS_FIXED 12

SDTP_KERNEL observable_sums(idx_t chunks, idx_t n, const real* SDTP_RESTRICT data,
                            const idx_t* SDTP_RESTRICT planes, idx_t n_drugs,
                            const unsigned char* SDTP_RESTRICT near, real floor_cells,
                            real hypoxic, double* SDTP_RESTRICT partial)
{
    FOR_EACH_CHUNK(c, chunks) {
        const real* S = data + planes[0] * n;
        const real* P = data + planes[1] * n;
        const real* R = data + planes[2] * n;
        const real* F = data + planes[3] * n;
        const real* M = data + planes[4] * n;
        const real* O2 = data + planes[5] * n;
        const real* HGF = data + planes[6] * n;
        double acc[OBS_FIXED];
        for (int k = 0; k < OBS_FIXED; ++k)
            acc[k] = 0.0;
        FOR_CHUNK_ITEMS(i, c, chunks, n) {
            const real s = S[i], p = P[i], r = R[i], o2 = O2[i];
            const real t = s + p + r;
            acc[0] += (double)s;
            acc[1] += (double)p;
            acc[2] += (double)r;
            acc[3] += (double)F[i];
            acc[4] += (double)M[i];
            acc[5] += (double)o2;
            if (o2 < hypoxic)
                acc[6] += (double)t;
            acc[7] += (double)HGF[i];
            if (t >= floor_cells && t > (real)0) {
                if (near[i]) {                  /* constant indices keep acc in registers */
                    acc[8] += 1.0;
                    acc[9] += (double)p;
                } else {
                    acc[10] += 1.0;
                    acc[11] += (double)p;
                }
            }
        }
        for (int k = 0; k < OBS_FIXED; ++k)
            partial[k * chunks + c] = acc[k];
        for (idx_t d = 0; d < n_drugs; ++d) {
            const real* drug = data + planes[7 + d] * n;
            double sum = 0.0;
            FOR_CHUNK_ITEMS(i, c, chunks, n)
                sum += (double)drug[i];
            partial[(OBS_FIXED + d) * chunks + c] = sum;
        }
    }
}
