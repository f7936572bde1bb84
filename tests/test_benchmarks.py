"""The benchmark suite: its quick mode (CI's smoke test) writes well-formed JSON, Markdown
and PNG files whose roofline fractions recompute from the recorded bytes and times; the
bytes model counts what its documentation says; the presets compose. No figure is asserted.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # benchmarks/ is a top-level folder, not in the wheel

from benchmarks import problems, report, traffic  # noqa: E402

NO_FLUX_2D = [("no_flux", "no_flux")] * 2

CASE_KEYS = ("step", "voxel_steps_per_s", "sim_days_per_wall_minute", "projected_30_days_s",
             "effective_bandwidth_Bps", "roofline_fraction", "copy_bandwidth_Bps", "memory",
             "phases", "output", "kernels", "device")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # passive OpenMP waiting: on a shared 2-core runner spinning threads of the cpu
    # backend would only slow the smoke test down
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out),
                           "--backends", "numpy,cpu,cupy", "--budget", "10"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text()), proc.stdout


@pytest.mark.timeout(150)
def test_quick_mode_writes_json_with_machine_versions_commit_and_cases(quick_run):
    _, res, _ = quick_run
    m = res["machine"]
    assert m["git"]["commit"] is None or len(m["git"]["commit"]) == 40
    assert m["versions"]["numpy"] == np.__version__ and m["versions"]["python"]
    assert m["device_slug"] and m["cpu"] and m["cores"] >= 1
    assert res["mode"] == "quick"
    assert res["copy_bandwidth"]["host"]["all_threads"]["bandwidth_Bps"] > 0
    assert res["backends"]["numpy"]["available"] is True
    cupy = res["backends"]["cupy"]           # recorded whether or not a GPU is here
    assert cupy["available"] or cupy["reason"]
    first = res["coupled"][0]                # the first case runs whatever the budget
    assert first["problem"] == "section2d" and first["backend"] == "numpy"
    for key in CASE_KEYS:
        assert key in first, key
    assert first["memory"]["peak_host_rss_bytes"] > 0
    assert {"reactions", "transport", "observables", "substrates (all)"} <= set(
        first["phases"]["phases"])
    assert first["output"]["frame_s"] > 0
    for entry in res["skipped"]:             # every case not measured says why
        assert entry["reason"]


@pytest.mark.timeout(150)
def test_recorded_roofline_fractions_recompute_from_bytes_and_times(quick_run):
    _, res, _ = quick_run
    checked = 0
    for case in res["coupled"] + res["substrates"]:
        bw = case["copy_bandwidth_Bps"]
        t, nbytes = case["step"]["median_s"], case["step"]["bytes_median"]
        assert case["roofline_fraction"] == pytest.approx(nbytes / t / bw, rel=1e-9)
        for entry in list(case.get("kernels", {}).values()) + list(
                case.get("phases", {}).get("phases", {}).values()):
            if "roofline_fraction" in entry:
                assert entry["roofline_fraction"] == pytest.approx(
                    entry["bytes"] / entry["seconds"] / bw, rel=1e-9)
                checked += 1
    assert checked > 0


@pytest.mark.timeout(150)
def test_quick_mode_writes_markdown_tables_and_png_plots(quick_run):
    out, _, _ = quick_run
    md = (out / "results.md").read_text()
    assert md.startswith("# Results: ")
    assert "| problem | grid | backend | ms/step | voxel-steps/s |" in md
    assert "Copy bandwidth, this run" in md
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} >= {"scaling.png", "phases.png"}
    import matplotlib.image as mpimg
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert mpimg.imread(p).ndim == 3


def test_stencil_and_jacobi_bytes_count_operands_once():
    # 4 × 5 grid: 20 voxels, 4·4 + 3·5 = 31 interior faces
    assert traffic.interior_faces((4, 5)) == 31
    assert traffic.stencil_elems((4, 5), NO_FLUX_2D) == 3 * 20 + 31
    assert traffic.stencil_elems((4, 5), NO_FLUX_2D, residual=True) == 4 * 20 + 31
    assert traffic.jacobi_elems((4, 5), NO_FLUX_2D) == 5 * 20 + 31
    # a fixed low face and a periodic axis carry one boundary plane each
    assert traffic.boundary_faces((4, 5), [("fixed", "no_flux"), ("periodic", "periodic")]) \
        == 5 + 4
    # two levels: fine 4×4 (24 faces), coarsest 2×2 inverted densely (16 + 8)
    fine = 3 * 16 + 3 * (5 * 16 + 24) + (4 * 16 + 24) + (16 + 4) + (2 * 16 + 4)
    assert traffic.vcycle_elems([(4, 4), (2, 2)], NO_FLUX_2D) == fine + 16 + 8


def test_reaction_and_step_bytes_add_up_by_phase():
    from spatialdtp.config import SubstrateConfig

    n, item = 1000, 4
    assert traffic.reaction_bytes(n, item, 5) == (5 + 11) * n * item
    sub = SubstrateConfig(uptake={"S": 1.0}, permeability=1.0, uptake_km=2.0)
    # reads S, vessels, c; writes a, b
    assert traffic.coefficients_bytes(n, item, sub) == 5 * n * item
    phases = traffic.step_bytes(
        n_voxels=n, itemsize=item, n_substrates=1, n_fields=7, n_drugs=0,
        substeps={"S": 1, "M": 2}, chemotaxis=True,
        substrates={"oxygen": (sub, NO_FLUX_2D, False)}, solver_shapes=[(10, 100), (5, 50)],
        iterations={"oxygen": 3})
    assert phases["reactions"] == 2 * traffic.reaction_bytes(n, item, 1)
    # per half step: S (one sub-step) its copy 2 + reads n and the 4 others, writes n: 6;
    # M (two sub-steps, drifting) 2 × (6 + the chemokine); the chemokine's jump 1
    assert phases["transport"] == 2 * ((2 + 6) + 2 * (6 + 1) + 1) * n * item
    more = traffic.step_bytes(
        n_voxels=n, itemsize=item, n_substrates=1, n_fields=7, n_drugs=0,
        substeps={"S": 1, "M": 2}, chemotaxis=True,
        substrates={"oxygen": (sub, NO_FLUX_2D, False)}, solver_shapes=[(10, 100), (5, 50)],
        iterations={"oxygen": 4})
    per_iteration = (traffic.pcg_iteration_elems((10, 100), NO_FLUX_2D)
                     + traffic.vcycle_elems([(10, 100), (5, 50)], NO_FLUX_2D)) * item
    assert more["substrate:oxygen"] - phases["substrate:oxygen"] == per_iteration


def test_benchmark_presets_compose_with_the_documented_problems():
    sec = problems.load("section2d")
    assert sec.grid.shape == [1024, 1024] and sec.grid.dx == 20.0 and sec.run.dt == 10.0
    assert sec.treatment.name == "intermittent" and list(sec.treatment.drugs) == ["drug"]
    t3 = problems.load("tissue3d", (32, 32, 32), "float64")
    assert t3.grid.shape == [32, 32, 32] and t3.tissue.name == "spheroid3d"
    assert t3.backend.precision == "float64"
    sub = problems.load("substrates3d", extra=["run.dt=6"])
    assert sub.grid.shape == [100, 100, 100] and sub.grid.dx == 10.0 and sub.run.dt == 6.0
    assert not sub.treatment.drugs


def test_large_grids_are_tiled_from_a_smaller_build():
    from spatialdtp.backends import get_backend

    assert problems.tile_shape((64, 64), 32 * 32) == (32, 32)
    assert problems.tile_shape((48, 64), 10**9) == (48, 64)
    cfg = problems.load("section2d", (64, 64))
    sim, how = problems.build(cfg, get_backend("numpy"), max_build_voxels=32 * 32)
    assert how == "tiled 2x2 from 32x32"
    P = sim.field("P")
    np.testing.assert_array_equal(P[:32, :32], P[32:, 32:])
    assert sim.state.data.shape[1:] == (64, 64)


def test_readme_block_is_replaced_by_the_full_runs_tables(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- results:begin -->\nold\n<!-- results:end -->\n\ntail\n")
    (tmp_path / "results" / "dev").mkdir(parents=True)
    res = {"mode": "full", "machine": {"device_slug": "dev", "git": {}, "versions": {}},
           "copy_bandwidth": {"host": {"all_threads": {"bandwidth_Bps": 1e10, "threads": 2}}},
           "coupled": [], "substrates": [], "scaling": [], "skipped": []}
    report.write_json(res, tmp_path / "results" / "dev")
    report.update_readme(tmp_path / "results", readme)
    text = readme.read_text()
    assert "old" not in text and "### Results: dev (full mode)" in text
    assert text.endswith("tail\n")


def test_batched_vcycle_bytes_count_each_kernel_operand_once():
    """One substrate, 2D 4×4 → 2×2 (dense), uniform D, an uptake map (op₀ = a: 16):
    level 0: bmg_smooth 3·16 + 16, bmg_residual_restrict 2·16 + 16 + 4, bmg_prolong_smooth
    3·16 + 4 + 16; the coarsest 2×2: 4² + 2·4 (see traffic.vcycle_batched_elems)."""
    from spatialdtp.config import SubstrateConfig

    sub = SubstrateConfig(uptake={"S": 1.0})
    flags = traffic.coefficient_flags(sub)
    assert flags["a_map"] and not flags["D_map"] and not flags["b_map"]
    level0 = (48 + 16) + (32 + 16 + 4) + (48 + 4 + 16)
    assert traffic.vcycle_batched_elems([(4, 4), (2, 2)], NO_FLUX_2D, flags) == level0 + 16 + 8
    # a D map adds one read of D to each of the three level-0 kernels
    hindered = traffic.coefficient_flags(SubstrateConfig(uptake={"S": 1.0}, hindrance=1.0))
    assert traffic.vcycle_batched_elems([(4, 4), (2, 2)], NO_FLUX_2D, hindered) == \
        level0 + 3 * 16 + 16 + 8


def test_multigrid_step_bytes_follow_the_counted_work():
    """The model's figure is the work a step did, not a number: one more V-cycle of one
    substrate adds exactly its cycle's bytes, one more check a read of every substrate's
    x, b and operator, one restart a read and a write of one plane."""
    from spatialdtp.config import SubstrateConfig

    item, shapes = 4, [(10, 100), (5, 50)]
    n = 1000
    o2 = SubstrateConfig(uptake={"S": 1.0}, permeability=1.0)
    drug = SubstrateConfig(uptake={"S": 1.0}, hindrance=1.0)
    subs = {"oxygen": (o2, NO_FLUX_2D), "drug": (drug, NO_FLUX_2D)}

    def model(cycles, checks, restarts):
        return traffic.multigrid_bytes(shapes, subs, cycles, checks, restarts, item)

    base = model({"oxygen": 3, "drug": 2}, 2, {})
    flags = traffic.coefficient_flags(o2)
    assert model({"oxygen": 4, "drug": 2}, 2, {}) - base == \
        traffic.vcycle_batched_elems(shapes, NO_FLUX_2D, flags) * item
    per_check = sum(2 * n + traffic.level0_operator_elems(n, traffic.coefficient_flags(c))
                    for c, _ in subs.values())
    assert model({"oxygen": 3, "drug": 2}, 3, {}) - base == per_check * item
    assert model({"oxygen": 3, "drug": 2}, 2, {"drug": 1}) - base == 2 * n * item
    # a check reads only the substrates still solving: a third check with oxygen alone
    oxygen_check = (2 * n + traffic.level0_operator_elems(n, flags)) * item
    assert traffic.multigrid_bytes(shapes, subs, {"oxygen": 3, "drug": 2}, 3, {}, item,
                                   checked={"oxygen": 3, "drug": 2}) - base == oxygen_check


def test_the_motility_reads_the_tumour_where_the_pressure_flux_left_it():
    """Per half step, S, P, R, M one sub-step each, chemotaxis: after an odd pressure
    count S, P, R are in its buffers and their one motility sub-step reads them there (no
    copies); after an even count they are in their planes and each is copied first."""
    n, item = 1000, 4
    every = {"S": 1, "P": 1, "R": 1, "M": 1}

    def half_step(pressure, substeps):
        pushed = ("S", "P", "R") if pressure % 2 else ()
        return (traffic.pressure_bytes(n, item, pressure)
                + traffic.transport_bytes(n, item, substeps, True, pushed)) // (n * item)

    # pressure 8 per sub-step; S, P, R 6 each; M its copy 2 + 6 + the chemokine 1; jump 1
    assert half_step(1, every) == 8 + 3 * 6 + (2 + 7) + 1
    assert half_step(2, every) == 2 * 8 + 3 * (2 + 6) + (2 + 7) + 1
    # R pushed but not moved by motility: copied back to its plane
    assert half_step(1, {"S": 1, "P": 1, "M": 1}) == 8 + 2 * 6 + 2 + (2 + 7) + 1


@pytest.mark.timeout(150)
def test_quick_mode_sets_the_two_solvers_side_by_side(quick_run):
    _, res, _ = quick_run
    sv = res["solvers"]
    cases = [c for c in sv["cases"] if "error" not in c]
    assert {(c["problem"], c["solver"]) for c in cases} >= {
        (p, s) for p in ("section2d", "tissue3d") for s in ("multigrid", "pcg")}
    for c in cases:
        assert c["iterations_per_step"] > 0 and c["ms_per_step"] > 0
        # the iterations are the counted work's
        import statistics
        assert c["iterations_per_step"] == statistics.median(
            sum(w["iterations"].values()) for w in c["work"])
        assert all(w["solver"] == c["solver"] for w in c["work"])
        if c["problem"] == "tissue3d":
            assert c["bytes_per_voxel_step_256"] > 0
    for d in sv["double"]:
        assert d["available"], d
        med = d["median"]
        assert med["kernel_launches"] > 0 and med["host_syncs"] > 0
    syncs = {(d["problem"], d["solver"]): d["median"]["host_syncs"] for d in sv["double"]}
    assert syncs[("tissue3d", "multigrid")] < syncs[("tissue3d", "pcg")]
    assert {j["solver"] for j in sv["default_job"]} == {"multigrid", "pcg"}
    assert all(j["wall_s"] > 0 and j["fallbacks"] == 0 for j in sv["default_job"])


@pytest.mark.timeout(150)
def test_cpu_contention_case_measures_idle_and_busy_with_both_waiting_policies(monkeypatch):
    """benchmarks/contention: backend cpu idle and beside one burner per core, with passive
    and with spinning OpenMP waiting, each in its own child process (the policy is read when
    the OpenMP runtime starts, so the child's environment is what was asked for); the
    ratios recompute from the recorded step times and the burners are gone afterwards. No
    figure is asserted, only that each is a positive time."""
    from spatialdtp.backends import cpu_backend

    if cpu_backend.compiler() is None:
        pytest.skip("no C++ compiler")
    from benchmarks import contention, report

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")      # the case sets its own, per child
    seen = []
    real_run = contention.subprocess.run

    def run(args, **kw):
        seen.append({k: kw["env"].get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")})
        return real_run(args, **kw)
    monkeypatch.setattr(contention.subprocess, "run", run)
    burners = []
    real_popen = contention.subprocess.Popen

    def popen(args, *a, **kw):          # subprocess.run starts the children through it too
        proc = real_popen(args, *a, **kw)
        if contention.BURNER in args:
            burners.append(proc)
        return proc
    monkeypatch.setattr(contention.subprocess, "Popen", popen)

    case = contention.run_case("tissue3d", (12, 12, 12), 1, log=lambda *_: None)
    assert seen == [{"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None},
                    {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "300000"}] * 2
    cores = len(os.sched_getaffinity(0))
    assert [(r["policy"], r["busy"], r["burners"]) for r in case["runs"]] == [
        ("passive", False, 0), ("spin", False, 0), ("passive", True, cores), ("spin", True, cores)]
    assert len(burners) == 2 * cores and all(b.poll() is not None for b in burners)
    t = {(r["policy"], r["busy"]): r["median_step_s"] for r in case["runs"]}
    assert all(v > 0 for v in t.values())
    q = case["ratios"]
    assert q["busy_over_idle_passive"] == t[("passive", True)] / t[("passive", False)]
    assert q["busy_over_idle_spin"] == t[("spin", True)] / t[("spin", False)]
    assert q["spin_over_passive_idle"] == t[("spin", False)] / t[("passive", False)]
    assert q["spin_over_passive_busy"] == t[("spin", True)] / t[("passive", True)]
    text = "\n".join(report.contention_lines({"contention": case}))
    assert "spin over passive busy" in text and text.count("| `passive` |") == 2


def test_quick_suite_records_the_contention_case_or_why_not(quick_run):
    _, res, _ = quick_run
    skipped = [s for s in res["skipped"] if s.get("case") == "contention"]
    assert ("contention" in res) != bool(skipped)
    if skipped:
        assert skipped[0]["reason"]
