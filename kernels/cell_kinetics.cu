/* cell_kinetics.cu: one reaction sub-step of the five cell densities, substrates frozen.
 *
 * Reference: spatialdtp.numerics.cell_kinetics.react_state (model.treatment.drug_effects, then
 * cells.CellKinetics.environment/per_capita/switching, then reactions.integrate_cells).
 *
 * Drugs (per drug d: E_d = emax r/(1 + r), r = min(max(c_d, 0)/EC50, 1e30^(1/max(h,1)))^h):
 *     E, E_epi, B = combination of the targeted / epigenetic / met drugs
 *                   (Bliss 1 − Π(1 − E_d), a lone drug is E_d itself; HSA max E_d)
 *     κ_P = Σ_classes (Σ_d or max_d) kill_rate_d E_d     over oxphos, gpx4, fao drugs
 * Environment:
 *     g     = clamp((O − O_th)/(O_sat − O_th)) · G/(G + K_G)       (K_G = 0: factor 1)
 *     hyp   = clamp((O_hyp − O)/(O_hyp − O_hyp,full))
 *     δ_env = δ_nec clamp((O_on − O)/(O_on − O_max)) + δ_st clamp((G_st − G)/G_st)
 *                                                              (G_st = 0: no δ_st term)
 *     H     = h/(h + K_hgf) (1 − B),  recruit = (ψ0 + ψ q/(q + K_q)) v(x)
 * Rates (free = max(0, 1 − ΣN/capacity), π = g free if Norton–Simon kill else 1):
 *     r_S = r_S g free − k_S E π (1 − θ_S H) − d_S − δ_env
 *     r_P = r_P g free − k_P E π (1 − θH) − κ_P − d_P − δ_env
 *     r_R = r_S(1 − c_R) g free − k_R E π − d_R − δ_env
 *     r_F = r_F max(0, 1 − F/K_F) − d_F,   r_M = −d_M,   TAM source = recruit · free
 *     α = (α0 + α_E E (1 + β_H H)(1 + β_hyp hyp)) (1 − E_epi)      entry S → P
 *     ρ = ρ0 (1 − E)  reversion P → S,    μE  acquisition P → R
 * Time step τ, Strang composition (each flow exact or second order, positivity preserving):
 *     growth(τ/2) exchange(τ/2) acquisition(τ) exchange(τ/2) growth(τ/2), then max(N, 0)
 *     growth(h):   exponential midpoint, N ← N e^{r(N_half) h} (+ source h φ1(r_M h) for M),
 *                  N_half = N e^{r(N) h/2} (+ ...),  φ1(x) = (e^x − 1)/x
 *     exchange(h): moved = (αS − ρP) h φ1(−(α+ρ)h),  S −= moved, P += moved
 *     acquisition: lost = −P expm1(−μE τ),  P −= lost, R += lost
 *
 * Every expression keeps the reference's operation order (constants that the reference
 * combines in Python double, e.g. O_sat − O_th or r_S(1 − c_R), arrive pre-combined), so
 * float64 agrees to rounding and float32 to a few ulp (tests/test_kernels_cells.py). One
 * thread per voxel reads its four substrates, its drugs and its five densities once and
 * writes the densities once, in place (a voxel touches only its own values, so in place is
 * safe on the host's parallel loop).
 *
 * pv (CkParams, by value): the CK_* parameters below. A kernel parameter, so on the GPU it
 *             sits in the constant bank that every thread reads as an operand, instead of
 *             ~40 loads a voxel from global memory (nvcc 13.0: 78 instead of 107 registers
 *             for float32, 122 instead of 180 for float64). CK_CAPACITY is infinite
 *             without crowding (free = 1).
 * pd (real[]): per drug (EC50, h, emax, kill_rate, cap), in global memory (any number of
 *             drugs); EC50 arrives floored at 1e-30 (ec50 = 0: E = emax wherever c > 0).
 * q (idx_t[]): the CQ_* entries below (field planes and switches), then per drug
 *              (plane, class) with class codes CK_TARGETED..CK_FAO, drugs in config order.
 * The Python packing (spatialdtp/backends/compiled_cells.py) lists them in the same order.
 */
#include "sdtp.h"

enum CkParam {
    CK_O2_THRESHOLD, CK_O2_GROWTH_SPAN, CK_GLUCOSE_K, CK_O2_HYPOXIC, CK_O2_HYPOXIC_SPAN,
    CK_NECROSIS_RATE, CK_O2_NECROSIS_ONSET, CK_O2_NECROSIS_SPAN, CK_STARVATION_RATE,
    CK_GLUCOSE_STARVATION, CK_HGF_K, CK_RECRUITMENT, CK_CHEMOKINE_K, CK_CAPACITY,
    CK_GROWTH_S, CK_KILL_S, CK_DEATH_S, CK_GROWTH_P, CK_KILL_P, CK_DEATH_P,
    CK_GROWTH_R, CK_KILL_R, CK_DEATH_R, CK_GROWTH_F, CK_DEATH_F, CK_CARRYING_F, CK_DEATH_M,
    CK_ALPHA0, CK_ALPHA_DRUG, CK_BETA_HGF, CK_BETA_HYPOXIA, CK_RHO0, CK_MU, CK_THETA,
    CK_THETA_S, CK_BASELINE_RECRUITMENT,
    CK_N_PARAMS                      /* the length of CkParams; drugs: pd, CK_DRUG_STRIDE each */
};
enum { CK_DRUG_EC50, CK_DRUG_HILL, CK_DRUG_EMAX, CK_DRUG_KILL_RATE, CK_DRUG_CAP, CK_DRUG_STRIDE };

/* the CK_* parameters, passed by value (the launchers read the count here: a literal) */
struct CkParams { real v[36]; };
static_assert(sizeof(CkParams) == CK_N_PARAMS * sizeof(real), "CkParams holds the CK_* list");

enum CkIndex {
    CQ_OXYGEN, CQ_GLUCOSE, CQ_HGF, CQ_CHEMOKINE, CQ_S, CQ_P, CQ_R, CQ_F, CQ_M,
    CQ_N_DRUGS, CQ_GLUCOSE_LIMITED, CQ_STARVATION, CQ_NORTON_SIMON, CQ_HSA,
    CQ_N_INDEX                       /* per drug from here: (plane, class) */
};
enum { CK_TARGETED, CK_EPIGENETIC, CK_MET, CK_OXPHOS, CK_GPX4, CK_FAO };

/* NumPy's maximum/minimum propagate NaN; fmax/fmin would hide it from the run's checks */
SDTP_INLINE real ck_max(real a, real b) { return (a != a || a > b) ? a : b; }
SDTP_INLINE real ck_nonneg(real a) { return a < (real)0 ? (real)0 : a; }

SDTP_INLINE real ck_phi1(real x)
{
    return fabs(x) < (real)1e-6 ? (real)1 + (real)0.5 * x : expm1(x) / x;
}

struct CkEnv {
    real growth, hypoxia, env_death, kill, met_signal, epigenetic, p_kill, recruitment;
};

/* CellKinetics.per_capita: net per-capita rates r[0..4] and the TAM source */
SDTP_INLINE real ck_rates(const real* SDTP_RESTRICT p, int norton_simon, const CkEnv& e,
                          const real* c, real* r)
{
    real free = (real)1 - (c[0] + c[1] + c[2] + c[3] + c[4]) / p[CK_CAPACITY];
    free = (free < (real)0) ? (real)0 : free;
    const real prolif = e.growth * free;
    const real scale = norton_simon ? prolif : (real)1;
    const real E = e.kill;
    r[0] = p[CK_GROWTH_S] * prolif
           - p[CK_KILL_S] * E * scale * ((real)1 - p[CK_THETA_S] * e.met_signal)
           - p[CK_DEATH_S] - e.env_death;
    r[1] = p[CK_GROWTH_P] * prolif
           - p[CK_KILL_P] * E * scale * ((real)1 - p[CK_THETA] * e.met_signal)
           - e.p_kill - p[CK_DEATH_P] - e.env_death;
    r[2] = p[CK_GROWTH_R] * prolif - p[CK_KILL_R] * E * scale - p[CK_DEATH_R] - e.env_death;
    real room_f = (real)1 - c[3] / p[CK_CARRYING_F];
    room_f = (room_f < (real)0) ? (real)0 : room_f;
    r[3] = p[CK_GROWTH_F] * room_f - p[CK_DEATH_F];
    r[4] = -p[CK_DEATH_M];
    return e.recruitment * free;
}

/* e^{r_M h} and φ1(r_M h) of the two growth sub-steps: r_M = −d_M is the same in every
 * voxel, so they are evaluated once per launch (the same calls on the same arguments as
 * per voxel, hence the same values), a quarter of the kernel's exponentials */
struct CkTam { real exp_half, phi_half, exp_full, phi_full; };

SDTP_INLINE CkTam ck_tam(const real* SDTP_RESTRICT p, real h)
{
    const real hh = (real)0.5 * h, r = -p[CK_DEATH_M];
    CkTam t = {exp(r * hh), ck_phi1(r * hh), exp(r * h), ck_phi1(r * h)};
    return t;
}

/* reactions._growth: exponential midpoint over h, in place */
SDTP_INLINE void ck_growth(const real* SDTP_RESTRICT p, int norton_simon, const CkEnv& e,
                           const CkTam& tam, real* c, real h)
{
    real r[5], half[5];
    const real hh = (real)0.5 * h;
    real src = ck_rates(p, norton_simon, e, c, r);
    for (int k = 0; k < 4; ++k)
        half[k] = c[k] * exp(r[k] * hh);
    half[4] = c[4] * tam.exp_half + src * hh * tam.phi_half;
    src = ck_rates(p, norton_simon, e, half, r);
    for (int k = 0; k < 4; ++k)
        c[k] = c[k] * exp(r[k] * h);
    c[4] = c[4] * tam.exp_full + src * h * tam.phi_full;
}

/* reactions._exchange: S ⇄ P, exact */
SDTP_INLINE void ck_exchange(real* c, real alpha, real rho, real h)
{
    const real k = alpha + rho;
    const real moved = (alpha * c[0] - rho * c[1]) * h * ck_phi1(-k * h);
    c[0] = c[0] - moved;
    c[1] = c[1] + moved;
}

SDTP_INLINE real ck_hill(real c, const real* SDTP_RESTRICT d)
{
    real x = ck_max(c, (real)0) / d[CK_DRUG_EC50];
    x = (x > d[CK_DRUG_CAP]) ? d[CK_DRUG_CAP] : x;      /* NaN stays NaN, as np.minimum */
    /* x^h as NumPy's `x ** h` computes it: exact for h = 1, x·x and sqrt for 2 and 1/2
     * (its fast paths); pow, the kernel's costliest call, only for other Hill exponents */
    const real h = d[CK_DRUG_HILL];
    const real r = h == (real)1 ? x
                 : h == (real)2 ? x * x
                 : h == (real)0.5 ? sqrt(x) : pow(x, h);
    return d[CK_DRUG_EMAX] * r / ((real)1 + r);
}

/* one fraction class of drugs (targeted, epigenetic, met) as treatment._bliss/_hsa see it:
 * how many so far, the largest effect (a lone drug: itself), the Bliss survival Π(1 − E) */
struct CkClass { int count; real best; real survive; };

SDTP_INLINE void ck_add(CkClass& c, real e)
{
    c.best = c.count == 0 ? e : ck_max(c.best, e);
    c.survive = c.survive * ((real)1 - e);
    c.count += 1;
}

SDTP_INLINE real ck_combined(const CkClass& c, int hsa)
{
    if (c.count == 0)
        return (real)0;
    return (hsa || c.count == 1) ? c.best : (real)1 - c.survive;
}

SDTP_KERNEL_MIN_BLOCKS(3, 2) cell_kinetics(idx_t n, real* SDTP_RESTRICT data, const real* SDTP_RESTRICT vessels,
                                           const CkParams pv, const real* SDTP_RESTRICT pd,
                                           const idx_t* SDTP_RESTRICT q, real tau)
{
    const real* SDTP_RESTRICT p = pv.v;
    const CkTam tam = ck_tam(p, (real)0.5 * tau);
    FOR_EACH(i, n) {
        const real o2 = data[q[CQ_OXYGEN] * n + i];
        const real glc = data[q[CQ_GLUCOSE] * n + i];
        const real hgf = data[q[CQ_HGF] * n + i];
        const real chem = data[q[CQ_CHEMOKINE] * n + i];

        /* drug_effects. Named per-class accumulators, not arrays indexed by the class
         * code: a runtime index would put the arrays in local memory on the GPU */
        const int hsa = (int)q[CQ_HSA];
        CkClass targeted = {0, (real)0, (real)1}, epigenetic = {0, (real)0, (real)1},
                met = {0, (real)0, (real)1};
        real oxphos = (real)0, gpx4 = (real)0, fao = (real)0;
        const int n_drugs = (int)q[CQ_N_DRUGS];
        for (int k = 0; k < n_drugs; ++k) {
            const idx_t* dq = q + CQ_N_INDEX + 2 * k;
            const real* dp = pd + CK_DRUG_STRIDE * k;
            const real e = ck_hill(data[dq[0] * n + i], dp);
            const real h = dp[CK_DRUG_KILL_RATE] * e;
            switch ((int)dq[1]) {
            case CK_TARGETED: ck_add(targeted, e); break;
            case CK_EPIGENETIC: ck_add(epigenetic, e); break;
            case CK_MET: ck_add(met, e); break;
            case CK_OXPHOS: oxphos = hsa ? ck_max(oxphos, h) : oxphos + h; break;
            case CK_GPX4: gpx4 = hsa ? ck_max(gpx4, h) : gpx4 + h; break;
            default: fao = hsa ? ck_max(fao, h) : fao + h; break;
            }
        }

        /* CellKinetics.environment */
        CkEnv e;
        const real g_o2 = clamp01((o2 - p[CK_O2_THRESHOLD]) / p[CK_O2_GROWTH_SPAN]);
        const real g_glc = q[CQ_GLUCOSE_LIMITED] ? glc / (glc + p[CK_GLUCOSE_K]) : (real)1;
        e.growth = g_o2 * g_glc;
        e.hypoxia = clamp01((p[CK_O2_HYPOXIC] - o2) / p[CK_O2_HYPOXIC_SPAN]);
        const real necro = p[CK_NECROSIS_RATE]
            * clamp01((p[CK_O2_NECROSIS_ONSET] - o2) / p[CK_O2_NECROSIS_SPAN]);
        const real starve = q[CQ_STARVATION]
            ? p[CK_STARVATION_RATE]
              * clamp01((p[CK_GLUCOSE_STARVATION] - glc) / p[CK_GLUCOSE_STARVATION])
            : (real)0;
        e.env_death = necro + starve;
        e.kill = ck_combined(targeted, hsa);
        e.epigenetic = ck_combined(epigenetic, hsa);
        e.met_signal = hgf / (hgf + p[CK_HGF_K]) * ((real)1 - ck_combined(met, hsa));
        e.p_kill = oxphos + gpx4 + fao;
        e.recruitment = (p[CK_BASELINE_RECRUITMENT]
                         + p[CK_RECRUITMENT] * chem / (chem + p[CK_CHEMOKINE_K])) * vessels[i];

        /* CellKinetics.switching */
        const real E = e.kill;
        const real alpha = (p[CK_ALPHA0] + p[CK_ALPHA_DRUG] * E
                            * ((real)1 + p[CK_BETA_HGF] * e.met_signal)
                            * ((real)1 + p[CK_BETA_HYPOXIA] * e.hypoxia))
                           * ((real)1 - e.epigenetic);
        const real rho = p[CK_RHO0] * ((real)1 - E);
        const real acquire = p[CK_MU] * E;

        /* reactions.integrate_cells */
        const int ns = (int)q[CQ_NORTON_SIMON];
        real c[5];
        for (int k = 0; k < 5; ++k)
            c[k] = data[q[CQ_S + k] * n + i];
        const real half = (real)0.5 * tau;
        ck_growth(p, ns, e, tam, c, half);
        ck_exchange(c, alpha, rho, half);
        const real lost = -c[1] * expm1(-acquire * tau);
        c[1] = c[1] - lost;
        c[2] = c[2] + lost;
        ck_exchange(c, alpha, rho, half);
        ck_growth(p, ns, e, tam, c, half);
        for (int k = 0; k < 5; ++k)
            data[q[CQ_S + k] * n + i] = ck_nonneg(c[k]);
    }
}
