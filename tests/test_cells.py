"""Cell kinetics and their positive, second-order integration, checked by hand and scipy."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from spatialdtp.config import CellsConfig
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
