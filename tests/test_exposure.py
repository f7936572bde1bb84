"""Drugs that reach the tissue without vessels, what users mean by E = 1, a zero dose and
no crowding, and drug switches that reach the cells when they happen.

The linear S–P–R model (no crowding, no oxygen or glucose gate, no HGF) with a drug at its
plasma level is y' = A(E) y with E piecewise constant, so its exact solution is a product
of matrix exponentials, typed in here from the README's equations.
"""
import math

import numpy as np
import pytest
from scipy.linalg import expm

from spatialdtp.api import load_config
from spatialdtp.config import ConfigError
from spatialdtp.model.treatment import hill
from spatialdtp.run.simulation import Simulation

MIN_PER_DAY = 1440.0

#: the linear S–P–R model in a well-mixed tissue: free = 1, g = 1 (O2 ≈ 38 mmHg above a
#: 1-mmHg saturation, no glucose limit), no starvation, no CAFs, no TAMs (so no HGF)
LINEAR = ["tissue=well_mixed", "backend=numpy64", "cells.crowding=false",
          "cells.environment.glucose_k=0", "cells.environment.glucose_starvation=0",
          "cells.environment.o2_proliferation_threshold=0",
          "cells.environment.o2_proliferation_saturation=1",
          "cells.macrophage.baseline_recruitment=0", "cells.macrophage.recruitment=0",
          "cells.switching.alpha0=1e-4", "cells.switching.alpha_drug=1e-3",
          "cells.switching.rho0=5e-4", "cells.switching.mu=2e-4",
          "cells.sensitive.growth=2e-3", "cells.sensitive.kill=3e-3",
          "treatment=continuous", "treatment.lead_in_days=0",
          "treatment.drugs.drug.exposure=plasma",
          "treatment.drugs.drug.schedule.dose=0.5"]


def linear_matrix(cfg, E):
    """d(S, P, R)/dt = A(E)(S, P, R) of the README's cell model with g = free = 1, H = 0."""
    c, sw = cfg.cells, cfg.cells.switching
    alpha, rho = sw.alpha0 + sw.alpha_drug * E, sw.rho0 * (1.0 - E)
    return np.array([
        [c.sensitive.growth - c.sensitive.kill * E - c.sensitive.death - alpha, rho, 0.0],
        [alpha, c.persister.growth - c.persister.kill * E - c.persister.death - rho
         - sw.mu * E, 0.0],
        [0.0, sw.mu * E, c.sensitive.growth * (1 - c.resistant.fitness_cost)
         - c.resistant.kill * E - c.resistant.death]])


def linear_exact(cfg, y0, switches, t_end):
    """y(t_end) with the drug on from 0 and toggled at each of ``switches`` (minutes)."""
    d = cfg.treatment.drugs["drug"]
    E_on = d.emax * d.schedule.dose**d.hill / (d.schedule.dose**d.hill + d.ec50**d.hill)
    y, t, on = np.array(y0, dtype=float), 0.0, True
    for x in [s for s in switches if s < t_end] + [t_end]:
        y = expm(linear_matrix(cfg, E_on if on else 0.0) * (x - t)) @ y
        t, on = x, not on
    return y


def run_to(sim, t_end):
    while sim.t < t_end - 1e-9:
        sim.step(min(sim.cfg.run.dt, t_end - sim.t))
    return np.array([sim.field(n).item() for n in "SPR"])


# ------------------------------------------------------------------ switches (item 6)
@pytest.mark.parametrize("on_days,off_days,steps", [
    (0.9, 0.55, (50.0, 25.0, 12.5)),     # switches inside steps: the step is cut there
    (1.0, 0.5, (60.0, 30.0, 15.0)),      # switches on step ends: both halves see the new level
])
def test_kill_after_a_drug_holiday_is_second_order_in_dt(on_days, off_days, steps):
    """The cell integrator is second order (Strang); a switch seen half a step late adds
    an error E·k·Δt/2 per switch, first order. Second order halves the error four times
    per halving of Δt (first order: twice): asserted observed order > 1.7."""
    t_end = 3.0 * MIN_PER_DAY
    switches = []
    for k in range(3):
        w0 = k * (on_days + off_days) * MIN_PER_DAY
        switches += [w0 + on_days * MIN_PER_DAY, w0 + (on_days + off_days) * MIN_PER_DAY]
    errs = []
    for dt in steps:
        cfg = load_config(LINEAR + ["treatment.drugs.drug.schedule.kind=intermittent",
                                    f"treatment.drugs.drug.schedule.on_days={on_days}",
                                    f"treatment.drugs.drug.schedule.off_days={off_days}",
                                    f"run.dt={dt}"])
        sim = Simulation(cfg)
        y0 = [sim.field(n).item() for n in "SPR"]
        got = run_to(sim, t_end)
        ref = linear_exact(cfg, y0, switches, t_end)
        errs.append(float(np.max(np.abs(got - ref) / ref)))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders > 1.7), (errs, orders)


# ------------------------------------------------------------------ exposure (item 2)
def test_a_drug_at_plasma_or_uniform_penetration_needs_no_vessels():
    """A 2D section with no vessels at all; bolus PK (k_e) so the level moves. The field
    is penetration × plasma in every voxel at every step end, and the exposure map is the
    exact area: ∫ c_b dt = Σ_doses D (1 − e^{−k_e (T − t_k)})/k_e times penetration."""
    penetration, dose, T = 0.4, 2.0, 2.5 * MIN_PER_DAY
    cfg = load_config(["grid.shape=[12,12]", "backend=numpy64", "tissue.vessels.kind=none",
                       "treatment.lead_in_days=0",
                       "treatment=continuous", "treatment.drugs.drug.exposure=uniform",
                       f"treatment.drugs.drug.penetration={penetration}",
                       "treatment.drugs.drug.pk.model=bolus",
                       f"treatment.drugs.drug.schedule.dose={dose}", "run.dt=30"])
    sim = Simulation(cfg)
    assert float(sim.state.vessels.max()) == 0.0
    ke = cfg.treatment.drugs["drug"].pk.elimination
    while sim.t < T - 1e-9:
        obs = sim.step(min(30.0, T - sim.t))
        field = sim.field("drug")
        assert np.ptp(field) == 0.0
        assert field.flat[0] == pytest.approx(penetration * obs["plasma_drug"], rel=1e-12)
    doses = [k * MIN_PER_DAY for k in range(3)]
    area = sum(dose * -math.expm1(-ke * (T - t)) / ke for t in doses)
    assert sim.field("auc_drug").mean() == pytest.approx(penetration * area, rel=1e-9)


def test_unknown_exposure_and_negative_penetration_are_refused_by_name():
    for override, key in (("treatment.drugs.drug.exposure=skin", "exposure"),
                          ("treatment.drugs.drug.penetration=-1", "penetration")):
        with pytest.raises(ConfigError, match=f"treatment.drugs.drug.{key}"):
            Simulation(load_config(["treatment=continuous", override]))


# ------------------------------------------------------------------ what users mean (item 3)
def test_ec50_zero_gives_the_full_effect_wherever_the_drug_is_present():
    c = np.array([0.0, 1e-12, 1e-6, 1.0, 1e6])     # 1e-12 µM: E = 1 − 1e-18 = 1 exactly
    assert hill(c, 0.0, 1.0, 1.0).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert hill(c.astype(np.float32), 0.0, 2.0, 0.7, np).tolist()[1:] == \
        pytest.approx([0.7] * 4, rel=1e-7)


def test_full_effect_kills_at_the_full_kill_rate():
    """E = 1 (ec50 = 0): S, P, R follow expm(A(1) t) exactly (to the scheme's error)."""
    cfg = load_config(LINEAR + ["treatment.drugs.drug.ec50=0", "run.dt=5"])
    sim = Simulation(cfg)
    y0 = [sim.field(n).item() for n in "SPR"]
    got = run_to(sim, MIN_PER_DAY)
    ref = expm(linear_matrix(cfg, 1.0) * MIN_PER_DAY) @ y0
    # Strang, second order: at Δt = 5 min and rates ~3e-3/min the error is ~(kΔt)² ~ 1e-4
    np.testing.assert_allclose(got, ref, rtol=1e-3)


def test_a_zero_dose_is_no_drug():
    cfg = load_config(LINEAR + ["treatment.drugs.drug.schedule.dose=0", "run.dt=20"])
    sim = Simulation(cfg)
    y0 = [sim.field(n).item() for n in "SPR"]
    got = run_to(sim, MIN_PER_DAY)
    assert sim.field("drug").item() == 0.0 and sim.field("auc_drug").item() == 0.0
    np.testing.assert_allclose(got, expm(linear_matrix(cfg, 0.0) * MIN_PER_DAY) @ y0,
                               rtol=1e-3)


def test_without_crowding_growth_is_exponential_past_capacity():
    """cells.crowding=false: free = 1, so an untreated tumour grows as e^{(r_S − d_S) t}
    (α₀ = ρ₀ = 0 here) through and beyond the capacity."""
    cfg = load_config(LINEAR + ["treatment.drugs.drug.schedule.dose=0", "cells.switching.alpha0=0",
                                "cells.switching.rho0=0", "tissue.tumour.density=0.9",
                                "tissue.tumour.persister_fraction=0",
                                "tissue.tumour.resistant_fraction=0", "run.dt=20"])
    sim = Simulation(cfg)
    S0 = sim.field("S").item()
    S = run_to(sim, MIN_PER_DAY)[0]
    c = cfg.cells.sensitive
    assert S > sim.capacity
    assert S == pytest.approx(S0 * math.exp((c.growth - c.death) * MIN_PER_DAY), rel=1e-9)


def test_with_crowding_growth_stops_at_capacity():
    cfg = load_config(LINEAR + ["treatment.drugs.drug.schedule.dose=0", "cells.crowding=true",
                                "tissue.tumour.density=0.9", "run.dt=20"])
    sim = Simulation(cfg)
    total = run_to(sim, 3 * MIN_PER_DAY).sum()
    assert total <= sim.capacity
