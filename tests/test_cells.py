"""Cell kinetics and their positive, second-order integration, checked by hand and scipy."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from spatialdtp.config import CellsConfig, DrugConfig
from spatialdtp.model.cells import CellKinetics, Environment
from spatialdtp.numerics.cell_kinetics import integrate_cells, phi1

CAP = 3.2


def env(E=0.6, growth=0.8, hyp=0.3, death=1e-4, H=0.5, epi=0.0, pk=2e-4, rec=1e-3):
    a = lambda v: np.array([v], dtype=float)  # noqa: E731
    return Environment(growth=a(growth), hypoxia=a(hyp), env_death=a(death), kill=a(E),
                       met_signal=a(H), epigenetic=a(epi), p_kill=a(pk), recruitment=a(rec))


def cfg_fast():
    """Rates raised so that a few days show every process (switching included)."""
    c = CellsConfig()
    c.sensitive.growth, c.sensitive.kill = 2e-3, 3e-3
    c.persister.growth, c.persister.kill = 2e-4, 5e-4
    c.switching.alpha0, c.switching.alpha_drug = 1e-4, 1e-3
    c.switching.rho0, c.switching.mu = 5e-4, 2e-4
    c.fibroblast.growth, c.fibroblast.death = 3e-4, 1e-4     # CAF turnover, off by default
    return c


def reference_rhs(c: CellsConfig, e: Environment, cap: float):
    """The model's ODEs typed in again from the README, not imported from the package."""
    g, hyp, dth, E, H, epi, pk, rec = (float(np.squeeze(v)) for v in (
        e.growth, e.hypoxia, e.env_death, e.kill, e.met_signal, e.epigenetic, e.p_kill,
        e.recruitment))
    sw = c.switching
    alpha = (sw.alpha0 + sw.alpha_drug * E * (1 + sw.beta_hgf * H) * (1 + sw.beta_hypoxia * hyp)) * (1 - epi)
    rho = sw.rho0 * (1 - E)

    def rhs(t, y):
        S, P, R, F, M = y
        free = max(0.0, 1 - (S + P + R + F + M) / cap)
        ns = g * free if c.kill_model == "norton_simon" else 1.0
        dS = (c.sensitive.growth * g * free * S
              - c.sensitive.kill * E * ns * (1 - sw.theta_sensitive * H) * S
              - c.sensitive.death * S - dth * S - alpha * S + rho * P)
        dP = (c.persister.growth * g * free * P - c.persister.kill * E * ns * (1 - sw.theta * H) * P
              - pk * P - c.persister.death * P - dth * P + alpha * S - rho * P - sw.mu * E * P)
        dR = (c.sensitive.growth * (1 - c.resistant.fitness_cost) * g * free * R
              - c.resistant.kill * E * ns * R - c.resistant.death * R - dth * R + sw.mu * E * P)
        K_F = c.fibroblast.carrying_density * cap
        dF = c.fibroblast.growth * max(0.0, 1 - F / K_F) * F - c.fibroblast.death * F
        dM = rec * free - c.macrophage.death * M
        return [dS, dP, dR, dF, dM]
    return rhs


def integrate(kin, y0, e, t_end, n):
    cells = [np.array([v], dtype=float) for v in y0]
    for _ in range(n):
        cells = integrate_cells(kin, cells, e, t_end / n)
    return np.array([float(c[0]) for c in cells])


@pytest.mark.parametrize("kill_model", ["constant", "norton_simon"])
def test_cell_kinetics_converge_at_second_order_to_scipy(kill_model):
    c = cfg_fast()
    c.kill_model = kill_model
    e = env()
    kin = CellKinetics(c, CAP, np.array([1.0]))
    y0 = [1.5, 0.05, 0.01, 0.4, 0.05]
    t_end = 3 * 1440.0
    ref = solve_ivp(reference_rhs(c, e, CAP), (0, t_end), y0, method="LSODA",
                    rtol=1e-11, atol=1e-14).y[:, -1]
    errors = [np.abs(integrate(kin, y0, e, t_end, n) - ref).max() for n in (48, 96, 192)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 1e-4 * max(ref)
    assert np.all(orders > 1.8), (errors, orders)


def test_rhs_method_matches_the_equations():
    c = cfg_fast()
    e = env()
    kin = CellKinetics(c, CAP, np.array([1.0]))
    y = [1.2, 0.1, 0.02, 0.3, 0.1]
    got = [float(v[0]) for v in kin.rhs([np.array([v]) for v in y], e)]
    np.testing.assert_allclose(got, reference_rhs(c, e, CAP)(0, y), rtol=1e-12)


def test_densities_stay_non_negative_under_huge_steps():
    c = cfg_fast()
    c.sensitive.kill = 1.0  # kills in a minute what a step of a day integrates
    c.switching.mu = 0.5
    kin = CellKinetics(c, CAP, np.ones(50))
    rng = np.random.default_rng(1)
    cells = [rng.uniform(0, 1, 50) for _ in range(5)]
    e = Environment(growth=rng.uniform(0, 1, 50), hypoxia=rng.uniform(0, 1, 50),
                    env_death=rng.uniform(0, 0.1, 50), kill=rng.uniform(0, 1, 50),
                    met_signal=rng.uniform(0, 1, 50), epigenetic=rng.uniform(0, 1, 50),
                    p_kill=rng.uniform(0, 0.1, 50), recruitment=rng.uniform(0, 1e-2, 50))
    for _ in range(10):
        cells = integrate_cells(kin, cells, e, 1440.0)
        assert all(np.all(n >= 0) and np.all(np.isfinite(n)) for n in cells)


def test_without_drug_persisters_relax_to_alpha_over_alpha_plus_rho():
    c = CellsConfig()
    c.sensitive.growth = c.persister.growth = 0.0
    c.sensitive.death = c.persister.death = 0.0
    c.switching.alpha0, c.switching.rho0 = 2e-4, 6e-4
    kin = CellKinetics(c, CAP, np.array([0.0]))
    e = env(E=0.0, growth=0.0, death=0.0, pk=0.0, rec=0.0)
    out = integrate(kin, [1.0, 0.0, 0.0, 0.0, 0.0], e, 30 * 1440.0, 30)
    assert out[1] / (out[0] + out[1]) == pytest.approx(0.25, rel=1e-6)
    assert out[0] + out[1] == pytest.approx(1.0, rel=1e-12)  # switching conserves cells


def test_environment_gates_by_hand():
    c = CellsConfig()
    c.switching.hgf_k = 20.0
    c.macrophage.baseline_recruitment, c.macrophage.recruitment = 2e-4, 1e-3
    kin = CellKinetics(c, CAP, np.array([1.0, 1.0, 1.0]))

    class NoDrug:
        kill = epigenetic = met_blockade = p_kill = 0.0

    subs = {"oxygen": np.array([2.0, 10.0, 82.5]), "glucose": np.array([5.0, 0.5, 0.01]),
            "hgf": np.array([20.0, 0.0, 60.0]), "chemokine": np.array([0.0, 1.0, 3.0])}
    e = kin.environment(subs, NoDrug())
    # growth: O2 ramp 5 → 160 mmHg times glucose Monod G/(G + 0.5)
    np.testing.assert_allclose(e.growth, [0.0, 5 / 155 * 0.5, 0.5 * 0.01 / 0.51])
    # hypoxia: 15 → 4 mmHg
    np.testing.assert_allclose(e.hypoxia, [1.0, 5 / 11, 0.0])
    # necrosis 5 → 2.5 mmHg at 1/360 per min, starvation below 0.05 mM
    np.testing.assert_allclose(e.env_death, [1 / 360, 0.0, (0.04 / 0.05) / 360])
    np.testing.assert_allclose(e.met_signal, [0.5, 0.0, 0.75])
    # TAM influx at vessel voxels: baseline ψ0 plus ψ q/(q + 1 nM)
    np.testing.assert_allclose(e.recruitment, [2e-4, 2e-4 + 1e-3 * 0.5, 2e-4 + 1e-3 * 0.75])


def test_norton_simon_spares_quiescent_cells():
    c = CellsConfig(kill_model="norton_simon")
    kin = CellKinetics(c, CAP, np.array([1.0]))
    quiescent = env(E=1.0, growth=0.0, death=0.0, pk=0.0)
    (rS, *_), _ = kin.per_capita([np.array([1.0])] + [np.array([0.0])] * 4, quiescent)
    assert float(rS[0]) == pytest.approx(-c.sensitive.death)


def test_met_signal_lowers_persister_kill_by_theta_H():
    c = CellsConfig()
    kin = CellKinetics(c, CAP, np.array([1.0]))
    zero = [np.array([0.0])] * 5
    (_, rP0, *_), _ = kin.per_capita(zero, env(E=1.0, H=0.0, pk=0.0, death=0.0, growth=0.0))
    (_, rP1, *_), _ = kin.per_capita(zero, env(E=1.0, H=1.0, pk=0.0, death=0.0, growth=0.0))
    kill0 = -(float(rP0[0]) + c.persister.death)
    kill1 = -(float(rP1[0]) + c.persister.death)
    assert kill1 == pytest.approx(kill0 * (1 - c.switching.theta))


def test_phi1_is_exact_near_zero():
    x = np.array([-1e-9, 0.0, 1e-9, 1e-3, -5.0])
    np.testing.assert_allclose(phi1(x, np), [1 - 5e-10, 1, 1 + 5e-10, np.expm1(1e-3) / 1e-3,
                                             np.expm1(-5) / -5],
                               rtol=1e-12)


# --------------------------------------------------------------------------- protection
def test_met_signal_lowers_sensitive_kill_by_theta_sensitive_H():
    """HGF rescue of EGFR-TKI-treated cells (Yano 2008): the drug kill of S falls by θ_S H."""
    c = CellsConfig()
    kin = CellKinetics(c, CAP, np.array([1.0]))
    zero = [np.array([0.0])] * 5
    (rS0, *_), _ = kin.per_capita(zero, env(E=1.0, H=0.0, pk=0.0, death=0.0, growth=0.0))
    (rS1, *_), _ = kin.per_capita(zero, env(E=1.0, H=0.6, pk=0.0, death=0.0, growth=0.0))
    kill0 = -(float(rS0[0]) + c.sensitive.death)
    kill1 = -(float(rS1[0]) + c.sensitive.death)
    assert kill0 == pytest.approx(c.sensitive.kill)
    assert kill1 == pytest.approx(kill0 * (1 - c.switching.theta_sensitive * 0.6))


def test_a_met_inhibitor_removes_the_protection():
    """With HGF far above K_hgf, a saturating MET inhibitor (E_met → 1) drives the MET
    signal H = h/(h + K)(1 − B) to 0, and with it the protection of S and P and the boost of
    drug-induced entry: the rates equal those without any HGF."""
    from spatialdtp.config import TreatmentConfig
    from spatialdtp.model.treatment import drug_effects

    c = CellsConfig()
    kin = CellKinetics(c, CAP, np.array([1.0]))
    treatment = TreatmentConfig(drugs={"tki": DrugConfig(drug_class="targeted", ec50=0.1),
                                       "met_i": DrugConfig(drug_class="met", ec50=1e-6)})
    subs = {"oxygen": np.array([30.0]), "glucose": np.array([5.0]),
            "chemokine": np.array([0.0])}
    cells = [np.array([1.0]), np.array([0.01]), np.array([0.0]), np.array([0.0]),
             np.array([0.0])]

    def rates(hgf, met):
        eff = drug_effects(treatment, {"tki": np.array([1.0]), "met_i": np.array([met])}, np)
        e = kin.environment({**subs, "hgf": np.array([hgf])}, eff)
        (rS, rP, *_), _ = kin.per_capita(cells, e)
        alpha, _, _ = kin.switching(e)
        return float(e.met_signal[0]), float(rS[0]), float(rP[0]), float(alpha[0])

    protected = rates(hgf=50.0, met=0.0)
    blocked = rates(hgf=50.0, met=1e3)            # E_met = 1 − 1e-9
    no_hgf = rates(hgf=0.0, met=0.0)
    assert protected[0] > 0.9 and blocked[0] < 1e-8
    assert protected[1] > no_hgf[1] and protected[2] > no_hgf[2]   # less kill with HGF
    np.testing.assert_allclose(blocked[1:], no_hgf[1:], rtol=1e-8)


# --------------------------------------------------------------------------- homeostasis
def test_cafs_are_quiescent_by_default_and_turn_over_to_their_carrying_density():
    """Defaults: r_F = d_F = 0, F stays exactly where it is, whatever the tumour does.
    With turnover dF/dt = r_F (1 − F/K_F) F − d_F F has the stable steady state
    F* = K_F (1 − d_F/r_F): here K_F = 0.5 · 3.2 = 1.6 cells/voxel, r_F = 4 d_F, so
    F* = 1.2, reached at the rate r_F − d_F from any F > 0 (here 1e-4/min: 60 days are
    86 relaxation times)."""
    e = env(E=0.9, growth=0.3, H=0.2, rec=0.0)
    quiet = CellKinetics(CellsConfig(), CAP, np.array([0.0]))
    for F0 in (0.3, 1.0, 2.0):
        out = integrate(quiet, [1.0, 0.01, 0.0, F0, 0.0], e, 30 * 1440.0, 30)
        assert out[3] == F0
    c = CellsConfig()
    c.fibroblast.growth, c.fibroblast.death = 4e-4 / 3 * 4, 4e-4 / 3
    kin = CellKinetics(c, CAP, np.array([0.0]))
    F_star = 0.5 * CAP * (1 - 1 / 4)
    for F0 in (0.2, 2.5):
        out = integrate(kin, [0.0, 0.0, 0.0, F0, 0.0], e, 60 * 1440.0, 240)
        assert out[3] == pytest.approx(F_star, rel=1e-6)


def test_tams_settle_where_vessel_recruitment_balances_their_death():
    """One vessel voxel without tumour: dM/dt = (ψ0 + ψ q/(q + K_q))(1 − M/cap) − d_M M,
    so M* = ψ/(d_M + ψ/cap) with ψ the total recruitment; the relaxation rate
    d_M + ψ/cap ≈ 2.5e-4/min makes 60 days ~ 21 time constants."""
    c = CellsConfig()
    m = c.macrophage
    kin = CellKinetics(c, CAP, np.array([1.0]))
    for q in (0.0, 0.5):
        psi = m.baseline_recruitment + m.recruitment * q / (q + m.chemokine_k)
        subs = {"oxygen": np.array([38.0]), "glucose": np.array([5.0]),
                "hgf": np.array([0.0]), "chemokine": np.array([q])}

        class NoDrug:
            kill = epigenetic = met_blockade = p_kill = 0.0
        e = kin.environment(subs, NoDrug())
        out = integrate(kin, [0.0, 0.0, 0.0, 0.0, 0.0], e, 60 * 1440.0, 240)
        assert out[4] == pytest.approx(psi / (m.death + psi / CAP), rel=1e-6)
