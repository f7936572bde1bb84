"""The niche measure (:mod:`spatialdtp.run.niche`) by hand: distances, the Mantel–Haenszel
contrast of persisters per initial tumour cell, the edge strata, the NaN reasons, and the
per-step observable and its reference in a run file.

Every expected value is computed in this file from the definition in the module
docstring (or by scipy's Euclidean distance transform), never read back from the module.
"""
import math

import numpy as np
import pytest

from spatialdtp.config import RunConfig
from spatialdtp.model.grid import Grid
from spatialdtp.model.state import FieldLayout, State
from spatialdtp.run import niche
from spatialdtp.run.observables import Observer

DX = 20.0
CAP = 10.0
LAYOUT = FieldLayout(substrates=("oxygen", "glucose", "hgf", "chemokine", "drug"), drugs=("drug",))


def geometry(near=50.0, far=50.0, edge_bin=1000.0, threshold=0.1):
    """Defaults here: one edge stratum, and near/far split at 50 µm."""
    return niche.NicheGeometry.of(RunConfig(niche_threshold=threshold, niche_distance=near,
                                            niche_far_distance=far, niche_edge_bin=edge_bin),
                                  CAP, DX)


# --------------------------------------------------------------------------- distances
@pytest.mark.parametrize("shape", [(17, 19), (9, 11, 13)])
def test_distance_to_mask_is_the_exact_euclidean_distance_and_limit_keeps_it_up_to_limit(shape):
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(1)
    mask = rng.random(shape) < 0.02
    mask[(0,) * len(shape)] = True                    # a niche in a corner
    exact = ndimage.distance_transform_edt(~mask, sampling=DX)
    np.testing.assert_allclose(niche.distance_to_mask(mask, DX), exact)
    cut = niche.distance_to_mask(mask, DX, limit=65.0)
    inside = exact <= 65.0
    np.testing.assert_allclose(cut[inside], exact[inside])
    assert np.all(cut[~inside] > 65.0)                # a lower bound beyond the limit


@pytest.mark.parametrize("shape", [(23, 29), (11, 13, 9)])
def test_squared_voxel_distance_is_scipys_in_float32_and_labels_split_where_the_microns_do(shape):
    """The labels' distance is the squared one in voxel² units: sums of squared integer
    offsets, exact in float32 (below 2**24). So near/far must come out exactly where the
    Euclidean distance in µm (scipy) puts them, also with thresholds that fall exactly on
    a voxel distance (dx·√5, dx·3; dx·√3 and dx·√6, whose squares come out just below 3 and 6
    in floating point) or between two (50 µm = dx·√6.25, dx·√5.6)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(7)
    mask = rng.random(shape) < 0.01
    mask[(0,) * len(shape)] = True
    exact_voxels2 = ndimage.distance_transform_edt(~mask) ** 2
    k = niche.squared_voxel_distance(mask, limit_voxels=4.0)
    assert k.dtype == np.float32
    inside = exact_voxels2 <= 16.0
    np.testing.assert_array_equal(k[inside], np.round(exact_voxels2[inside]))
    assert np.all(k[~inside] > 16.0)
    exact_um = ndimage.distance_transform_edt(~mask, sampling=DX)
    bed = np.ones(shape, bool)
    for near, far in [(DX * math.sqrt(5), DX * 3.0), (50.0, 50.0), (DX, DX * math.sqrt(8)),
                      (DX * math.sqrt(5.6), DX * math.sqrt(10.7)), (DX * math.sqrt(3), DX * math.sqrt(6))]:
        g = geometry(near=near, far=far)
        ref = niche.NicheReference(np.ones(shape), bed, np.zeros(shape, np.int32), 1)
        lab = niche.labels_of_mask(mask, ref, g) & ~np.uint8(niche.NICHE_BIT)
        want = np.full(shape, niche.NO_LABEL)
        want[exact_um <= near * (1 + 1e-6)] = 0          # on the threshold counts as near
        want[exact_um > far * (1 + 1e-6)] = 1
        np.testing.assert_array_equal(lab, want, err_msg=f"near {near}, far {far}")


def test_squared_voxel_distance_falls_back_to_float64_where_float32_is_not_exact():
    """Along 3000 voxels of two rows the largest shift is 2999: 2 × 2999² > 2**24, so
    float32 could round the squared distances; it must work in float64 and stay exact."""
    mask = np.zeros((3000, 2), bool)
    mask[0, 0] = True
    k = niche.squared_voxel_distance(mask)
    assert k.dtype == np.float64
    i, j = np.indices(mask.shape)
    np.testing.assert_array_equal(k, i**2 + j**2)


# --------------------------------------------------------------------------- the contrast
def test_contrast_is_the_mantel_haenszel_rate_ratio_worked_by_hand():
    """Two strata. s0: near P 4 over T0 2000, far P 1 over T0 3000; s1: near P 1 over
    1000, far P 2 over 2000. MH = (4·3000/5000 + 1·2000/3000) / (1·2000/5000 + 2·1000/3000)
    = (2.4 + 0.667) / (0.4 + 0.667) = 2.875 (the crude pooled ratio would be
    (5/3000)/(3/5000) = 2.78)."""
    # rows count, ΣP, ΣT0; columns near s0, s1, far s0, s1
    table = np.array([[2, 1, 3, 2], [4.0, 1.0, 1.0, 2.0], [2000.0, 1000.0, 3000.0, 2000.0]])
    c = niche.contrast_from_sums(table, n_niche=5, n_strata=2, geometry=geometry())
    expected = (4 * 3000 / 5000 + 1 * 2000 / 3000) / (1 * 2000 / 5000 + 2 * 1000 / 3000)
    assert c.value == pytest.approx(expected) and expected == pytest.approx(2.875)
    assert (c.near_voxels, c.far_voxels, c.niche_voxels, c.reason) == (3, 5, 5, "")


def disc(shape=(41, 41), radius=15.5):
    """A disc tumour bed (T0 = 1 inside) and each bed voxel's distance to the bed's edge."""
    ndimage = pytest.importorskip("scipy.ndimage")
    y, x = np.indices(shape)
    c = (np.array(shape) - 1) / 2
    bed = np.hypot(y - c[0], x - c[1]) <= radius
    return bed.astype(float), ndimage.distance_transform_edt(bed, sampling=DX), c


def test_edge_strata_keep_a_rim_effect_from_passing_for_a_niche_effect():
    """P per initial cell depends only on the distance to the tumour edge (3× at the rim),
    and the niches sit at the rim on one side. Pooled, near looks enriched (it is all rim);
    within each stratum near and far have the same rate, so the Mantel–Haenszel ratio is 1
    exactly: Σ r_s T_n,s T_f,s/T_s over the same sum."""
    T0, edge, c = disc()
    g = geometry(near=60.0, far=60.0, edge_bin=40.0)
    stratum = np.floor(edge / 40.0)
    P = T0 * np.where(stratum == 0, 3e-3, 1e-3)
    F = np.zeros_like(T0)
    F[int(c[0]), 2:5] = 5.0                            # CAFs just outside the left rim
    ref = niche.reference_of(T0, g)
    got = niche.niche_contrast(P, F, np.zeros_like(F), ref, g)
    assert got.value == pytest.approx(1.0, rel=1e-12)
    d = niche.distance_to_mask(F > 0, DX)
    near, far = (T0 > 0) & (d <= 60.0), (T0 > 0) & (d > 60.0)
    crude = (P[near].sum() / T0[near].sum()) / (P[far].sum() / T0[far].sum())
    # near is all rim (3×), far mostly inside: unstratified it reads ≈ 1.46 here
    assert crude > 1.2


def test_room_taken_by_cafs_is_not_a_loss_of_persisters():
    """CAFs fill half of the niche voxels, so the tumour started there at half density;
    with P proportional to T0 the persisters per initial cell are the same everywhere and
    the contrast is 1 (a density ratio would read 0.5 near the niches)."""
    T0, _, c = disc()
    F = np.zeros_like(T0)
    F[int(c[0]), 10:14] = 5.0                          # CAFs inside the tumour
    T0 = np.where(F > 0, 0.5, T0)
    P = 2e-3 * T0
    g = geometry(near=40.0, far=40.0)
    got = niche.niche_contrast(P, F, 0 * F, niche.reference_of(T0, g), g)
    assert got.value == pytest.approx(1.0, rel=1e-12)


def test_an_enrichment_near_niches_is_measured_as_its_ratio():
    """Double the persisters per initial cell within 40 µm of the niche, one stratum: the
    contrast is (2r)/(r) = 2."""
    T0, _, c = disc()
    F = np.zeros_like(T0)
    F[int(c[0]), int(c[1])] = 5.0
    d = np.hypot(*np.subtract(np.indices(T0.shape), c[:, None, None])) * DX
    P = np.where(d <= 40.0, 2e-3, 1e-3) * T0
    g = geometry(near=40.0, far=40.0)
    got = niche.niche_contrast(P, F, 0 * F, niche.reference_of(T0, g), g)
    assert got.value == pytest.approx(2.0, rel=1e-12)
    assert got.near_voxels == int(((d <= 40.0) & (T0 > 0)).sum())


def test_between_near_and_far_voxels_count_for_neither():
    """near 40 µm, far 80 µm: a voxel at 60 µm is in no set, whatever its persisters."""
    T0, _, c = disc()
    F = np.zeros_like(T0)
    F[int(c[0]), int(c[1])] = 5.0
    d = np.hypot(*np.subtract(np.indices(T0.shape), c[:, None, None])) * DX
    g = geometry(near=40.0, far=80.0)
    P1 = 1e-3 * T0
    P2 = np.where((d > 40.0) & (d <= 80.0), 0.5, 1e-3) * T0       # only the middle zone
    ref = niche.reference_of(T0, g)
    a, b = (niche.niche_contrast(P, F, 0 * F, ref, g) for P in (P1, P2))
    assert a.value == b.value == pytest.approx(1.0)
    assert a.near_voxels + a.far_voxels < int(T0.sum())


def test_the_niche_threshold_is_a_fraction_of_capacity():
    F = np.zeros((5, 5))
    g = geometry(threshold=0.25)                       # 2.5 cells/voxel at capacity 10
    F[2, 2] = 2.5
    assert niche.niche_voxels(F, 0 * F, g).sum() == 1
    F[2, 2] = 2.4999
    assert niche.niche_voxels(F, 0 * F, g).sum() == 0


# --------------------------------------------------------------------------- NaN
def test_every_undefined_contrast_says_why():
    T0, _, c = disc()
    g = geometry(near=40.0, far=40.0, edge_bin=40.0)
    ref = niche.reference_of(T0, g)
    zero = np.zeros_like(T0)
    P = 1e-3 * T0

    def reason(P=P, F=zero, ref=ref, geom=g):
        out = niche.niche_contrast(P, F, zero, ref, geom)
        assert math.isnan(out.value)
        return out.reason
    assert "not started" in reason(ref=None)
    assert "no niche voxel" in reason()
    everywhere = np.where(T0 > 0, 5.0, 0.0)            # every bed voxel is a niche: none far
    assert "beyond 40 µm" in reason(F=everywhere)
    far_away = zero.copy()
    far_away[0, 0] = 5.0                               # a niche in a corner, > 40 µm from the bed
    assert "within 40 µm" in reason(F=far_away)
    rim = zero.copy()
    rim[int(c[0]), 3:5] = 5.0                          # CAFs at the left rim (x = 5)
    close = niche.distance_to_mask(rim > 0, DX) <= 40.0      # persisters only near them
    assert "no persisters far" in reason(P=1e-3 * T0 * close, F=rim)
    empty = niche.reference_of(zero, g)
    assert "no tumour bed" in niche.niche_contrast(P, rim, zero, empty, g).reason


def test_strata_without_both_near_and_far_voxels_leave_the_contrast_undefined():
    """A strip tumour with the edge strata as columns of the table: near voxels only in
    stratum 0 and far ones only in stratum 1 give no comparison."""
    table = np.array([[3, 0, 0, 4], [1.0, 0, 0, 2.0], [10.0, 0, 0, 20.0]])
    c = niche.contrast_from_sums(table, n_niche=2, n_strata=2, geometry=geometry())
    assert math.isnan(c.value) and "stratum" in c.reason


# --------------------------------------------------------------------------- observable
def niche_state():
    """A disc tumour with a CAF patch at its left rim; persisters enriched near it."""
    st = State(Grid((21, 21), DX), LAYOUT, dtype=np.float64)
    st["oxygen"] = 38.0
    y, x = np.indices((21, 21))
    bed = np.hypot(y - 10, x - 10) <= 8.5
    st["S"] = np.where(bed, 3.0, 0.0)
    st["F"][9:12, 1:4] = 4.0
    d = np.hypot(y - 10, x - 2) * DX
    st["P"] = np.where(bed, np.where(d <= 60.0, 0.02, 0.01), 0.0)
    return st


def test_the_observable_is_the_measure_of_the_fields_with_its_counts():
    st = niche_state()
    run = RunConfig(niche_threshold=0.2, niche_distance=60.0, niche_far_distance=100.0,
                    niche_edge_bin=40.0)
    obs = Observer(st.grid, LAYOUT, run, capacity=CAP, drugs=("drug",))
    o = obs.compute(st, {"drug": 0.0}, {"drug": False}, t=0.0)
    g = niche.NicheGeometry.of(run, CAP, DX)
    T0 = st["S"] + st["P"] + st["R"]                   # the reference: captured at t = 0
    want = niche.niche_contrast(st["P"], st["F"], st["M"], niche.reference_of(T0, g), g)
    assert o["niche_contrast"] == pytest.approx(want.value, rel=1e-12)
    assert o["niche_contrast"] > 1.5
    assert (o["niche_voxels"], o["niche_near_voxels"], o["niche_far_voxels"]) == (
        9.0, float(want.near_voxels), float(want.far_voxels))
    # the reference stays the tumour at the first call: killing the tumour later does not
    # move it, and what is left is counted per *initial* tumour cell
    st["S"][...] *= 1e-3
    st["P"][...] *= 0.5
    later = obs.compute(st, {"drug": 0.0}, {"drug": False}, t=100.0)
    assert later["niche_contrast"] == pytest.approx(o["niche_contrast"], rel=1e-12)


def test_labels_kept_between_steps_are_the_labels_of_the_fields_now():
    """The observer keeps the niche labels while the niche voxels stay the same; they must
    always equal the labels made afresh from the fields, and be made again (and only
    then) when a niche voxel appears or goes."""
    st = niche_state()
    run = RunConfig(niche_threshold=0.2, niche_distance=60.0, niche_far_distance=100.0,
                    niche_edge_bin=40.0)
    obs = Observer(st.grid, LAYOUT, run, capacity=CAP, drugs=("drug",))
    g = niche.NicheGeometry.of(run, CAP, DX)

    def fresh():
        return niche.labels(st["F"], st["M"], obs.reference, g)

    obs.compute(st, {"drug": 0.0}, {"drug": False}, t=0.0)      # takes the reference
    first = obs.niche_labels(st)
    made = obs.label_updates
    st["F"][...] *= 1.01         # stroma changes, no voxel crosses the threshold
    assert np.array_equal(obs.niche_labels(st), fresh()) and obs.label_updates == made
    far = tuple(int(i) for i in np.argwhere((first & niche.NO_LABEL) == NO_FAR(obs))[0])
    st["F"][far] = CAP           # a new niche voxel where there was a far bed voxel
    now = obs.niche_labels(st)
    assert obs.label_updates == made + 1
    assert np.array_equal(now, fresh()) and not np.array_equal(now, first)
    st["F"][far] = 0.0           # and it goes again
    assert np.array_equal(obs.niche_labels(st), first)
    obs.set_reference(st["S"] * 0.0 + CAP)   # another reference: another tumour bed
    assert np.array_equal(obs.niche_labels(st), fresh())
    assert not np.array_equal(fresh(), first)


def NO_FAR(obs):
    """The label of far bed voxels of the first edge stratum."""
    return obs.reference.n_strata


def test_before_treatment_start_there_is_no_reference_and_the_counts_say_so():
    st = niche_state()
    obs = Observer(st.grid, LAYOUT, RunConfig(), capacity=CAP, drugs=("drug",),
                   treatment_start=1440.0)
    o = obs.compute(st, {"drug": 0.0}, {"drug": False}, t=0.0)
    assert math.isnan(o["niche_contrast"]) and math.isnan(o["niche_near_voxels"])
    assert "not started" in niche.reason_of(o["niche_contrast"], o["niche_voxels"],
                                            o["niche_near_voxels"], o["niche_far_voxels"],
                                            obs.geometry)
    assert obs.reference is None
    obs.compute(st, {"drug": 0.0}, {"drug": False}, t=1440.0)
    assert obs.reference is not None


def test_a_run_keeps_its_reference_in_the_run_file_and_resumes_with_it(tmp_path):
    """Treatment starts at day 0.5: the reference is the tumour then, stored as
    /static/tumour_start and in the checkpoint; a resumed run goes on with it."""
    from spatialdtp.api import load_config
    from spatialdtp.run.runfile import read_run
    from spatialdtp.run.simulation import Simulation

    cfg = load_config(["grid.shape=[24,24]", "tissue.tumour.radius=150", "run.dt=60",
                       "run.progress=false", "run.plot=false", "backend=numpy",
                       "treatment.lead_in_days=0", "treatment.drugs.drug.schedule.start_day=0.5",
                       "run.output_interval_hours=6", "run.checkpoint_interval_hours=6"])
    sim = Simulation(cfg)
    assert sim.observer.reference is None
    sim.run_until(days=1.0, path=tmp_path / "run.h5")
    o = sim.observables()
    before = o["time"] < 0.5 * 1440 - 1e-9
    assert np.all(np.isnan(o["niche_near_voxels"][before]))
    assert np.all(np.isfinite(o["niche_near_voxels"][~before]))
    run = read_run(tmp_path / "run.h5")
    stored = run.static_map("tumour_start")
    np.testing.assert_array_equal(stored, sim.backend.to_host(sim.observer.reference.T0))
    resumed = Simulation.resume(tmp_path / "run.h5", days=1.25)
    np.testing.assert_array_equal(resumed.backend.to_host(resumed.observer.reference.T0),
                                  stored)


def test_label_sums_are_each_labels_count_and_totals():
    """label_sums (histograms over the label values) against a sum per label, with every
    label, "none" and the niche bit present."""
    from spatialdtp.run.niche import NICHE_BIT, NO_LABEL, label_sums

    rng = np.random.default_rng(3)
    n_labels = 6
    lab = rng.integers(0, n_labels + 1, (9, 8)).astype(np.uint8)
    lab[lab == n_labels] = NO_LABEL
    lab |= (rng.uniform(size=lab.shape) < 0.3).astype(np.uint8) * NICHE_BIT
    P, T0 = rng.uniform(0, 5, lab.shape).astype(np.float32), rng.uniform(0, 5, lab.shape)
    table, niche = label_sums(lab, P, T0, n_labels)
    low = lab & NO_LABEL
    for k in range(n_labels):
        at = low == k
        assert at.any()
        assert table[0, k] == at.sum()
        assert table[1, k] == pytest.approx(P[at].astype(np.float64).sum(), rel=1e-13)
        assert table[2, k] == pytest.approx(T0[at].sum(), rel=1e-13)
    assert niche == ((lab & NICHE_BIT) > 0).sum()
    assert label_sums(lab, P, T0, 0)[0].shape == (3, 0)
