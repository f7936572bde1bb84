/* substrate_coefficients.cu: the coefficients of one substrate's implicit step.
 *
 *     ∂c/∂t = ∇·(D(x)∇c) − a(x) c + b(x)
 *
 *     D(x) = D0 / (1 + h F(x)/capacity)                       desmoplastic hindrance (CAFs)
 *     a(x) = λ + v(x) p + φ Σ_j u_j n_j(x) · K/(K + max(c*, 0))   (K < 0: linear, factor 1)
 *     b(x) = v(x) p c_blood + φ Σ_j s_j n_j(x)
 *
 * Reference: spatialdtp.model.substrate_coefficients.Substrate.coefficients. One thread per voxel reads the
 * five cell densities, the vessel map and the linearisation point once and writes D, a, b.
 *
 * p (real[]): [λ, p, c_blood, φ, K, D0, h, capacity, n_up, n_sec,
 *              (cell index, rate) × n_up, (cell index, rate) × n_sec]
 * in the order the reference sums them, so that float rounding matches it.
 */
#include "sdtp.h"

SDTP_KERNEL_MIN_BLOCKS(8, 5) substrate_coefficients(idx_t n, const real* SDTP_RESTRICT cells,
                                                    const real* SDTP_RESTRICT vessels,
                                                    const real* SDTP_RESTRICT c_lin,
                                                    const real* SDTP_RESTRICT p,
                                                    real* SDTP_RESTRICT D, real* SDTP_RESTRICT a,
                                                    real* SDTP_RESTRICT b)
{
    FOR_EACH(i, n) {
        const real decay = p[0], perm = p[1], blood = p[2], phi = p[3], km = p[4];
        const int n_up = (int)p[8], n_sec = (int)p[9];
        const real exchange = perm * vessels[i];
        real ai = decay + exchange;
        if (n_up > 0) {
            real up = (real)0;
            for (int k = 0; k < n_up; ++k)
                up += p[10 + 2 * k + 1] * cells[(idx_t)p[10 + 2 * k] * n + i];
            if (km >= (real)0) {
                real c = c_lin[i] > (real)0 ? c_lin[i] : (real)0;
                up = up * (km / (km + c));
            }
            ai = ai + phi * up;
        }
        real bi = exchange * blood;
        if (n_sec > 0) {
            const real* sec = p + 10 + 2 * n_up;
            real s = (real)0;
            for (int k = 0; k < n_sec; ++k)
                s += sec[2 * k + 1] * cells[(idx_t)sec[2 * k] * n + i];
            bi = bi + phi * s;
        }
        a[i] = ai;
        b[i] = bi;
        if (D)
            D[i] = p[5] / ((real)1 + p[6] * cells[3 * n + i] / p[7]);
    }
}
