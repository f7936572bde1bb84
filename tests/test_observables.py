"""Observables, the treatment summary and the summary plot, checked against hand sums."""
import math
import re

import numpy as np
import pytest

import spatialdtp.run.observables as observables
from spatialdtp.config import RunConfig
from spatialdtp.model.grid import Grid
from spatialdtp.model.state import FieldLayout, State
from spatialdtp.run.observables import Observer
from spatialdtp.run.summary import format_summary, summarize

DAY = 1440.0
LAYOUT = FieldLayout(substrates=("oxygen", "glucose", "hgf", "chemokine", "drug"), drugs=("drug",))


def make_state(shape, dx=20.0):
    st = State(Grid(shape, dx), LAYOUT, dtype=np.float64)
    st["oxygen"] = 38.0
    return st


def observe(st, capacity=10.0, **run):
    obs = Observer(st.grid, LAYOUT, RunConfig(**run), capacity=capacity, drugs=("drug",))
    return obs.compute(st, plasma={"drug": 1.5}, on={"drug": True})


# --------------------------------------------------------------------------- totals
@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 5)])
def test_totals_and_fractions_are_the_hand_sums(shape):
    st = make_state(shape)
    first, mid, last = (0,) * len(shape), (1,) * len(shape), tuple(n - 1 for n in shape)
    st["S"][first], st["S"][mid] = 1.0, 2.0          # S = 3
    st["P"][mid], st["P"][last] = 1.5, 0.5           # P = 2
    st["R"][first] = 1.0                             # R = 1
    st["F"][last] = 4.0
    st["M"][mid] = 0.25
    st["oxygen"] = 10.0
    st["oxygen"][last] = 10.0 + len(st["oxygen"].ravel())  # raises the mean by exactly 1
    st["hgf"] = 2.5
    st["drug"][mid] = 4.0
    size = float(np.prod(shape))
    o = observe(st)
    assert (o["S"], o["P"], o["R"], o["F"], o["M"]) == (3.0, 2.0, 1.0, 4.0, 0.25)
    assert o["burden"] == 6.0
    assert o["resistant_fraction"] == pytest.approx(1 / 6)
    assert o["persister_fraction"] == pytest.approx(2 / 6)
    assert o["mean_oxygen"] == pytest.approx(11.0)
    assert o["mean_hgf"] == pytest.approx(2.5)
    assert o["mean_drug"] == pytest.approx(4.0 / size)
    assert (o["plasma_drug"], o["on_drug"]) == (1.5, 1.0)


def test_names_fix_the_order_and_every_name_has_a_unit():
    st = make_state((4, 4))
    obs = Observer(st.grid, LAYOUT, RunConfig(), capacity=10.0, drugs=("drug",))
    assert obs.names[:6] == ("S", "P", "R", "F", "M", "burden")
    assert obs.names[-3:] == ("plasma_drug", "on_drug", "mean_drug")
    assert tuple(obs.compute(st, {"drug": 0.0}, {"drug": False})) == obs.names
    assert set(obs.units) == set(obs.names)
    assert obs.units["mean_oxygen"] == "mmHg" and obs.units["burden"] == "cells"


def test_one_host_transfer_per_step(monkeypatch):
    calls = []
    real = observables.host_array
    monkeypatch.setattr(observables, "host_array", lambda a: calls.append(a.shape) or real(a))
    st = make_state((5, 5))
    observe(st)
    assert len(calls) == 1 and len(calls[0]) == 1     # one small vector


def test_empty_tumour_gives_nan_fractions_not_errors():
    o = observe(make_state((4, 4)))
    assert o["burden"] == 0.0
    assert math.isnan(o["resistant_fraction"]) and math.isnan(o["hypoxic_fraction"])
    assert math.isnan(o["niche_contrast"])      # the reference tumour is empty: no bed


def test_bad_arguments_are_named():
    st = make_state((4, 4))
    with pytest.raises(ValueError, match="capacity"):
        Observer(st.grid, LAYOUT, RunConfig(), capacity=0.0)
    with pytest.raises(ValueError, match="'cisplatin'"):
        Observer(st.grid, LAYOUT, RunConfig(), capacity=1.0, drugs=("cisplatin",))
    obs = Observer(st.grid, LAYOUT, RunConfig(), capacity=1.0, drugs=("drug",))
    with pytest.raises(ValueError, match="plasma.*'drug'"):
        obs.compute(st, plasma={}, on={"drug": True})


# --------------------------------------------------------------------------- hypoxia
def test_hypoxic_fraction_counts_tumour_cells_below_the_threshold():
    st = make_state((5, 5))
    st["oxygen"] = 40.0
    st["S"][0, 0], st["oxygen"][0, 0] = 2.0, 30.0    # normoxic
    st["S"][1, 1], st["R"][1, 1], st["oxygen"][1, 1] = 1.0, 1.0, 5.0   # hypoxic: 2 cells
    st["P"][2, 2], st["oxygen"][2, 2] = 3.0, 15.0    # exactly at the threshold: not hypoxic
    st["oxygen"][4, 4] = 0.0                          # anoxic but empty: counts for nothing
    o = observe(st, hypoxic_threshold=15.0)
    assert o["hypoxic_fraction"] == pytest.approx(2.0 / 7.0)


# The niche contrast (niche_contrast and its counts) is tested in test_niche.py.


# --------------------------------------------------------------------------- summary
def course(burden, **extra):
    t = np.arange(len(burden)) * DAY
    return t, {"burden": np.asarray(burden, dtype=float), **extra}


def test_time_to_progression_is_the_first_sample_above_factor_times_baseline():
    # baseline 100, threshold 120: days 6 (110) is below, day 7 (125) is the first above.
    t, obs = course([100, 80, 50, 30, 40, 70, 110, 125, 150, 200, 300])
    s = summarize(t, obs, RunConfig(progression_factor=1.2))
    assert s["baseline_burden"] == 100.0 and s["progression_threshold"] == pytest.approx(120.0)
    assert s["time_to_progression_days"] == 7.0
    assert (s["nadir"], s["nadir_day"], s["nadir_fraction"]) == (30.0, 3.0, 0.3)
    assert s["mrd_reached"] == 0.0
    assert s["final_burden"] == 300.0 and s["final_fraction"] == 3.0


def test_burden_exactly_at_the_threshold_is_not_progression():
    """Progression is burden > factor × baseline (RECIST-like: a rise *above* the
    threshold). Factor 1.25 on a baseline of 100 is 125 exactly in binary; days 2 and 3 sit
    on it, day 4 is the first above: 4 days, not 2 (a >= would give 2)."""
    t, obs = course([100, 80, 125, 125, 130])
    s = summarize(t, obs, RunConfig(progression_factor=1.25))
    assert s["progression_threshold"] == 125.0
    assert s["time_to_progression_days"] == 4.0


def test_baseline_and_times_count_from_treatment_start():
    # start at day 1.5: baseline is day 2 (50), threshold 60, first above on day 5 (70).
    t, obs = course([100, 80, 50, 30, 40, 70, 110])
    s = summarize(t, obs, RunConfig(progression_factor=1.2), treatment_start_min=1.5 * DAY)
    assert s["baseline_burden"] == 50.0
    assert s["time_to_progression_days"] == pytest.approx(3.5)
    assert s["nadir_day"] == pytest.approx(1.5)


def test_no_progression_is_nan_and_deep_response_reaches_mrd():
    t, obs = course([1e6, 1e5, 1e3, 5e2, 8e2])
    s = summarize(t, obs, RunConfig(mrd_threshold=1e-3))
    assert math.isnan(s["time_to_progression_days"])
    assert s["nadir_fraction"] == pytest.approx(5e-4) and s["mrd_reached"] == 1.0
    assert "never" in format_summary(s)


def test_burden_starting_above_the_threshold_must_drop_before_it_progresses():
    # factor 0.9: the baseline 100 is already above 90; it drops to 50 then returns to 95.
    t, obs = course([100, 95, 50, 85, 95])
    s = summarize(t, obs, RunConfig(progression_factor=0.9))
    assert s["time_to_progression_days"] == 4.0


def test_final_fractions_niche_contrast_and_days_on():
    t, obs = course([10, 8, 6, 8], P=np.array([1.0, 2, 3, 2]), R=np.array([0.0, 0, 1, 4]),
                    niche_contrast=np.array([np.nan, 2.0, 4.0, 1.5]),
                    on_drug=np.array([1.0, 1.0, 1.0, 0.0]))
    s = summarize(t, obs, RunConfig())
    assert s["final_P"] == 2.0 and s["final_R"] == 4.0
    assert s["final_persister_fraction"] == 0.25 and s["final_resistant_fraction"] == 0.5
    assert s["final_niche_contrast"] == 1.5     # the last sample, not a mean
    assert s["cumulative_on_days_drug"] == 3.0   # each flag holds until the next sample


def test_a_run_ending_before_treatment_start_has_no_baseline_but_its_final_counts():
    """A short run inside the lead-in: the end points of treatment are NaN, not an error."""
    t, obs = course([1, 2, 3])
    s = summarize(t, obs, RunConfig(), treatment_start_min=10 * DAY)
    for key in ("baseline_burden", "progression_threshold", "time_to_progression_days",
                "nadir", "nadir_day", "nadir_fraction", "mrd_reached", "final_fraction"):
        assert math.isnan(s[key]), key
    assert s["final_burden"] == 3.0 and s["treatment_start_day"] == 10.0


def test_summarize_refuses_bad_input_by_name():
    t, obs = course([1, 2, 3])
    with pytest.raises(ValueError, match="treatment_start_min"):
        summarize(t, obs, RunConfig(), treatment_start_min=math.nan)
    with pytest.raises(ValueError, match="burden"):
        summarize(t, {"S": obs["burden"]}, RunConfig())
    with pytest.raises(ValueError, match="obs\\['P'\\]"):
        summarize(t, {**obs, "P": np.ones(2)}, RunConfig())


def test_format_summary_is_an_aligned_table_with_units():
    t, obs = course([100, 50, 130], on_drug=np.array([1.0, 1.0, 1.0]))
    text = format_summary(summarize(t, obs, RunConfig()))
    lines = text.splitlines()
    value_ends = {re.match(r"\S+\s+\S+", line).end() for line in lines}
    assert len(value_ends) == 1                          # values right-aligned in one column
    assert any(line.startswith("time_to_progression_days")
               and line.endswith("days after treatment start") for line in lines)
    assert any(line.startswith("cumulative_on_days_drug") and "2" in line for line in lines)


def test_format_summary_marks_counts_below_one_cell():
    text = format_summary({"final_P": 0.3, "final_R": 2.0, "nadir": 0.0, "final_fraction": 0.5})
    marked = [line.split()[0] for line in text.splitlines() if line.endswith("(< 1 cell)")]
    assert marked == ["final_P"]      # not 2 cells, not 0 (none), not a fraction below 1


# --------------------------------------------------------------------------- plot
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_run(treated, n=43):
    t = np.linspace(0, 21 * DAY, n)
    days = t / DAY
    S = 1e5 * np.exp(-0.5 * days) if treated else 1e5 * np.exp(0.05 * days)
    P = 3e2 * (1 + days)
    R = 10 * np.exp(0.5 * days)     # resistance takes over: the treated run progresses
    obs = {"S": S, "P": P, "R": R, "burden": S + P + R,
           "niche_contrast": np.full(n, np.nan) if not treated else 1.5 + 0.01 * days}
    drugs = ()
    if treated:
        on = ((days % 10) < 7).astype(float)
        obs.update(on_drug=on, plasma_drug=2.0 * on, on_met=(days > 5).astype(float),
                   plasma_met=0.5 * (days > 5))
        drugs = ("drug", "met")
    return t, obs, drugs


@pytest.mark.parametrize("treated", [True, False])
def test_plot_summary_writes_a_png(tmp_path, treated):
    from spatialdtp.run.summary_plot import plot_summary
    t, obs, drugs = synthetic_run(treated)
    s = summarize(t, obs, RunConfig())
    path = tmp_path / "summary.png"
    plot_summary(path, t, obs, s, drugs)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 20_000


def test_plot_summary_shades_drug_periods(tmp_path):
    from matplotlib.image import imread

    from spatialdtp.run.summary_plot import plot_summary
    t, obs, drugs = synthetic_run(True)
    plot_summary(tmp_path / "on.png", t, obs, summarize(t, obs, RunConfig()), drugs)
    obs_off = {**obs, "on_drug": np.zeros_like(t), "on_met": np.zeros_like(t)}
    plot_summary(tmp_path / "off.png", t, obs_off, summarize(t, obs_off, RunConfig()), drugs)
    # tab:green at alpha 0.15 on white is about (0.87, 0.94, 0.87): count greenish pixels
    def greenish(img):
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
        return int(np.sum((g - r > 0.04) & (g - b > 0.04)))
    assert greenish(imread(tmp_path / "on.png")) > 10 * max(1, greenish(imread(tmp_path / "off.png")))


def test_plot_summary_survives_a_single_time_point(tmp_path):
    from spatialdtp.run.summary_plot import plot_summary
    t, obs = np.array([0.0]), {"S": np.array([5.0]), "P": np.array([1.0]), "R": np.array([0.0]),
                               "burden": np.array([6.0]), "niche_contrast": np.array([np.nan]),
                               "on_drug": np.array([1.0]), "plasma_drug": np.array([2.0])}
    s = summarize(t, obs, RunConfig())
    plot_summary(tmp_path / "one.png", t, obs, s, ("drug",))
    assert (tmp_path / "one.png").read_bytes()[:8] == PNG_MAGIC


# --------------------------------------------------------------------------- device
@pytest.mark.gpu
def test_cupy_observer_matches_numpy():
    cp = pytest.importorskip("cupy")
    from test_niche import niche_state
    st = niche_state()
    st["oxygen"][0:3] = 4.0
    st["drug"][2, 2] = 3.0
    run = RunConfig(niche_distance=50.0, niche_far_distance=50.0)
    ref = Observer(st.grid, LAYOUT, run, 10.0, ("drug",)).compute(st, {"drug": 1.0}, {"drug": True})
    gst = State(st.grid, LAYOUT, xp=cp, dtype=np.float64, data=cp.asarray(st.data))
    got = Observer(st.grid, LAYOUT, run, 10.0, ("drug",), xp=cp).compute(
        gst, {"drug": 1.0}, {"drug": True})
    for k in ref:
        assert got[k] == pytest.approx(ref[k], nan_ok=True), k


def test_plot_summary_has_a_title_marks_sub_cell_counts_and_keeps_the_legend_outside(tmp_path):
    """A persister count that falls to 1e-3 cells is drawn over a "< 1 cell" band reaching
    exactly 1 cell; the title names the run; the legend sits right of the axes."""
    from spatialdtp.run.summary_plot import plot_summary
    t, obs, drugs = synthetic_run(True)
    obs["P"] = 3e2 * np.exp(-0.6 * t / DAY)          # 300 · e^(-12.6) ≈ 1e-3 at day 21
    obs["burden"] = obs["S"] + obs["P"] + obs["R"]
    fig = plot_summary(tmp_path / "p.png", t, obs, summarize(t, obs, RunConfig()), drugs,
                       title="tissue=section  seed=0")
    assert fig._suptitle.get_text() == "tissue=section  seed=0"
    top = fig.axes[0]
    bands = [p for p in top.patches if p.get_gid() == "sub-cell"]
    assert len(bands) == 1
    y0, y1 = bands[0].get_y(), bands[0].get_y() + bands[0].get_height()   # data units
    assert y1 == pytest.approx(1.0, rel=1e-12) and y0 <= 1e-3
    legend = top.get_legend()
    assert "< 1 cell (sub-cell)" in [x.get_text() for x in legend.get_texts()]
    renderer = fig.canvas.get_renderer()
    assert legend.get_window_extent(renderer).x0 >= top.get_window_extent(renderer).x1


def test_summary_png_has_the_spatial_panel_at_treatment_start_nadir_and_end(tmp_path):
    """The run's summary PNG gains a row of maps read from its run file: P, the niche voxels
    (F + M >= run.niche_threshold × capacity) and the vessels at the frames nearest to
    treatment start, the nadir and the end, the tumour bed at treatment start outlined."""
    import struct

    from spatialdtp.api import load_config
    from spatialdtp.run.runfile import read_run
    from spatialdtp.run.simulation import Simulation
    from spatialdtp.run.summary_maps import spatial_panel
    from spatialdtp.run.summary_plot import plot_summary

    cfg = load_config(["experiment=quick", "backend=numpy", "treatment.lead_in_days=0.25",
                       "run.output_interval_hours=3", "run.plot=true"])
    sim = Simulation(cfg)
    path = tmp_path / "run.h5"
    summary = sim.run_until(path=path, progress=False)
    run = read_run(path)
    days = run.time / DAY
    panel = spatial_panel(path, summary, cfg.run.niche_threshold, sim.capacity)
    nadir = 0.25 + summary["nadir_day"]
    expected = {0.25: "treatment start", days[np.argmin(abs(days - nadir))]: "nadir", 1.0: "end"}
    assert [s.day for s in panel.snapshots] == pytest.approx(sorted(expected))
    for shot in panel.snapshots:
        i = int(np.argmin(abs(days - shot.day)))
        assert shot.label in (expected[days[i]], "nadir = end", "treatment start = nadir")
        np.testing.assert_array_equal(shot.P, run.frame("P", i))
        np.testing.assert_array_equal(shot.niche, run.frame("F", i).astype(float)
                                      + run.frame("M", i) >= cfg.run.niche_threshold * sim.capacity)
    i = int(np.argmin(abs(days - 0.25)))
    start = sum(run.frame(k, i).astype(float) for k in "SPR")
    np.testing.assert_array_equal(panel.bed, start >= 1e-3 * sim.capacity)
    np.testing.assert_array_equal(panel.vessels, run.static_map("vessels") > 0)
    fig = plot_summary(tmp_path / "p.png", sim.observables()["time"], sim.observables(),
                       summary, sim.drugs, spatial=panel)
    images = [ax for ax in fig.axes if ax.get_images()]
    assert len(images) == len(panel.snapshots)
    assert [ax.get_title() for ax in images][0] == "treatment start, day 0.25"

    def height(png):
        return struct.unpack(">II", png.read_bytes()[16:24])[1]
    plot_summary(tmp_path / "series.png", sim.observables()["time"], sim.observables(),
                 summary, sim.drugs)
    assert height(tmp_path / "run_summary.png") > 1.3 * height(tmp_path / "series.png")


def test_plot_of_a_run_inside_its_lead_in_says_when_treatment_starts(tmp_path):
    """No on-period: no "drug on" legend entry; the panel title says when the drug starts."""
    from spatialdtp.run.summary_plot import plot_summary
    t = np.linspace(0.0, 0.25 * DAY, 7)
    obs = {"S": np.full(7, 100.0), "P": np.full(7, 0.5), "R": np.full(7, 0.02),
           "burden": np.full(7, 100.52), "on_drug": np.zeros(7), "plasma_drug": np.zeros(7)}
    s = summarize(t, obs, RunConfig(), treatment_start_min=7 * DAY)
    fig = plot_summary(tmp_path / "lead.png", t, obs, s, ("drug",))
    top = fig.axes[0]
    assert top.get_title() == ("Tumour populations (treatment starts on day 7, after the end "
                               "of this run)")
    assert "drug on" not in [x.get_text() for x in top.get_legend().get_texts()]
