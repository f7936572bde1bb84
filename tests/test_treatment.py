"""Schedules, pharmacokinetics and drug effects (spatialdtp.model.treatment).

Expected values come from closed forms worked by hand, from scipy.integrate (quad for
step averages, solve_ivp for the oral ODE), or from the rule as the papers state it.
"""
import json
import math

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from spatialdtp.config import (
    ConfigError,
    DrugConfig,
    PKConfig,
    ScheduleConfig,
    TreatmentConfig,
)
from spatialdtp.model.treatment import DrugEffects, Treatment, drug_effects, hill

DAY = 1440.0
HOUR = 60.0
KE = 3.2e-4  # 1/min, erlotinib-like elimination (t½ ≈ 36 h)


def drug(pk="constant", ke=KE, ka=1e-2, drug_class="targeted", ec50=0.1, hill_n=1.0,
         emax=1.0, kill_rate=0.0, **schedule):
    return DrugConfig(drug_class=drug_class, ec50=ec50, hill=hill_n, emax=emax,
                      kill_rate=kill_rate,
                      pk=PKConfig(model=pk, elimination=ke, absorption=ka),
                      schedule=ScheduleConfig(**schedule))


def one(pk="constant", **kw) -> Treatment:
    return Treatment(TreatmentConfig(drugs={"erlotinib": drug(pk, **kw)}))


def run(tr: Treatment, t_end: float, dt: float, burden=lambda t: 1.0):
    """Step to t_end (the last step shortened to land on it); return the StepPlasmas."""
    steps = []
    while tr.t < t_end:
        h = min(dt, t_end - tr.t)
        steps.append(tr.advance(tr.t, h, burden(tr.t)))
    return steps


def switches(tr, name="erlotinib"):
    return [(e.t, e.on) for e in tr.dose_history if e.drug == name and e.kind == "switch"]


def doses(tr, name="erlotinib"):
    return [(e.t, e.amount) for e in tr.dose_history if e.drug == name and e.kind == "dose"]


# =========================================================================== schedules
def test_continuous_is_on_from_start_day_until_stop_day():
    tr = one(kind="continuous", start_day=1.0, stop_day=3.0)
    samples = {0.0: False, DAY - 1e-6: False, DAY: True, 2 * DAY: True,
               3 * DAY - 1e-6: True, 3 * DAY: False, 10 * DAY: False}
    for t, expected in samples.items():
        assert tr.is_on(t)["erlotinib"] is expected, t


def test_continuous_without_stop_day_stays_on():
    tr = one(kind="continuous", start_day=0.5)
    assert tr.is_on(0.5 * DAY)["erlotinib"] and tr.is_on(1e6)["erlotinib"]
    assert not tr.is_on(0.0)["erlotinib"]


def test_constant_exposure_step_average_counts_the_on_fraction_of_the_step():
    tr = one(kind="continuous", start_day=1.0, stop_day=2.0, dose=2.0)
    tr.advance(0.0, 1000.0, 1.0)
    step = tr.advance(1000.0, 1000.0, 1.0)          # on from 1440 to 2000
    assert step.average["erlotinib"] == pytest.approx(2.0 * 560.0 / 1000.0, rel=1e-14)
    assert step.on["erlotinib"] is False and step.level["erlotinib"] == 2.0
    tr.advance(2000.0, 880.0, 1.0)                  # to 2880 = 2 days: the step ends at stop
    step = tr.advance(2880.0, 10.0, 1.0)
    assert step.average["erlotinib"] == 0.0 and step.level["erlotinib"] == 0.0


def test_intermittent_on_days_on_off_days_off_until_stop_day():
    tr = one(kind="intermittent", start_day=1.0, on_days=2.0, off_days=3.0, stop_day=7.5)
    # period 5 days: on [1, 3), off [3, 6), on [6, 7.5) cut by stop_day, then off.
    samples = {0.99: False, 1.0: True, 2.99: True, 3.0: False, 5.99: False, 6.0: True,
               7.49: True, 7.5: False, 11.0: False, 12.0: False}
    for day, expected in samples.items():
        assert tr.is_on(day * DAY)["erlotinib"] is expected, day
    assert tr.event_times(20 * DAY) == [1 * DAY, 3 * DAY, 6 * DAY, 7.5 * DAY]


def test_intermittent_bolus_restarts_the_dose_train_at_each_on_switch():
    tr = one("bolus", kind="intermittent", on_days=1.0, off_days=1.0, interval_hours=20.0,
             dose=1.0)
    run(tr, 4 * DAY, 30.0)
    hours = [t / HOUR for t, _ in doses(tr)]
    assert hours == [0.0, 20.0, 48.0, 68.0]
    assert switches(tr) == [(0.0, True), (DAY, False), (2 * DAY, True), (3 * DAY, False)]


def burden_script(t):
    """Tumour burden (cells): 200 early, 100 from half a day, a brief dip to 10 between
    checks, shrinking to 40 after 2.5 days, regrowing to 90 at 5 days and 100 at 7 days."""
    day = t / DAY
    if day < 0.5:
        return 200.0
    if 1.4 <= day < 1.6:
        return 10.0
    if day < 2.5:
        return 100.0
    if day < 5.0:
        return 40.0
    if day < 7.0:
        return 90.0
    return 100.0


def adaptive(**kw):
    kw = {"kind": "adaptive", "start_day": 1.0, "stop_fraction": 0.5,
          "resume_fraction": 1.0, "check_interval_days": 1.0, "dose": 1.0, **kw}
    return one(**kw)


def test_adaptive_stops_below_stop_fraction_and_resumes_at_baseline():
    tr = adaptive()
    run(tr, 9 * DAY, 60.0, burden_script)
    # Baseline 100 (burden at day 1). Checks at days 2, 3, ...: day 2 (100) stays on,
    # day 3 (40 < 50) off, days 4-6 (40, 90, 90 < 100) stay off, day 7 (100) on again.
    # The dip to 10 at day 1.5 falls between checks and changes nothing.
    assert switches(tr) == [(1 * DAY, True), (3 * DAY, False), (7 * DAY, True)]
    assert tr._schedules["erlotinib"].baseline == 100.0


def test_adaptive_baseline_comes_from_start_day_not_from_the_first_step():
    # With the baseline taken at t = 0 (burden 200) the drug would never resume at 100.
    tr = adaptive()
    run(tr, 9 * DAY, 60.0, burden_script)
    assert tr.is_on(8 * DAY)["erlotinib"]


def test_adaptive_decides_at_the_first_step_at_or_after_each_check():
    tr = adaptive()
    run(tr, 9 * DAY, 7.0, burden_script)          # steps do not land on the checks
    first_step_after = lambda t: math.ceil(t / 7.0) * 7.0
    assert switches(tr) == [(1 * DAY, True),                     # start_day is exact
                            (first_step_after(3 * DAY), False),  # 4326 min
                            (first_step_after(7 * DAY), True)]   # 10080 min (on a step)


def test_lead_in_shifts_every_schedule_day_and_the_treatment_start():
    """treatment.lead_in_days: untreated days first; start_day, stop_day, the doses' days
    and the adaptive baseline and checks all count from its end."""
    from spatialdtp.api import load_config
    from spatialdtp.run.simulation import treatment_start_minutes

    lead = 2.0
    def shifted(**kw):
        return Treatment(TreatmentConfig(lead_in_days=lead, drugs={"erlotinib": drug(**kw)}))

    tr = shifted(kind="continuous", start_day=1.0, stop_day=3.0)
    for day, expected in {2.999: False, 3.0: True, 4.999: True, 5.0: False}.items():
        assert tr.is_on(day * DAY)["erlotinib"] is expected, day
    tr = shifted(pk="bolus", kind="doses", doses=[[0, 1.0], [1.5, 2.0]])
    run(tr, 5 * DAY, 60.0)
    assert doses(tr) == [(2.0 * DAY, 1.0), (3.5 * DAY, 2.0)]
    tr = shifted(kind="adaptive", start_day=1.0, stop_fraction=0.5, resume_fraction=1.0,
                 check_interval_days=1.0, dose=1.0)
    run(tr, 11 * DAY, 60.0, lambda t: burden_script(t - lead * DAY))
    assert switches(tr) == [(3 * DAY, True), (5 * DAY, False), (9 * DAY, True)]
    assert tr._schedules["erlotinib"].baseline == 100.0
    cfg = load_config(["treatment.lead_in_days=2", "treatment.drugs.drug.schedule.start_day=1"])
    assert treatment_start_minutes(cfg) == 3 * DAY
    # the default job: a week untreated, then three weeks of the drug
    cfg = load_config([])
    assert treatment_start_minutes(cfg) == 7 * DAY and cfg.run.days == 28.0
    with pytest.raises(ConfigError, match="treatment.lead_in_days"):
        load_config(["treatment.lead_in_days=-1"])


@pytest.mark.parametrize("burden_at_check, stays_on", [(50.0, True), (49.999, False)])
def test_adaptive_stops_only_strictly_below_stop_fraction(burden_at_check, stays_on):
    tr = adaptive(start_day=0.0)
    run(tr, 1.5 * DAY, 60.0, lambda t: 100.0 if t < DAY else burden_at_check)
    assert tr.is_on(1.5 * DAY)["erlotinib"] is stays_on


def test_adaptive_never_resumes_after_stop_day():
    tr = adaptive(stop_day=5.0)
    run(tr, 9 * DAY, 60.0, burden_script)
    assert switches(tr) == [(1 * DAY, True), (3 * DAY, False)]
    assert not any(tr.is_on(d * DAY)["erlotinib"] for d in (5, 7, 8))


def test_adaptive_bolus_starts_a_new_dose_train_at_each_on_switch():
    tr = one("bolus", kind="adaptive", start_day=1.0, interval_hours=24.0,
             check_interval_days=1.0, dose=1.0)
    run(tr, 9 * DAY, 60.0, burden_script)
    assert [t / DAY for t, _ in doses(tr)] == [1.0, 2.0, 7.0, 8.0]


def test_doses_list_with_constant_pk_turns_the_drug_on_for_dose_duration():
    tr = one(kind="doses", doses=[[1.0, 2.0], [3.0, 5.0], [3.25, 1.0]],
             dose_duration_hours=12.0)
    on = lambda day: tr.is_on(day * DAY)["erlotinib"]
    assert [on(d) for d in (0.9, 1.0, 1.49, 1.5, 3.0, 3.6, 3.74, 3.75)] == \
        [False, True, True, False, True, True, True, False]
    tr.advance(0.0, DAY, 1.0)
    assert tr.advance(DAY, 0.5 * DAY, 1.0).average["erlotinib"] == pytest.approx(2.0)
    tr.advance(1.5 * DAY, 1.5 * DAY, 1.0)
    # [3.0, 3.5) at 5 plus [3.25, 3.75) at 1 overlap and add: over [3, 4): (5·12 + 1·12) / 24.
    step = tr.advance(3 * DAY, DAY, 1.0)
    assert step.average["erlotinib"] == pytest.approx((5.0 * 12 + 1.0 * 12) / 24, rel=1e-14)


def test_doses_list_with_bolus_pk_gives_one_dose_per_entry_until_stop_day():
    tr = one("bolus", kind="doses", doses=[[2.0, 3.0], [0.5, 1.0], [4.0, 10.0]],
             stop_day=3.5)
    run(tr, 5 * DAY, 45.0)
    assert doses(tr) == [(0.5 * DAY, 1.0), (2.0 * DAY, 3.0)]       # day 4 is after stop
    expected = 1.0 * math.exp(-KE * 4.5 * DAY) + 3.0 * math.exp(-KE * 3.0 * DAY)
    assert tr.plasma()["erlotinib"] == pytest.approx(expected, rel=1e-12)


# =========================================================================== pharmacokinetics
def bolus_exact(t, dose, interval, ke=KE, start=0.0):
    """Superposition of every dose given before t (a dose at t itself comes next step)."""
    n = 0 if t <= start else math.ceil((t - start) / interval - 1e-12)
    return sum(dose * math.exp(-ke * (t - (start + k * interval))) for k in range(n))


def test_bolus_plasma_after_n_doses_is_the_geometric_sum():
    tr = one("bolus", dose=2.0, interval_hours=24.0)
    t = 5 * DAY + 7 * HOUR                          # 6 doses (days 0..5), the last 7 h ago
    run(tr, t, 10.0)
    q = math.exp(-KE * DAY)
    expected = 2.0 * math.exp(-KE * 7 * HOUR) * (1 - q ** 6) / (1 - q)
    assert tr.plasma()["erlotinib"] == pytest.approx(expected, rel=1e-12)


def test_bolus_step_average_is_the_integral_of_plasma_over_the_step():
    tr = one("bolus", dose=2.0, interval_hours=24.0)
    tr.advance(0.0, 1000.0, 1.0)
    step = tr.advance(1000.0, 500.0, 1.0)           # the day-1 dose at 1440 is inside
    integral, _ = quad(lambda s: bolus_exact(s + 1e-9, 2.0, DAY), 1000.0, 1500.0,
                       points=[1440.0], epsabs=0, epsrel=1e-13, limit=200)
    assert step.average["erlotinib"] == pytest.approx(integral / 500.0, rel=1e-10)
    assert step.level["erlotinib"] == pytest.approx(bolus_exact(1500.0, 2.0, DAY), rel=1e-13)


def test_bolus_plasma_does_not_depend_on_the_step_size():
    levels = []
    for dt in (1.0, 7.0, 60.0):
        tr = one("bolus", dose=2.0, interval_hours=7.3)   # doses fall inside steps
        run(tr, 3 * DAY, dt)
        levels.append(tr.plasma()["erlotinib"])
    exact = bolus_exact(3 * DAY, 2.0, 7.3 * HOUR)
    for level in levels:
        assert abs(level - levels[0]) <= 1e-10 * levels[0]
        assert level == pytest.approx(exact, rel=1e-12)


def test_bolus_exposure_over_many_steps_equals_the_exact_area():
    # Sum of average·dt over the run is the AUC: dose/ke per dose minus what is still in plasma.
    for dt in (7.0, 60.0, 500.0):
        tr = one("bolus", dose=2.0, interval_hours=7.3)
        steps = run(tr, 3 * DAY, dt)
        t_ends = np.cumsum([min(dt, 3 * DAY - k * dt) for k in range(len(steps))])
        auc = sum(s.average["erlotinib"] * (te - (t_ends[i - 1] if i else 0.0))
                  for i, (s, te) in enumerate(zip(steps, t_ends)))
        n = len(doses(tr))
        assert auc == pytest.approx((n * 2.0 - tr.plasma()["erlotinib"]) / KE, rel=1e-11)


def oral_reference(ka, ke, dose, dose_times, t_samples):
    """solve_ivp of dg/dt = −ka g, dc/dt = ka g − ke c, restarted at each dose."""
    y = np.zeros(2)
    out = []
    edges = sorted(set(dose_times) | {0.0, max(t_samples)})
    rhs = lambda t, y: [-ka * y[0], ka * y[0] - ke * y[1]]
    for t0, t1 in zip(edges[:-1], edges[1:]):
        if t0 in dose_times:
            y[0] += dose
        inside = [t for t in t_samples if t0 < t <= t1]
        sol = solve_ivp(rhs, (t0, t1), y, method="DOP853", rtol=1e-11, atol=1e-14,
                        t_eval=inside or None, dense_output=False)
        out += list(sol.y[1][:len(inside)]) if inside else []
        y = sol.y[:, -1].copy()
    return np.array(out)


@pytest.mark.parametrize("ka", [1e-2, KE], ids=["ka>ke", "ka==ke"])
def test_oral_plasma_matches_the_two_compartment_ode(ka):
    tr = one("oral", ka=ka, dose=3.0, interval_hours=12.0)
    steps = run(tr, 3 * DAY, 30.0)
    t_samples = [30.0 * (i + 1) for i in range(len(steps))]
    ref = oral_reference(ka, KE, 3.0, [k * 12 * HOUR for k in range(6)], t_samples)
    got = np.array([s.level["erlotinib"] for s in steps])
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def oral_single_dose(t, ka, ke, dose=1.0):
    """Textbook closed form for one oral dose at t = 0 (Bateman function), limit at ka = ke."""
    if ka == ke:
        return dose * ka * t * math.exp(-ke * t)
    return dose * ka / (ka - ke) * (math.exp(-ke * t) - math.exp(-ka * t))


@pytest.mark.parametrize("ka", [1e-2, KE, 1e-4], ids=["ka>ke", "ka==ke", "ka<ke"])
def test_oral_step_average_is_the_integral_of_plasma(ka):
    tr = one("oral", ka=ka, dose=1.0, interval_hours=1e4)   # a single dose at t = 0
    tr.advance(0.0, 100.0, 1.0)
    step = tr.advance(100.0, 900.0, 1.0)
    integral, _ = quad(oral_single_dose, 100.0, 1000.0, args=(ka, KE), epsabs=0, epsrel=1e-13)
    assert step.average["erlotinib"] == pytest.approx(integral / 900.0, rel=1e-10)
    assert step.level["erlotinib"] == pytest.approx(oral_single_dose(1000.0, ka, KE), rel=1e-12)


def test_oral_with_ka_near_ke_joins_the_ka_equal_ke_limit_smoothly():
    def after(ka):
        tr = one("oral", ka=ka, dose=1.0, interval_hours=1e4)
        return tr.advance(0.0, 3000.0, 1.0)
    same = after(KE)
    for rel in (1e-12, 1e-8, 1e-4):
        near = after(KE * (1 + rel))
        # dc/dka is O(1) relative, so the gap must be of the order of rel, not of eps/rel.
        assert near.level["erlotinib"] == pytest.approx(same.level["erlotinib"], rel=3 * rel)
        assert near.average["erlotinib"] == pytest.approx(same.average["erlotinib"], rel=3 * rel)


def test_infusion_approaches_rate_over_elimination():
    rate = 0.01
    tr = one("infusion", dose=rate)
    run(tr, 30 * DAY, 60.0)
    t = 30 * DAY
    assert tr.plasma()["erlotinib"] == pytest.approx(rate / KE * (1 - math.exp(-KE * t)),
                                                     rel=1e-12)
    assert tr.plasma()["erlotinib"] == pytest.approx(rate / KE, rel=1e-5)


def test_infusion_step_average_is_exact_across_a_stop():
    rate = 0.01
    tr = one("infusion", dose=rate, stop_day=1.0)
    tr.advance(0.0, 1000.0, 1.0)
    step = tr.advance(1000.0, 1000.0, 1.0)          # infusion stops at 1440 inside the step

    def c(s):
        on = min(s, DAY)
        level = rate / KE * (1 - math.exp(-KE * on))
        return level * math.exp(-KE * (s - on))
    integral, _ = quad(c, 1000.0, 2000.0, points=[DAY], epsabs=0, epsrel=1e-13)
    assert step.average["erlotinib"] == pytest.approx(integral / 1000.0, rel=1e-10)
    assert step.level["erlotinib"] == pytest.approx(c(2000.0), rel=1e-12)


# =========================================================================== drug effects
def test_hill_by_hand():
    assert hill(0.1, 0.1, 1.0, 1.0) == pytest.approx(0.5)
    assert hill(0.3, 0.1, 2.0, 0.8) == pytest.approx(0.8 * 0.09 / (0.09 + 0.01))
    c = np.array([-1e-6, 0.0, 1e-3, 1e6, 1e30], dtype=np.float32)
    e = hill(c, 0.1, 4.0, 0.9)
    assert e.dtype == np.float32 and np.all(np.isfinite(e))
    assert e[0] == 0 and e[1] == 0 and e[-1] == pytest.approx(0.9)
    assert e[2] == pytest.approx(0.9 * 1e-8, rel=1e-5)


def effects_cfg(combination, drugs):
    return TreatmentConfig(combination=combination, drugs=drugs)


TWO_TARGETED = {"a": drug(ec50=0.1), "b": drug(ec50=0.1, hill_n=2.0, emax=0.8)}
CONC_AB = {"a": np.array([0.1]), "b": np.array([0.3])}   # E_a = 0.5, E_b = 0.72


def test_bliss_combines_targeted_drugs_as_independent_kills():
    eff = drug_effects(effects_cfg("bliss", TWO_TARGETED), CONC_AB)
    np.testing.assert_allclose(eff.kill, [1 - 0.5 * 0.28], rtol=1e-14)


def test_hsa_takes_the_highest_single_agent():
    eff = drug_effects(effects_cfg("hsa", TWO_TARGETED), CONC_AB)
    np.testing.assert_allclose(eff.kill, [0.72], rtol=1e-14)


def test_classes_combine_separately_and_persister_hazards_add():
    drugs = {"erl": drug(ec50=0.1),
             "kdm5": drug(drug_class="epigenetic", ec50=1.0),
             "cap": drug(drug_class="met", ec50=0.5, emax=0.9),
             "iacs": drug(drug_class="oxphos", ec50=0.2, kill_rate=0.01),
             "rsl3": drug(drug_class="gpx4", ec50=0.3, kill_rate=0.02)}
    conc = {"erl": np.full(3, 0.1), "kdm5": np.full(3, 3.0), "cap": np.full(3, 0.5),
            "iacs": np.full(3, 0.2), "rsl3": np.full(3, 0.1)}
    eff = drug_effects(effects_cfg("bliss", drugs), conc)
    np.testing.assert_allclose(eff.kill, 0.5)               # the others leave kill alone
    np.testing.assert_allclose(eff.epigenetic, 0.75)        # 3/(3 + 1)
    np.testing.assert_allclose(eff.met_blockade, 0.45)      # 0.9 · 1/2
    np.testing.assert_allclose(eff.p_kill, 0.01 * 0.5 + 0.02 * 0.25)


def test_classes_without_a_drug_give_zero_and_no_drugs_work():
    eff = drug_effects(effects_cfg("bliss", {"erl": drug()}), {"erl": np.ones(4)})
    assert eff.epigenetic == 0.0 and eff.met_blockade == 0.0 and eff.p_kill == 0.0
    none = drug_effects(TreatmentConfig(drugs={}), {})
    assert none == DrugEffects(kill=0.0, epigenetic=0.0, met_blockade=0.0, p_kill=0.0)


def test_untreated_run_has_no_plasma_no_events_and_a_state():
    tr = Treatment(TreatmentConfig(drugs={}))
    step = tr.advance(0.0, 10.0, 5.0)
    assert step.level == {} and step.average == {} and step.on == {}
    assert tr.plasma() == {} and tr.event_times(100.0) == [] and tr.dose_history == []
    other = Treatment(TreatmentConfig(drugs={}))
    other.set_state(json.loads(json.dumps(tr.get_state())))
    assert other.t == 10.0


# =========================================================================== restart
def combination():
    return TreatmentConfig(drugs={
        "erl": drug("bolus", kind="adaptive", start_day=0.5, interval_hours=8.0, dose=1.5,
                    check_interval_days=0.5),
        "cap": drug("oral", drug_class="met", kind="intermittent", on_days=1.5,
                    off_days=1.0, interval_hours=11.0, dose=2.0),
        "iacs": drug("infusion", drug_class="oxphos", kind="doses",
                     doses=[[1.0, 0.01], [4.2, 0.02]], dose_duration_hours=30.0)})


def test_get_state_set_state_reproduces_the_same_future_exactly():
    first = Treatment(combination())
    run(first, 2.7 * DAY, 13.0, burden_script)
    saved = json.loads(json.dumps(first.get_state()))       # through JSON, as a run file does
    second = Treatment(combination())
    second.set_state(saved)
    a = run(first, 10 * DAY, 13.0, burden_script)
    b = run(second, 10 * DAY, 13.0, burden_script)
    assert a == b                                           # bit for bit
    assert first.dose_history == second.dose_history
    assert first.get_state() == second.get_state()
    assert any(e.kind == "switch" and not e.on and e.drug == "erl"
               for e in first.dose_history)                 # the adaptive rule did act


# =========================================================================== bad input
def test_bad_steps_are_refused_by_name():
    tr = one("bolus")
    with pytest.raises(ValueError, match="dt=-1.0"):
        tr.advance(0.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="dt=nan"):
        tr.advance(0.0, float("nan"), 1.0)
    tr.advance(0.0, 10.0, 1.0)
    with pytest.raises(ValueError, match="consecutive"):
        tr.advance(50.0, 10.0, 1.0)
    with pytest.raises(ValueError, match="burden"):
        adaptive().advance(0.0, 10.0, None)


def test_bad_config_and_state_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"pk\.model='iv'"):
        one("iv")
    with pytest.raises(ConfigError, match="combination"):
        Treatment(TreatmentConfig(combination="sum", drugs={}))
    with pytest.raises(ValueError, match="drugs"):
        one().set_state(Treatment(TreatmentConfig(drugs={})).get_state())
    with pytest.raises(KeyError, match="erl"):
        drug_effects(TreatmentConfig(drugs={"erl": drug()}), {})


def test_hsa_takes_the_largest_persister_hazard_within_a_class():
    from spatialdtp.config import DrugConfig, TreatmentConfig
    from spatialdtp.model.treatment import drug_effects

    drugs = {n: DrugConfig(drug_class="oxphos", ec50=1.0, kill_rate=1e-3) for n in ("a", "b")}
    drugs["c"] = DrugConfig(drug_class="gpx4", ec50=1.0, kill_rate=2e-3)
    conc = {"a": np.array([1.0]), "b": np.array([1.0]), "c": np.array([1.0])}   # E = 0.5 each
    bliss = drug_effects(TreatmentConfig(drugs=drugs, combination="bliss"), conc)
    hsa = drug_effects(TreatmentConfig(drugs=drugs, combination="hsa"), conc)
    np.testing.assert_allclose(bliss.p_kill, [0.5e-3 + 0.5e-3 + 1e-3])
    np.testing.assert_allclose(hsa.p_kill, [0.5e-3 + 1e-3])      # classes still add
