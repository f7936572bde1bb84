/* observables.cu: every sum the per-step observables are made of, in one pass.
 *
 * Reference: spatialdtp.run.observables.Observer.sums_reference (and run.niche.label_sums).
 * With T = S + P + R (summed in the field dtype, as the reference does), lab the per-voxel
 * niche label (uint8: bits 0–6 a near/far stratum label, 127 none; bit 7 a niche voxel) and
 * T0 the tumour at treatment start:
 *
 *     out[0..4]          = Σ S, Σ P, Σ R, Σ F, Σ M
 *     out[5]             = Σ O2                 out[6] = Σ T [O2 < hypoxic threshold]
 *     out[7]             = Σ HGF                out[8] = #(niche voxels)
 *     out[9 + 3k + 0..2] = #(label k), Σ P [label k], Σ T0 [label k]    k < n_labels
 *     out[9 + 3 n_labels + d] = Σ field_d         d < n_plain: the drugs, then every
 *                                                 other field of the state (the run's
 *                                                 finiteness check reads every total)
 *
 * all accumulated in double. Each chunk writes its partial sums to
 * partial[j * chunks + c] (j-major: on the GPU consecutive chunks are consecutive
 * threads, so each store is coalesced); the launcher sums the chunks with xp.
 *
 * planes (idx_t[]): the field planes of `data` in the order S, P, R, F, M, oxygen, hgf,
 * then the n_plain planes summed alone (the drugs, then the state's other fields). Every
 * voxel's fields are read once (the plain planes in their own loop over the chunk, so
 * that any number of them needs no fixed-size accumulator). T0 is
 * read only for labelled voxels (it may be null when n_labels is 0).
 */
#include "sdtp.h"

#define OBS_FIXED 9
#define OBS_MAX_LABELS 32          /* 2 × MAX_STRATA of spatialdtp/run/niche.py */
#define OBS_NO_LABEL 127

SDTP_KERNEL_MIN_BLOCKS(6, 5) observable_sums(idx_t chunks, idx_t n, const real* SDTP_RESTRICT data,
                                             const idx_t* SDTP_RESTRICT planes, idx_t n_plain,
                                             const unsigned char* SDTP_RESTRICT labels,
                                             const real* SDTP_RESTRICT T0, idx_t n_labels,
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
        double lab_acc[3 * OBS_MAX_LABELS];
        for (int k = 0; k < OBS_FIXED; ++k)
            acc[k] = 0.0;
        for (int k = 0; k < 3 * OBS_MAX_LABELS; ++k)
            lab_acc[k] = 0.0;
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
            const int lab = (int)labels[i];
            acc[8] += (double)(lab >> 7);
            const int k = lab & OBS_NO_LABEL;
            if (k < (int)n_labels) {     /* a runtime index: lab_acc lives in local memory */
                lab_acc[3 * k] += 1.0;
                lab_acc[3 * k + 1] += (double)p;
                lab_acc[3 * k + 2] += (double)T0[i];
            }
        }
        for (int k = 0; k < OBS_FIXED; ++k)
            partial[k * chunks + c] = acc[k];
        for (idx_t k = 0; k < 3 * n_labels; ++k)
            partial[(OBS_FIXED + k) * chunks + c] = lab_acc[k];
        for (idx_t d = 0; d < n_plain; ++d) {
            const real* field = data + planes[7 + d] * n;
            double sum = 0.0;
            FOR_CHUNK_ITEMS(i, c, chunks, n)
                sum += (double)field[i];
            partial[(OBS_FIXED + 3 * n_labels + d) * chunks + c] = sum;
        }
    }
}
