/* substrate_coefficients.cu: the coefficients of the implicit step of B substrates at once.
 *
 *     ∂c/∂t = ∇·(D(x)∇c) − a(x) c + b(x)
 *
 *     D(x) = D0 / (1 + h F(x)/capacity)                       desmoplastic hindrance (CAFs)
 *     a(x) = λ + v(x) p + φ Σ_j u_j n_j(x) · K/(K + max(c*, 0))   (K < 0: linear, factor 1)
 *     b(x) = v(x) p c_blood + φ Σ_j s_j n_j(x)
 *
 * Reference: spatialdtp.model.substrate_coefficients.Substrate.coefficients, substrate by
 * substrate. One thread per voxel reads the cell densities and the vessel map once for the
 * whole batch (every substrate's sums read the same planes: one pass instead of one per
 * substrate), then per substrate its linearisation point c* (Michaelis–Menten uptake only)
 * and writes its maps among D, a, b.
 *
 * p (real[B·SC_STRIDE]): per substrate [λ, p, c_blood, φ, K, D0, h, capacity, n_up, n_sec,
 *              (cell index, rate) × n_up, (cell index, rate) × n_sec, then at SC_FLAGS
 *              whether it is computed and whether its D, a, b are written (1/0)], the
 *              sums in the order the reference adds them, so that float rounding matches.
 *              A coefficient not written is uniform: the launcher's number stands for it.
 * reads (idx_t): bits 0–4 the cell planes S, P, R, F, M that some substrate reads, bit 5
 *              the vessel map (an unread plane is taken as 0 and never loaded).
 * c_lin, D, a, b (B, n): c* read only where K ≥ 0; D, a, b rows written where flagged.
 */
#include "sdtp.h"

#define SC_PAIRS 10                 /* uptake + secretion pairs: at most 5 cell types each */
#define SC_FLAGS (10 + 2 * SC_PAIRS)
enum { SC_ACTIVE, SC_WRITE_D, SC_WRITE_A, SC_WRITE_B, SC_N_FLAGS };
#define SC_STRIDE (SC_FLAGS + SC_N_FLAGS)

/* the density of cell type j (0..4) among the five loaded: a select, not an array indexed
 * at run time (which the GPU would keep in local memory) */
SDTP_INLINE real sc_cell(real n0, real n1, real n2, real n3, real n4, int j)
{
    return j == 0 ? n0 : j == 1 ? n1 : j == 2 ? n2 : j == 3 ? n3 : n4;
}

SDTP_KERNEL_MIN_BLOCKS(6, 4) substrate_coefficients(idx_t n, idx_t B, const real* SDTP_RESTRICT cells,
                                                    const real* SDTP_RESTRICT vessels, idx_t reads,
                                                    const real* SDTP_RESTRICT c_lin,
                                                    const real* SDTP_RESTRICT p,
                                                    real* SDTP_RESTRICT D, real* SDTP_RESTRICT a,
                                                    real* SDTP_RESTRICT b)
{
    FOR_EACH(i, n) {
        const real n0 = (reads & 1) ? cells[i] : (real)0;
        const real n1 = (reads & 2) ? cells[n + i] : (real)0;
        const real n2 = (reads & 4) ? cells[2 * n + i] : (real)0;
        const real n3 = (reads & 8) ? cells[3 * n + i] : (real)0;
        const real n4 = (reads & 16) ? cells[4 * n + i] : (real)0;
        const real vi = (reads & 32) ? vessels[i] : (real)0;
        for (idx_t s = 0; s < B; ++s) {
            const real* ps = p + s * SC_STRIDE;
            const real* flags = ps + SC_FLAGS;
            if (flags[SC_ACTIVE] == (real)0)
                continue;
            const real decay = ps[0], perm = ps[1], blood = ps[2], phi = ps[3], km = ps[4];
            const int n_up = (int)ps[8], n_sec = (int)ps[9];
            const idx_t at = s * n + i;
            const real exchange = perm * vi;
            real ai = decay + exchange;
            if (n_up > 0) {
                real up = (real)0;
                for (int k = 0; k < n_up; ++k)
                    up += ps[10 + 2 * k + 1] * sc_cell(n0, n1, n2, n3, n4, (int)ps[10 + 2 * k]);
                if (km >= (real)0) {
                    const real c = c_lin[at] > (real)0 ? c_lin[at] : (real)0;
                    up = up * (km / (km + c));
                }
                ai = ai + phi * up;
            }
            real bi = exchange * blood;
            if (n_sec > 0) {
                const real* sec = ps + 10 + 2 * n_up;
                real sum = (real)0;
                for (int k = 0; k < n_sec; ++k)
                    sum += sec[2 * k + 1] * sc_cell(n0, n1, n2, n3, n4, (int)sec[2 * k]);
                bi = bi + phi * sum;
            }
            if (flags[SC_WRITE_A] != (real)0)
                a[at] = ai;
            if (flags[SC_WRITE_B] != (real)0)
                b[at] = bi;
            if (flags[SC_WRITE_D] != (real)0)
                D[at] = ps[5] / ((real)1 + ps[6] * n3 / ps[7]);
        }
    }
}
