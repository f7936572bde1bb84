"""The experiments from the biology give their qualitative results on small grids.

Each test composes the arms of a preset in ``conf/experiment/`` (through
:func:`spatialdtp.experiments.arms`, i.e. ``api.load_config``) on a 32×32 section
(0.64 mm, a 200-µm tumour nest; 40×40 with a 300-µm nest and three CAF clusters where the
niche contrast needs tumour both near and far from niches) with 2-hour steps, runs them for
two to five weeks and checks the result the README reports for the full-size sweeps. The
seed here (7) is not one of the sweeps' seeds. Runs shared between tests (the targeted drug
alone on the same section) are computed once. Each assertion states the rule it follows
from; each was checked to fail with the compared arms swapped (and the niche test with the
HGF–MET signal removed from the model).
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from spatialdtp import experiments as ex
from spatialdtp.api import load_config

SMALL = ("grid.shape=[32,32]", "tissue.tumour.radius=200.0", "run.dt=120.0",
         "run.progress=false", "seed=7")
_cache: dict[str, ex.ArmRun] = {}

# The 32×32 section's 200-µm nest has no tumour beyond run.niche_far_distance (150 µm) of
# its six CAF clusters; a 300-µm nest on 40×40 with three clusters has both zones in every
# stratum of distance to the edge that holds near voxels.
NICHE = ("grid.shape=[40,40]", "tissue.tumour.radius=300.0", "tissue.stroma.n_clusters=3")


def run(experiment: str, arm: str, days: float, *extra: str) -> ex.ArmRun:
    """One arm of a preset on the small section, run ``days``; identical configs run once."""
    overrides = ex.arms(experiment)[arm] + list(SMALL) + [f"run.days={days}", *extra]
    cfg = load_config(overrides)
    # the experiment presets differ only in run length and output intervals
    cfg.run.output_interval_hours = cfg.run.checkpoint_interval_hours = 24.0
    key = repr(cfg)
    if key not in _cache:
        from spatialdtp.run.simulation import Simulation

        sim = Simulation(cfg)
        sim.run_until(progress=False)
        _cache[key] = ex.ArmRun.from_simulation(sim, arm)
    return _cache[key]


def test_every_experiment_preset_sweeps_its_arms_and_seeds():
    assert set(ex.EXPERIMENTS) <= {p.stem for p in (ex.preset_path("schedules").parent).glob("*.yaml")}
    expected = {"schedules": 3, "combinations": 5, "niche": 4, "persister_origin": 2}
    for name, n in expected.items():
        assert len(ex.arms(name)) == n
        assert len(ex.sweep_params(name)["seed"]) >= 3
        for overrides in ex.arms(name).values():
            load_config(overrides)        # every arm composes and validates
    with pytest.raises(ValueError, match="experiment='nope'.*presets are .*schedules"):
        ex.arms("nope")


# --------------------------------------------------------------------------- schedules
def test_adaptive_and_intermittent_leave_fewer_resistant_cells_than_continuous():
    """R arises from P only under drug (μE) and grows into the space the drug clears, so
    the less time on drug, the fewer resistant cells at the same day. Persisters revert
    to sensitivity off drug and die when it comes back: after one week off, intermittent
    dosing has fewer than continuous dosing. (Adaptive dosing keeps a standing pool that
    outnumbers continuous dosing's only later, from about day 20: README.)"""
    day = 14.0                                  # after the preset's 14-day lead-in
    runs = {arm: run("schedules", arm, 14.0 + day)
            for arm in ("continuous", "intermittent", "adaptive")}
    R = {arm: ex.value_at(r, "R", day) for arm, r in runs.items()}
    P = {arm: ex.value_at(r, "P", day) for arm, r in runs.items()}
    assert R["adaptive"] < R["intermittent"] < R["continuous"], R
    assert R["adaptive"] < 0.6 * R["continuous"], R
    # one week off lets persisters revert (ρ0: e^(-0.7) of them stay) before the drug
    # returns; re-induction makes up part of it (measured 0.83 here)
    assert P["intermittent"] < P["continuous"], P


@pytest.mark.slow
def test_adaptive_dosing_delays_progression():
    """Under continuous dosing the sensitive cells are gone within days and resistant cells
    regrow the tumour: their crowding-limited density is below the sensitive cells' (fitness
    cost), so they pass 1.2 × baseline only by expanding into the tissue around the nest,
    which they do within the preset's 480 days (README: day 243–255). Adaptive dosing keeps
    the sensitive cells, which hold the room R would grow into: it progresses later (README:
    by 47–61 days). About 70 s."""
    continuous = run("schedules", "continuous", 494.0)
    adaptive = run("schedules", "adaptive", 494.0)
    ttp_c = ex.readouts("schedules", continuous)["time_to_progression_days"]
    ttp_a = ex.readouts("schedules", adaptive)["time_to_progression_days"]
    assert math.isfinite(ttp_c), ttp_c
    assert not ttp_a <= ttp_c, (ttp_c, ttp_a)        # later, or not within the horizon


# --------------------------------------------------------------------------- combinations
def test_every_partner_lowers_persisters_below_the_targeted_drug_alone():
    day = 14.0
    alone = ex.value_at(run("combinations", "continuous", day), "P", day)
    P = {arm: ex.value_at(run("combinations", arm, day), "P", day)
         for arm in ("targeted_kdm5i", "targeted_oxphos", "targeted_gpx4i", "targeted_meti")}
    assert all(p < alone for p in P.values()), (alone, P)
    # the persister-killing partners clear the pool; the others trim it
    assert P["targeted_oxphos"] < 1e-3 * alone and P["targeted_gpx4i"] < 1e-3 * alone
    assert P["targeted_kdm5i"] < 0.9 * alone


def test_the_met_inhibitor_lowers_persisters_most_near_the_niches():
    """HGF from CAFs/TAMs is what the MET inhibitor blocks: voxel for voxel on the same
    tissue, its persister reduction is larger near niches than far from them."""
    day = 14.0
    alone = run("combinations", "continuous", day, *NICHE)
    near, far = ex.paired_near_far_ratio(run("combinations", "targeted_meti", day, *NICHE), alone)
    assert near < far < 1.0, (near, far)


# --------------------------------------------------------------------------- niche
def test_the_niche_shelters_persisters_through_hgf_met():
    day = 14.0
    rich = run("niche", "section + continuous", day, *NICHE)
    depleted = run("niche", "depleted + continuous", day, *NICHE)
    rich_meti = run("niche", "section + targeted_meti", day, *NICHE)
    depleted_meti = run("niche", "depleted + targeted_meti", day, *NICHE)

    def surviving(r):
        return ex.value_at(r, "P", day) / r.baseline

    assert surviving(rich) > surviving(depleted), (surviving(rich), surviving(depleted))
    none = ex.niche_contrast(depleted)
    assert math.isnan(none.value) and "no niche voxel" in none.reason
    # persisters are enriched near the niches, by what the rates predict from the HGF the
    # zones hold (the two-zone estimate): the excess over 1 agrees to within a factor of 2
    # (the estimate averages H over a zone and ignores motility, each worth less than half
    # the excess here)
    contrast = ex.niche_contrast(rich)
    estimate = ex.two_zone_estimate(rich)["contrast_estimate"]
    assert contrast.value > 1.0 and estimate > 1.0, (contrast, estimate)
    assert 0.5 < (contrast.value - 1) / (estimate - 1) < 2.0, (contrast, estimate)
    # the MET inhibitor removes the enrichment (H falls ~10-fold) without touching oxygen
    blocked = ex.niche_contrast(rich_meti).value
    assert abs(blocked - 1.0) < 0.5 * (contrast.value - 1.0), (blocked, contrast)
    np.testing.assert_allclose(ex.zone_means(rich_meti, "oxygen", rich),
                               ex.zone_means(rich, "oxygen"), rtol=1e-3)
    # it removes part of the shelter; without a niche it has nothing to block
    cut_rich = surviving(rich_meti) / surviving(rich)
    cut_depleted = surviving(depleted_meti) / surviving(depleted)
    assert cut_rich < 0.97 and cut_rich < cut_depleted, (cut_rich, cut_depleted)


# --------------------------------------------------------------------------- origin
def test_after_a_drug_holiday_only_preexisting_persisters_keep_a_standing_pool():
    """Over the holiday both populations revert (ρ0); the pre-existing one is replenished
    from the regrowing sensitive cells (α0 S), the drug-induced one is not. On rechallenge
    the drug makes new persisters from those cells only in the drug-induced model."""
    holiday = ("treatment.drugs.drug.schedule.on_days=7.0",
               "treatment.drugs.drug.schedule.off_days=28.0")
    days = 37.0
    pre = ex.holiday_readouts(run("persister_origin", "preexisting", days, *holiday))
    ind = ex.holiday_readouts(run("persister_origin", "induced", days, *holiday))
    # both pools revert at ρ0 and lose d_P − r_P g f alike; only the pre-existing one gains
    # α0 S from the regrowing sensitive cells, so it keeps more (README: by 7–12 %)
    assert pre["P_kept"] > ind["P_kept"], (pre, ind)
    assert pre["persister_share_end"] > ind["persister_share_end"], (pre, ind)
    # without drug-induced entry nothing adds to P under drug: its maximum over the first
    # two days is where it starts (gain 1); drug-induced entry α_E E S adds to it
    assert pre["rechallenge_P_gain"] == pytest.approx(1.0, abs=1e-9), pre
    assert ind["rechallenge_P_gain"] > 1.0, ind


def test_readout_table_marks_cell_counts_below_one_cell():
    """A read-out that counts cells (P, R at a day) is marked "< 1 cell" where its mean over
    seeds is below one cell; fractions and days are not."""
    from spatialdtp.studies.experiments.readouts import is_cell_count, readouts

    runs = [run("combinations", "continuous", 2.0), run("combinations", "targeted_oxphos", 2.0)]
    text = ex.readout_table("combinations", runs)
    marked = 0
    for line, r in zip(text.splitlines(), runs):
        for key, value in readouts("combinations", r).items():
            part = re.search(rf"(?:^|; |: ){re.escape(key)}=([^;]*)", line).group(1)
            expected = is_cell_count(key) and 0 < value < 1
            assert part.endswith("(< 1 cell)") is expected, (key, value, part)
            marked += expected
    assert marked >= 1                                   # R after two days: a fraction of a cell
    assert is_cell_count("P_day28") and is_cell_count("P_holiday_end")
    assert not is_cell_count("P_end_per_baseline") and not is_cell_count("P_kept")


def test_combinations_figure_shows_removed_persisters_on_a_linear_percent_axis(tmp_path):
    """experiment.png's third panel: % of persisters removed against the targeted drug
    alone, on a linear axis that ends just above 100 %, every bar inside it, each bar's
    value written on it, the legend below the axes and the axis label inside the figure."""
    arms = ("continuous", "targeted_oxphos", "targeted_meti")
    runs = [run("combinations", arm, 2.0, *NICHE) for arm in arms]
    png = ex.plot_experiment("combinations", runs, tmp_path / "experiment.png")
    assert png.stat().st_size > 10_000
    fig = ex.experiment_figure("combinations", runs)
    fig.canvas.draw()
    assert [p for p in fig.axes[0].patches if p.get_gid() == "sub-cell"]   # P below one cell
    ax = fig.axes[2]
    assert ax.get_yscale() == "linear"
    low, high = ax.get_ylim()
    assert 100.0 < high <= 120.0
    bars = [b.get_height() for b in ax.patches if np.isfinite(b.get_height())]
    assert bars and all(low <= h <= 100.0 + 1e-9 for h in bars)
    assert len(ax.texts) == len(ax.patches)          # each bar labelled with its value
    renderer = fig.canvas.get_renderer()
    box, legend = ax.get_window_extent(renderer), ax.get_legend().get_window_extent(renderer)
    assert legend.y1 <= box.y0                       # below the axes, clear of the bars
    label = ax.yaxis.label.get_window_extent(renderer)
    assert label.x0 >= 0 and label.y0 >= 0 and label.y1 <= fig.bbox.height
