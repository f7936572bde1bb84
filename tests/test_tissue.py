"""The initial tissue: geometry of tumour, vessels, stroma and TAMs; label images; files."""
import time
import warnings

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from spatialdtp.config import CELL_TYPES, ConfigError, TissueConfig
from spatialdtp.model.grid import Grid
from spatialdtp.model.tissue import TAM_REACH, build_tissue, load_array

CAP = 8000.0 / 2494.0          # default capacity: a 20 µm voxel over the cell volume
SUBSTRATES = {"oxygen": 38.0, "glucose": 5.0, "hgf": 0.0, "chemokine": 0.0}
GRIDS = {"2D": Grid((128, 128), 20.0), "3D": Grid((64, 64, 64), 20.0)}


def build(cfg=None, grid=GRIDS["2D"], seed=0, capacity=CAP):
    return build_tissue(cfg or TissueConfig(), grid, capacity, SUBSTRATES,
                        np.random.default_rng(seed))


def tumour_cells(out):
    return out["S"] + out["P"] + out["R"]


def total_cells(out):
    return sum(out[c] for c in CELL_TYPES)


def distance_to(mask, grid):
    """Exact distance (µm) from every voxel centre to the nearest True voxel centre."""
    return ndimage.distance_transform_edt(~mask) * grid.dx


def distance_to_point(grid, point):
    return np.sqrt(sum((m - p) ** 2 for m, p in zip(grid.mesh(), point)))


def bare(**changes):
    """A config with only what a test looks at: no tumour, CAFs, TAMs unless asked."""
    cfg = TissueConfig()
    cfg.tumour.density = 0.0
    cfg.stroma.kind = "none"
    cfg.macrophages.density = 0.0
    for path, value in changes.items():
        section, name = path.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


# --------------------------------------------------------------------------- defaults
@pytest.mark.parametrize("dim", ["2D", "3D"])
def test_default_tissue_is_nonnegative_within_capacity_with_vessels(dim):
    grid = GRIDS[dim]
    cfg = TissueConfig()
    cfg.tumour.density = 0.6            # denser than the default 0.3, so patches overflow
    out = build(cfg, grid=grid)
    assert set(out) == {"vessels", *CELL_TYPES}
    for name, a in out.items():
        assert a.shape == grid.shape and a.dtype == np.float64, name
        assert np.isfinite(a).all() and a.min() >= 0, name
    assert total_cells(out).max() <= CAP * (1 + 1e-12)
    # Tumour (0.6) and CAF patches (0.5) overlap, so the capacity rule must have bitten.
    assert total_cells(out).max() == pytest.approx(CAP)
    assert set(np.unique(out["vessels"])) == {0.0, 1.0}
    assert out["F"].max() > 0 and out["M"].max() > 0


@pytest.mark.parametrize("dim, center", [("2D", [0.4, 0.6]), ("3D", [0.45, 0.5, 0.55])])
def test_tumour_centroid_sits_at_configured_centre(dim, center):
    grid = GRIDS[dim]
    cfg = TissueConfig()
    cfg.tumour.center = center
    T = tumour_cells(build(cfg, grid))
    centroid = np.array([(T * m).sum() / T.sum() for m in grid.mesh()])
    expected = np.array(center) * np.array(grid.extent)
    assert np.abs(centroid - expected).max() < grid.dx
    # Disc/ball of radius 400 µm: full density inside, nothing beyond the one-voxel edge.
    d = distance_to_point(grid, expected)
    assert T[d > 400 + grid.dx].max() == 0
    pure = (d < 400 - grid.dx) & (build(cfg, grid)["F"] == 0) & (build(cfg, grid)["M"] == 0)
    np.testing.assert_allclose(T[pure], cfg.tumour.density * CAP)


@pytest.mark.parametrize("dim", ["2D", "3D"])
def test_persister_and_resistant_fractions_of_tumour_cells(dim):
    cfg = TissueConfig()
    cfg.tumour.persister_fraction = 0.003
    cfg.tumour.resistant_fraction = 1e-4
    out = build(cfg, GRIDS[dim])
    T = tumour_cells(out).sum()
    # Proportional capacity scaling keeps the ratios exact.
    assert out["P"].sum() / T == pytest.approx(0.003, rel=1e-9)
    assert out["R"].sum() / T == pytest.approx(1e-4, rel=1e-9)


@pytest.mark.parametrize("dim", ["2D", "3D"])
def test_same_seed_same_tissue_other_seed_other_tissue(dim):
    a, b, c = (build(grid=GRIDS[dim], seed=s) for s in (7, 7, 8))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["vessels"], c["vessels"])
    assert not np.array_equal(a["F"], c["F"])


# --------------------------------------------------------------------------- vessels
def mean_vessel_distance(kind, spacing, grid, seeds=(0, 1)):
    """Mean distance from a tissue (non-vessel) voxel to the nearest vessel voxel."""
    values = []
    for seed in seeds:
        v = build(bare(vessels__kind=kind, vessels__spacing=spacing, vessels__radius=5.0),
                  grid, seed)["vessels"] > 0
        values.append(distance_to(v, grid)[~v].mean())
    return float(np.mean(values))


@pytest.mark.parametrize("kind, dim, theory", [
    # Boolean model of straight segments of length 3 s with length density 1/s:
    # P(d > r) = exp(-2r/s - pi r^2/(3 s^2)), mean 0.376 s (axis distance).
    ("network", "2D", 0.376),
    # Isotropic fibres in 3D with L_V = 1/s^2 and Poisson points in 2D: mean s/2.
    ("network", "3D", 0.5),
    ("points", "2D", 0.5),
])
def test_mean_distance_to_nearest_vessel_scales_with_spacing(kind, dim, theory):
    grid = Grid((256, 256), 10.0) if dim == "2D" else Grid((64, 64, 64), 10.0)
    near, far = (mean_vessel_distance(kind, s, grid) for s in (100.0, 200.0))
    assert 1.6 < far / near < 2.4
    # Within a third of the fibre-process estimate (curvature, voxelisation, edges).
    for s, d in ((100.0, near), (200.0, far)):
        assert abs(d / s - theory) < theory / 3, (s, d)


def test_points_in_3d_are_tubes_along_z_at_the_2d_density():
    grid = Grid((16, 128, 128), 10.0)
    v = build(bare(vessels__kind="points", vessels__spacing=100.0, vessels__radius=5.0),
              grid)["vessels"]
    for z in range(grid.shape[0]):
        np.testing.assert_array_equal(v[z], v[0])
    n_tubes = ndimage.label(v[0] > 0)[1]
    expected = 1280.0**2 / 100.0**2          # round(A / s^2) cross-sections, some merge
    assert 0.7 * expected <= n_tubes <= expected


@pytest.mark.parametrize("kind", ["network", "points"])
@pytest.mark.parametrize("dim", ["2D", "3D"])
def test_no_vessel_within_margin_of_tumour_centre(kind, dim):
    grid = GRIDS[dim]
    cfg = TissueConfig()
    cfg.vessels.kind = kind
    cfg.vessels.margin = 300.0
    v = build(cfg, grid)["vessels"] > 0
    d = distance_to_point(grid, np.array(grid.extent) / 2)
    assert d[v].min() >= 300.0
    assert d[v].min() < 300.0 + 200.0      # vessels resume right beyond the margin


def test_a_vessel_exists_even_when_spacing_dwarfs_the_grid():
    for kind in ("network", "points"):
        grid = Grid((3, 3), 1.0)
        cfg = bare(vessels__kind=kind, vessels__spacing=1.0e4, vessels__radius=0.1)
        for seed in range(5):
            assert build(cfg, grid, seed)["vessels"].sum() >= 1


def test_margin_covering_the_grid_still_leaves_one_vessel_with_a_warning():
    cfg = bare(vessels__margin=1.0e6)
    with pytest.warns(UserWarning, match="tissue.vessels.margin"):
        v = build(cfg)["vessels"]
    assert v.sum() == 1


# --------------------------------------------------------------------------- stroma, TAMs
def test_stroma_bands_are_periodic_slabs_across_x():
    grid = Grid((32, 160), 10.0)                 # x extent 1600 µm = 4 band periods
    cfg = bare(stroma__kind="bands", stroma__band_width=100.0, stroma__band_spacing=400.0)
    F = build(cfg, grid)["F"] / (0.5 * CAP)      # covered fraction of each voxel
    np.testing.assert_array_equal(F, np.broadcast_to(F[0], F.shape))   # runs along y
    np.testing.assert_allclose(F[0, 40:], F[0, :-40], atol=1e-12)      # period 400 µm
    assert F.mean() == pytest.approx(100.0 / 400.0, rel=1e-9)          # width / spacing
    assert F.min() == 0.0 and F.max() == pytest.approx(1.0)
    # Each period holds one band: 10 voxels fully covered, or 9 plus two partial edges.
    full = (F[0, :40] > 1 - 1e-9).sum()
    assert full in (9, 10)


def test_stroma_clusters_straddle_the_tumour_margin():
    grid = GRIDS["2D"]
    cfg = TissueConfig()
    out = build(cfg, grid)
    F = out["F"]
    d = distance_to_point(grid, np.array(grid.extent) / 2)
    R, r = cfg.tumour.radius, cfg.stroma.cluster_radius
    present = F > 0
    assert d[present].min() >= 0.7 * R - r - grid.dx
    assert d[present].max() <= 1.1 * R + r + grid.dx
    assert 1 <= ndimage.label(present)[1] <= cfg.stroma.n_clusters
    assert present[d < R - grid.dx].any() and present[d > R + grid.dx].any()
    # Outside the tumour a patch holds caf_density * capacity (+ TAMs: under capacity).
    alone = present & (tumour_cells(out) == 0)
    assert F[alone].max() == pytest.approx(0.5 * CAP)


@pytest.mark.parametrize("dim", ["2D", "3D"])
def test_tams_sit_within_reach_of_caf_patches(dim):
    grid = GRIDS[dim]
    cfg = TissueConfig()
    cfg.tumour.density = 0.0                      # no capacity scaling of M
    out = build(cfg, grid)
    near = distance_to(out["F"] > 0, grid) <= TAM_REACH
    np.testing.assert_array_equal(out["M"] > 0, near)
    np.testing.assert_allclose(out["M"][near], 0.05 * CAP)


def test_tams_near_vessels_and_uniform():
    grid = GRIDS["2D"]
    cfg = bare(macrophages__near="vessels", macrophages__density=0.1)
    out = build(cfg, grid)
    near = distance_to(out["vessels"] > 0, grid) <= TAM_REACH
    np.testing.assert_array_equal(out["M"] > 0, near)
    assert not near.all()
    cfg.macrophages.near = "uniform"
    np.testing.assert_allclose(build(cfg, grid)["M"], 0.1 * CAP)


def test_none_kinds_give_zero_fields():
    cfg = TissueConfig()
    cfg.vessels.kind = "none"
    cfg.stroma.kind = "none"
    with pytest.warns(UserWarning, match="no CAFs"):
        out = build(cfg)
    for name in ("vessels", "F", "M"):
        assert not out[name].any(), name
    assert tumour_cells(out).sum() > 0
    cfg.tumour.density = 0.0
    cfg.macrophages.density = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = build(cfg)
    assert not any(out[name].any() for name in out)


# --------------------------------------------------------------------------- label images
MAPPING = {"1": "vessel", "2": "tumour", "3": "caf", "4": "tam", "5": "background"}


def expected_from_labels(labels, cfg):
    t = cfg.tumour
    tumour = np.where(labels == 2, t.density * CAP, 0.0)
    return {"vessels": (labels == 1).astype(float),
            "S": tumour * (1 - t.persister_fraction - t.resistant_fraction),
            "P": tumour * t.persister_fraction,
            "R": tumour * t.resistant_fraction,
            "F": np.where(labels == 3, cfg.stroma.caf_density * CAP, 0.0),
            "M": np.where(labels == 4, cfg.macrophages.density * CAP, 0.0)}


@pytest.mark.parametrize("ext, shape", [(".npy", (6, 8)), (".tif", (6, 8)),
                                        (".npy", (3, 4, 5)), (".tiff", (3, 4, 5))])
def test_label_image_round_trip(tmp_path, ext, shape):
    labels = np.random.default_rng(1).integers(0, 6, size=shape).astype(np.uint16)
    labels.flat[0] = 7                            # unmapped: background, with a warning
    path = str(tmp_path / f"labels{ext}")
    if ext == ".npy":
        np.save(path, labels)
    else:
        tifffile.imwrite(path, labels, photometric="minisblack")
    cfg = TissueConfig()
    cfg.labels.path = path
    cfg.labels.mapping = dict(MAPPING)
    with pytest.warns(UserWarning, match=r"\[7\]") as record:
        out = build(cfg, Grid(shape, 20.0))
    assert len(record) == 1                       # once, and 0 is not reported
    for name, want in expected_from_labels(labels, cfg).items():
        np.testing.assert_array_equal(out[name], want, err_msg=name)


def test_label_image_must_hold_integers(tmp_path):
    path = str(tmp_path / "labels.npy")
    np.save(path, np.full((4, 4), 1.5))
    cfg = TissueConfig()
    cfg.labels.path = path
    cfg.labels.mapping = {"1": "vessel"}
    with pytest.raises(ValueError, match="tissue.labels.path.*integer"):
        build(cfg, Grid((4, 4), 20.0))


# --------------------------------------------------------------------------- files
def test_files_overwrite_a_substrate_and_a_cell_field(tmp_path):
    grid = GRIDS["2D"]
    rng = np.random.default_rng(3)
    oxygen, S = rng.uniform(0, 40, grid.shape), rng.uniform(0, 1, grid.shape)
    np.save(tmp_path / "oxygen.npy", oxygen)
    tifffile.imwrite(tmp_path / "S.tif", S.astype(np.float32))
    cfg = bare()
    cfg.files = {"oxygen": str(tmp_path / "oxygen.npy"), "S": str(tmp_path / "S.tif")}
    out = build(cfg, grid)
    np.testing.assert_array_equal(out["oxygen"], oxygen)
    np.testing.assert_array_equal(out["S"], S.astype(np.float32))
    assert "glucose" not in out                   # the caller fills uniform substrates
    np.testing.assert_array_equal(out["vessels"], build(bare(), grid)["vessels"])


def test_loaded_cells_over_capacity_are_scaled_proportionally(tmp_path):
    grid = Grid((8, 8), 20.0)
    np.save(tmp_path / "S.npy", np.full(grid.shape, 2 * CAP))
    np.save(tmp_path / "P.npy", np.full(grid.shape, 2 * CAP))
    cfg = bare()
    cfg.files = {"S": str(tmp_path / "S.npy"), "P": str(tmp_path / "P.npy")}
    with pytest.warns(UserWarning, match="capacity"):
        out = build(cfg, grid)
    np.testing.assert_allclose(out["S"], CAP / 2)
    np.testing.assert_allclose(out["P"], CAP / 2)


@pytest.mark.parametrize("name, values, message", [
    ("oxygen", np.zeros((5, 5)), r"tissue.files.oxygen=.*shape \(5, 5\).*\(8, 8\)"),
    ("oxygen", -np.ones((8, 8)), r"tissue.files.oxygen=.*negative"),
    ("S", np.full((8, 8), np.nan), r"tissue.files.S=.*NaN"),
    ("vessels", np.full((8, 8), 2.0), r"tissue.files.vessels=.*\[0, 1\]"),
])
@pytest.mark.parametrize("ext", [".npy", ".tif"])
def test_bad_files_are_refused_by_name(tmp_path, name, values, message, ext):
    path = str(tmp_path / f"{name}{ext}")
    if ext == ".npy":
        np.save(path, values)
    else:
        tifffile.imwrite(path, values)
    cfg = bare()
    cfg.files = {name: path}
    with pytest.raises(ValueError, match=message):
        build(cfg, Grid((8, 8), 20.0))


def test_load_array_names_key_and_refuses_other_formats(tmp_path):
    with pytest.raises(ConfigError, match="tissue.files.S=.*no such file"):
        load_array(str(tmp_path / "missing.npy"), (4, 4), "tissue.files.S")
    (tmp_path / "a.csv").write_text("1,2")
    with pytest.raises(ValueError, match=r"tissue.files.S=.*\.csv"):
        load_array(str(tmp_path / "a.csv"), (4, 4), "tissue.files.S")
    cfg = bare()
    cfg.files = {"nutrient": str(tmp_path / "a.npy")}
    with pytest.raises(ValueError, match="tissue.files.nutrient"):
        build(cfg, Grid((4, 4), 20.0))


# --------------------------------------------------------------------------- speed
def _best_build_time(grid: Grid, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the small grids' tumour reaches their faces
            build(grid=grid)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("small, large", [((128, 128), (512, 512)),
                                          ((32, 32, 32), (128, 128, 128))])
def test_tissue_build_time_grows_no_faster_than_n_log_n(small, large):
    """The generators are pointwise maps, stamps and FFT convolutions: O(N log N) in the voxel
    count N. Growing the grid k = N_large/N_small times must cost at most k·log(N_large)/
    log(N_small) times as much (k = 16: 20.6; k = 64: 81.9); fixed overhead only lowers the
    ratio. The test allows twice that, so noise on a shared machine does not fail it, while
    one O(N²) pass (a pairwise distance, a dense matrix: ratio k² = 256 or 4096) does. A ratio
    of two times measured side by side, never an absolute time."""
    n_small, n_large = np.prod(small), np.prod(large)
    bound = 2 * (n_large / n_small) * np.log(n_large) / np.log(n_small)
    times = {small: np.inf, large: np.inf}
    for _ in range(2):  # interleaved, so a busy spell hits both sizes alike
        for shape in (small, large):
            times[shape] = min(times[shape], _best_build_time(Grid(shape, 20.0)))
    assert times[large] / times[small] < bound
