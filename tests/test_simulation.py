"""The whole simulator: well-mixed limit against scipy, positivity, resume, failures."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from spatialdtp.api import load_config
from spatialdtp.run.simulation import NonFiniteError, Simulation

SHAPE = (4, 5)


#: the initial values of the well-mixed checks
WELL_MIXED = {"vessels": 1.0, "S": 1.0, "P": 0.05, "R": 0.01, "F": 0.3, "M": 0.05,
              "oxygen": 30.0, "glucose": 4.0, "hgf": 5.0, "chemokine": 0.5, "drug": 0.0}


def well_mixed_config(tmp_path, scheme="backward_euler", picard=0, dt=10.0, extra=()):
    """Every voxel identical and every voxel a vessel: the PDEs reduce to ODEs."""
    vals = dict(WELL_MIXED)
    files = {}
    for name, v in vals.items():
        p = tmp_path / f"{name}.npy"
        np.save(p, np.full(SHAPE, v))
        files[name] = str(p)
    overrides = [f"grid.shape=[{SHAPE[0]},{SHAPE[1]}]", *model_overrides(scheme, picard, dt)]
    overrides += [f"+tissue.files.{k}={v}" for k, v in files.items()]
    return load_config(overrides + list(extra)), vals


def model_overrides(scheme="backward_euler", picard=0, dt=10.0):
    """The model of the well-mixed checks: fast enough that two days exercise every process."""
    return ["backend=numpy64",
            f"numerics.scheme={scheme}", f"numerics.picard_iterations={picard}",
            "numerics.rtol=1e-13", f"run.dt={dt}", "treatment=continuous",
            "treatment.lead_in_days=0", "treatment.drugs.drug.schedule.dose=0.5",
            # faster switching so two days exercise every process
            "cells.switching.alpha0=1e-4", "cells.switching.alpha_drug=1e-3",
            "cells.switching.rho0=5e-4", "cells.switching.mu=2e-4",
            "cells.sensitive.growth=2e-3", "cells.sensitive.kill=3e-3",
            # CAF turnover (off by default): F = 0.3 grows towards K_F = 0.64
            "cells.fibroblast.growth=4e-4", "cells.fibroblast.death=1e-4",
            "cells.fibroblast.carrying_density=0.2"]


def well_mixed_reference(cfg, vals, t_end, drug_at_plasma=False):
    """The model's ODEs for one voxel, typed in from the README's equations.

    ``drug_at_plasma``: the drug is not transported but at its plasma level throughout."""
    subs = dict(cfg.substrates)
    subs["drug"] = cfg.treatment.drugs["drug"].transport
    drug = cfg.treatment.drugs["drug"]
    c = cfg.cells
    phi = c.cell_volume / cfg.grid.dx**3
    cap = cfg.grid.dx**3 / c.cell_volume
    names = ["oxygen", "glucose", "hgf", "chemokine", "drug"]
    blood = {n: subs[n].blood for n in names}
    blood["drug"] = drug.schedule.dose  # constant exposure, on from day 0
    vals = dict(vals, drug=blood["drug"]) if drug_at_plasma else vals
    e, sw = c.environment, c.switching
    ramp = lambda x: min(1.0, max(0.0, x))  # noqa: E731

    def rhs(t, y):
        conc = dict(zip(names, y[:5]))
        S, P, R, F, M = y[5:]
        n = {"S": S, "P": P, "R": R, "F": F, "M": M}
        d = []
        for name in names:
            s, x = subs[name], conc[name]
            up = sum(u * n[j] for j, u in s.uptake.items())
            up = up * s.uptake_km / (s.uptake_km + x) if s.uptake_km else up
            sec = sum(q * n[j] for j, q in s.secretion.items())
            # binding to immobile sites (HGF): (1 + κ) dx/dt = ... − κ λ_b x
            kappa = s.binding.sites / s.binding.kd if s.binding is not None else 0.0
            lost_bound = kappa * s.binding.bound_decay * x if s.binding is not None else 0.0
            d.append((-s.decay * x - lost_bound + s.permeability * (blood[name] - x)
                      - phi * up * x + phi * sec) / (1 + kappa))
        if drug_at_plasma:
            d[-1] = 0.0
        O, G, hgf, q, dr = y[:5]
        E = drug.emax * dr**drug.hill / (dr**drug.hill + drug.ec50**drug.hill)
        g = ramp((O - e.o2_proliferation_threshold)
                 / (e.o2_proliferation_saturation - e.o2_proliferation_threshold)) * G / (G + e.glucose_k)
        hyp = ramp((e.o2_hypoxic - O) / (e.o2_hypoxic - e.o2_hypoxic_full))
        dth = (e.necrosis_rate * ramp((e.o2_necrosis_onset - O) / (e.o2_necrosis_onset - e.o2_necrosis_max))
               + e.starvation_rate * ramp((e.glucose_starvation - G) / e.glucose_starvation))
        H = hgf / (hgf + sw.hgf_k)
        free = max(0.0, 1 - (S + P + R + F + M) / cap)
        alpha = sw.alpha0 + sw.alpha_drug * E * (1 + sw.beta_hgf * H) * (1 + sw.beta_hypoxia * hyp)
        rho = sw.rho0 * (1 - E)
        dS = (c.sensitive.growth * g * free - c.sensitive.kill * E * (1 - sw.theta_sensitive * H)
              - c.sensitive.death - dth - alpha) * S + rho * P
        dP = ((c.persister.growth * g * free - c.persister.kill * E * (1 - sw.theta * H)
               - c.persister.death - dth - rho - sw.mu * E) * P + alpha * S)
        dR = (c.sensitive.growth * (1 - c.resistant.fitness_cost) * g * free - c.resistant.kill * E
              - c.resistant.death - dth) * R + sw.mu * E * P
        K_F = c.fibroblast.carrying_density * cap
        dF = (c.fibroblast.growth * max(0.0, 1 - F / K_F) - c.fibroblast.death) * F
        dM = ((c.macrophage.baseline_recruitment
               + c.macrophage.recruitment * q / (q + c.macrophage.chemokine_k)) * free
              - c.macrophage.death * M)
        return d + [dS, dP, dR, dF, dM]

    y0 = [vals[k] for k in names] + [vals[k] for k in "SPRFM"]
    sol = solve_ivp(rhs, (0, t_end), y0, method="Radau", rtol=1e-11, atol=1e-13)
    return dict(zip(names + list("SPRFM"), sol.y[:, -1]))


def run_well_mixed(tmp_path, t_end, **kw):
    cfg, vals = well_mixed_config(tmp_path, **kw)
    sim = Simulation(cfg)
    while sim.t < t_end - 1e-9:
        sim.step()
    out = {name: sim.field(name) for name in sim.layout.names}
    for name in ("oxygen", "S", "P"):  # still well mixed: no voxel differs
        assert np.ptp(out[name]) <= 1e-9 * max(1.0, np.abs(out[name]).max())
    return {k: float(v.mean()) for k, v in out.items()}, vals, cfg


@pytest.mark.parametrize("scheme,picard,order,steps,days,tol", [
    ("backward_euler", 0, 1, (20.0, 10.0, 5.0), 2.0, 5e-3),
    # TR-BDF2 reaches its second order once Δt resolves the cell kinetics; the stiff,
    # quasi-steady oxygen (relaxation ~0.1 min) shows the usual order reduction, at errors
    # 1e-5 relative, below what limits the cells.
    ("tr_bdf2", 1, 2, (5.0, 2.5, 1.25), 1.0, 2e-4),
])
def test_well_mixed_limit_matches_solve_ivp_at_the_claimed_order(tmp_path, scheme, picard, order,
                                                                  steps, days, tol):
    t_end = days * 1440.0
    errs = []
    for dt in steps:
        got, vals, cfg = run_well_mixed(tmp_path, t_end, scheme=scheme, picard=picard, dt=dt)
        ref = well_mixed_reference(cfg, vals, t_end)
        errs.append(max(abs(got[k] - ref[k]) / max(abs(ref[k]), 1e-3) for k in ref))
    observed = np.log2(errs[-2] / errs[-1])
    assert errs[-1] < tol, errs
    assert observed > order - 0.3, (errs, observed)


def test_drug_exposure_map_is_the_time_integral_of_the_drug(tmp_path):
    cfg, _ = well_mixed_config(tmp_path)
    sim = Simulation(cfg)
    integral = 0.0
    for _ in range(30):
        before = sim.field("drug").mean()
        sim.step()
        integral += 0.5 * cfg.run.dt * (before + sim.field("drug").mean())
    assert sim.field("auc_drug").mean() == pytest.approx(integral, rel=1e-12)


def quick(overrides=()):
    return load_config(["experiment=quick", *overrides])


def test_fields_stay_non_negative_with_day_long_steps():
    cfg = quick(["run.dt=1440", "run.days=6", "treatment=targeted_oxphos",
                 "cells.sensitive.kill=0.5", "cells.switching.mu=0.01"])
    sim = Simulation(cfg)
    for _ in range(6):
        sim.step()
        data = sim.backend.to_host(sim.state.data)
        assert np.isfinite(data).all()
        assert data.min() >= 0.0


def test_three_dimensional_run_steps(tmp_path):
    cfg = quick(["tissue=spheroid3d", "grid.shape=[12,14,16]", "run.days=0.25"])
    sim = Simulation(cfg)
    summary = sim.run_until(path=tmp_path / "run3d.h5")
    assert sim.field("P").shape == (12, 14, 16)
    assert np.isfinite(summary["final_burden"])
    assert (tmp_path / "run3d_summary.png").stat().st_size > 10_000


def test_resume_reproduces_an_uninterrupted_run_exactly(tmp_path):
    overrides = ["run.days=1.0", "treatment=adaptive", "run.checkpoint_interval_hours=6"]
    straight = Simulation(quick(overrides))
    straight.run_until(days=1.0, path=tmp_path / "a.h5")

    first = Simulation(quick(overrides))
    first.run_until(days=0.5, path=tmp_path / "b.h5")
    resumed = Simulation.resume(tmp_path / "b.h5", days=1.0)
    resumed.run_until(path=tmp_path / "b.h5")

    assert resumed.t == straight.t and resumed.iteration == straight.iteration
    np.testing.assert_array_equal(resumed.backend.to_host(resumed.state.data),
                                  straight.backend.to_host(straight.state.data))
    import h5py
    with h5py.File(tmp_path / "a.h5") as fa, h5py.File(tmp_path / "b.h5") as fb:
        np.testing.assert_array_equal(fa["time"][:], fb["time"][:])
        np.testing.assert_array_equal(fa["fields/P"][:], fb["fields/P"][:])
        np.testing.assert_array_equal(fa["observables/time"][:], fb["observables/time"][:])
        np.testing.assert_array_equal(fa["observables/burden"][:], fb["observables/burden"][:])
        assert fb.attrs["status"] == "complete"


def test_a_non_finite_field_stops_the_run_naming_step_and_field(tmp_path):
    sim = Simulation(quick(["cells.sensitive.growth=1000"]))  # e^(1000·10) overflows
    with pytest.raises(NonFiniteError, match=r"field 'S' became non-finite at step 1 .*voxel"):
        sim.run_until(path=tmp_path / "nan.h5")
    import h5py
    with h5py.File(tmp_path / "nan.h5") as f:
        assert f.attrs["status"].startswith("failed")
        assert "step 1" in f["failure"].attrs["message"]
        assert not np.isfinite(f["failure/state"][:]).all()
        assert np.isfinite(f["checkpoint/state"][:]).all()  # the last good state, for resume


def test_a_doses_schedule_measures_its_summary_from_the_first_dose():
    sim = Simulation(quick(["treatment=doses", "run.days=1.5",
                            "treatment.drugs.drug.schedule.doses=[[1.0,2.0]]"]))
    sim.run_until(progress=False)
    s = sim.summary()
    assert s["treatment_start_day"] == pytest.approx(1.0)
    obs = sim.observables()
    at_first_dose = obs["burden"][np.argmin(np.abs(obs["time"] - 1440.0))]
    assert s["baseline_burden"] == pytest.approx(at_first_dose)


def test_on_flags_stand_for_the_coming_step_of_an_adaptive_schedule():
    """The flag recorded at t is the state after the decision taken at t."""
    sim = Simulation(quick(["treatment=adaptive", "run.days=1.0",
                            "treatment.drugs.drug.schedule.check_interval_days=0.25",
                            "treatment.drugs.drug.schedule.stop_fraction=0.9"]))
    sim.run_until(progress=False)
    obs = sim.observables()
    switches = [(e.t, e.on) for e in sim.treatment.dose_history if e.kind == "switch"]
    assert any(not on for _, on in switches), "the schedule never switched off"
    for t, on in switches:
        i = int(np.argmin(np.abs(obs["time"] - t)))
        assert obs["time"][i] == pytest.approx(t)
        assert obs["on_drug"][i] == float(on)


def test_an_interrupt_inside_a_step_keeps_the_last_consistent_checkpoint(tmp_path):
    """A second Ctrl-C lands mid-step; the checkpoint must still resume."""
    from spatialdtp.run.simulation import RunInterrupted

    sim = Simulation(quick(["run.days=1.0", "treatment=adaptive"]))
    calls = {"n": 0}
    original = sim._substrates_step

    def interrupted_on_fifth_call(dt, blood, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        original(dt, blood, **kwargs)

    sim._substrates_step = interrupted_on_fifth_call
    with pytest.raises(RunInterrupted):
        sim.run_until(path=tmp_path / "r.h5", progress=False)
    resumed = Simulation.resume(tmp_path / "r.h5")
    resumed.run_until(path=tmp_path / "r.h5", progress=False)
    assert resumed.t == pytest.approx(1440.0)


def test_a_new_simulation_never_appends_to_another_runs_file(tmp_path):
    import h5py
    import yaml

    from spatialdtp.run.runfile import RunFileExists

    path = tmp_path / "run.h5"
    Simulation(quick(["seed=1", "run.days=0.25"])).run_until(path=path, progress=False)
    sim = Simulation(quick(["seed=0", "run.days=0.25"]))
    sim.step()                                 # stepped by hand, as in the README's API example
    with pytest.raises(RunFileExists, match="overwrite=True"):   # never replaced unasked
        sim.run_until(path=path, progress=False)
    with h5py.File(path) as f:
        assert yaml.safe_load(f.attrs["config"])["seed"] == 1 and f.attrs["status"] == "complete"
    sim.run_until(path=path, progress=False, overwrite=True)
    with h5py.File(path) as f:
        assert yaml.safe_load(f.attrs["config"])["seed"] == 0
        assert f["time"][0] == pytest.approx(sim.cfg.run.dt)   # starts where this run was
        assert f.attrs["status"] == "complete"
    sim.run_until(days=0.5, path=path, progress=False)       # continuing its own file is fine
    with h5py.File(path) as f:
        assert f["time"][-1] == pytest.approx(720.0)


@pytest.mark.slow
def test_untreated_default_tissue_keeps_its_stroma_and_its_tumour_for_30_days():
    """The default section (96×96, 500-µm nest) without drug: quiescent CAFs stay exactly
    put; TAMs, recruited at the baseline rate calibrated to the seeded density, stay within
    5 % of their start (the steady state of test_cells.py's vessel-voxel balance, summed
    over the tissue); the tumour, seeded at its oxygen-limited density, stays within 10 %
    and grows over the last two weeks. (The fast rules behind it: test_cells.py's
    homeostasis tests.)"""
    cfg = load_config(["treatment=none", "run.dt=30", "run.progress=false", "run.plot=false",
                       "backend=numpy"])
    sim = Simulation(cfg)
    sim.run_until(days=30.0)
    o = sim.observables()
    days = o["time"] / 1440.0
    assert np.all(o["F"] == o["F"][0])
    assert np.max(np.abs(o["M"] / o["M"][0] - 1)) < 0.05
    burden = o["burden"] / o["burden"][0]
    assert burden.min() > 0.9
    assert burden[-1] > burden[np.searchsorted(days, 16.0)]


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_a_non_finite_voxel_in_any_field_is_named_at_the_next_observation(backend):
    """The finiteness check reads the observer's totals (its one pass sums every field):
    a NaN in any one field, summed there for the observables or only for the check, is
    found and named with its voxel."""
    sim = Simulation(quick([f"backend={backend}"]))
    sim.step()
    good = sim.state.data.copy()
    for name in sim.layout.names:
        sim.state.data[...] = good
        sim.state[name][(1,) * sim.grid.ndim] = np.nan
        with pytest.raises(NonFiniteError, match=rf"field '{name}' became non-finite .*voxel"):
            sim._observe(sim.treatment.plasma())
    sim.state.data[...] = good
    sim._observe(sim.treatment.plasma())            # all finite again: no error
