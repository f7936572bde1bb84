"""`spatialdtp-run` as a user runs it: a run file and plot, clear errors, sweeps, resume."""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml

QUICK = ["experiment=quick"]


def run_cli(args, cwd, timeout=240, check=True):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "spatialdtp", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def test_a_run_writes_its_run_file_summary_and_plot(tmp_path):
    proc = run_cli([*QUICK, "hydra.run.dir=out"], tmp_path)
    run = tmp_path / "out" / "run.h5"
    assert (tmp_path / "out" / "run_summary.png").stat().st_size > 10_000
    assert "time_to_progression_days" in proc.stdout
    with h5py.File(run) as f:
        assert f.attrs["status"] == "complete"
        # backend=auto resolved: a 24² grid runs on numpy without a GPU (cpu is no faster)
        assert f.attrs["backend"] in ("numpy", "cupy")
        cfg = yaml.safe_load(f.attrs["config"])
        assert cfg["backend"]["name"] == "auto"
        assert cfg["grid"]["shape"] == [24, 24]
        assert list(f["time"][:]) == [0.0, 360.0, 720.0, 1080.0, 1440.0]
        assert f["fields/P"].shape == (5, 24, 24)
        assert f["fields/oxygen"].attrs["units"] == "mmHg"
        assert f["observables/burden"].shape == f["observables/time"].shape == (73,)
        assert "time_to_progression_days" in f["summary"].attrs
        assert f["checkpoint"].attrs["step"] == 72


def test_initial_fields_load_from_arrays_on_the_command_line(tmp_path):
    oxygen = np.full((24, 24), 7.0)
    np.save(tmp_path / "o2.npy", oxygen)
    S = np.zeros((24, 24))
    S[10:14, 10:14] = 1.0
    np.save(tmp_path / "S.npy", S)
    run_cli([*QUICK, "hydra.run.dir=out", "run.days=0.25", f"+tissue.files.oxygen={tmp_path}/o2.npy",
             f"+tissue.files.S={tmp_path}/S.npy", "tissue.tumour.persister_fraction=0"], tmp_path)
    with h5py.File(tmp_path / "out" / "run.h5") as f:
        np.testing.assert_allclose(f["fields/oxygen"][0], oxygen)
        np.testing.assert_allclose(f["fields/S"][0], S, rtol=1e-6)


@pytest.mark.parametrize("override,expected", [
    ("substrates.oxygen.diffusion=-5", "substrates.oxygen.diffusion=-5.0: must be a finite number >= 0"),
    ("treatment=doses", None),  # valid: must run
    ("treatment.drugs.drug.schedule.kind=weekly", "treatment.drugs.drug.schedule.kind='weekly': allowed values"),
    ("grid.shape=[2,40]", "grid.shape=[2, 40]"),
    ("+substrates.oxygen.uptake.Q=1", "substrates.oxygen.uptake.Q=1.0: cell types are"),
    ("grid.shape=[200000,200000]", "is free; use a smaller grid"),
])
def test_bad_config_values_give_one_clear_error(tmp_path, override, expected):
    proc = run_cli([*QUICK, "hydra.run.dir=out", "run.days=0.1", override], tmp_path, check=False)
    if expected is None:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert expected in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_typo_in_a_key_is_refused_by_name(tmp_path):
    proc = run_cli([*QUICK, "substrates.oxygen.difusion=1"], tmp_path, check=False)
    assert proc.returncode != 0
    assert "difusion" in proc.stderr


def completed_sweep_configs(sweep_dir):
    """The stored config of every job's run file, each checked to have completed."""
    configs = []
    for run in sorted(sweep_dir.glob("*/run.h5")):
        with h5py.File(run) as f:
            assert f.attrs["status"] == "complete", run
            configs.append(yaml.safe_load(f.attrs["config"]))
    return configs


def test_multirun_sweeps_write_one_run_file_each(tmp_path):
    run_cli(["-m", *QUICK, "run.days=0.1", "seed=0,1", "treatment=continuous,none",
             "hydra.sweep.dir=sweep"], tmp_path)
    configs = completed_sweep_configs(tmp_path / "sweep")
    assert len(configs) == 4
    assert {c["seed"] for c in configs} == {0, 1}


def test_sigterm_closes_the_run_file_and_plus_resume_finishes_it(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "spatialdtp", *QUICK, "hydra.run.dir=out",
                             "run.days=200", "run.output_interval_hours=2"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    run = tmp_path / "out" / "run.h5"
    deadline = time.time() + 120
    frames = 0
    while time.time() < deadline and frames < 4:
        time.sleep(0.5)
        if run.exists():
            try:
                with h5py.File(run, "r", locking=False) as f:
                    frames = len(f["time"])
            except OSError:
                pass
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in out + err
    with h5py.File(run) as f:
        assert f.attrs["status"] == "interrupted"
        n = len(f["time"])
        assert n >= 4
        assert f["fields/P"][n - 1].shape == (24, 24)
        t_ckpt = f["checkpoint"].attrs["time"]
        assert t_ckpt >= f["time"][n - 1]
    run_cli([f"+resume={run}", "run.days=" + str((t_ckpt + 240) / 1440)], tmp_path)
    with h5py.File(run) as f:
        assert f.attrs["status"] == "complete"
        assert f["time"][-1] == pytest.approx(t_ckpt + 240)
        assert np.all(np.diff(f["observables/time"][:]) > 0)


def test_command_line_reproduces_the_cosh_steady_state_of_decay_with_a_fixed_face(tmp_path):
    """A user's check: no cells, oxygen fixed at x = 0, no flux at x = L, decay λ.
    The steady state is c0 cosh((L − x)/ℓ)/cosh(L/ℓ), ℓ = √(D/λ); backward Euler's fixed
    point is the discrete steady state, so one huge step reaches it."""
    np.save(tmp_path / "zero.npy", np.zeros((3, 100)))
    run_cli([*QUICK, "hydra.run.dir=out", "grid.shape=[3,100]", "grid.dx=5",
             "tissue.vessels.kind=none", "tissue.tumour.density=0", "tissue.stroma.kind=none",
             "tissue.macrophages.density=0", "+substrates.oxygen.boundary.x-=fixed",
             "substrates.oxygen.boundary_value=38", "substrates.oxygen.decay=10",
             f"+tissue.files.oxygen={tmp_path}/zero.npy", "run.dt=1e6", "run.days=2000",
             "run.output_interval_hours=1e5", "backend=numpy64", "numerics.rtol=1e-12",
             "treatment=none",
             # no cells to move: without this the empty fields' explicit transport would
             # take ~10⁵ sub-steps in each of these 10⁶-minute steps
             *(f"cells.{c}.motility=0" for c in ("sensitive", "persister", "resistant",
                                                 "fibroblast", "macrophage")),
             "cells.macrophage.chemotaxis=0", "cells.pressure_mobility=0"], tmp_path)
    with h5py.File(tmp_path / "out" / "run.h5") as f:
        c = f["fields/oxygen"][-1]
    x = (np.arange(100) + 0.5) * 5.0
    ell = np.sqrt(1e5 / 10)
    exact = 38 * np.cosh((500 - x) / ell) / np.cosh(500 / ell)
    assert np.abs(c - exact).max() / 38 < 5e-4          # O(dx²) with ℓ/dx = 20
    np.testing.assert_allclose(c[0], c[2], rtol=1e-12)   # no-flux in y keeps it 1D


def test_sweeps_run_in_parallel_with_the_joblib_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    run_cli(["-m", *QUICK, "run.days=0.1", "treatment=continuous,intermittent,adaptive",
             "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=sweep"],
            tmp_path)
    configs = completed_sweep_configs(tmp_path / "sweep")
    assert len(configs) == 3
    assert {c["treatment"]["name"] for c in configs} == {"continuous", "intermittent", "adaptive"}


def test_resume_refuses_overrides_it_would_ignore(tmp_path):
    run_cli([*QUICK, "hydra.run.dir=out", "run.days=0.1"], tmp_path)
    run = tmp_path / "out" / "run.h5"
    proc = run_cli([f"+resume={run}", "run.days=0.2", "run.dt=5",
                    "treatment.drugs.drug.schedule.dose=5"], tmp_path, check=False)
    assert proc.returncode == 2
    assert "['run.dt', 'treatment.drugs.drug.schedule.dose']" in proc.stdout + proc.stderr
    with h5py.File(run) as f:
        assert f.attrs["status"] == "complete"      # the run file was not touched
        assert f["time"][-1] == pytest.approx(144.0)


def test_every_run_writes_json_and_csv_beside_its_run_file_and_logs_warnings(tmp_path):
    """summary.json and the observables CSV hold what run.h5 holds (same numbers, units);
    a warning (here: a 500 µm tumour on a 480 µm grid) reaches cli.log, not only stderr;
    spatialdtp-summarize reads the single run directory."""
    import json

    import pandas as pd

    from spatialdtp.summarize import main as summarize_main
    from spatialdtp.units import SUMMARY_UNITS

    run_cli([*QUICK, "hydra.run.dir=out", "tissue.tumour.radius=500", "run.plot=false"],
            tmp_path)
    out = tmp_path / "out"
    doc = json.loads((out / "run_summary.json").read_text())
    table = pd.read_csv(out / "run_observables.csv")
    with h5py.File(out / "run.h5") as f:
        stored = dict(f["summary"].attrs)
        assert set(doc["summary"]) == set(stored)
        for key, value in stored.items():
            if isinstance(value, str):          # solver_warning: "" when all converged
                assert doc["summary"][key] == value, key
            elif np.isnan(value):
                assert doc["summary"][key] is None, key
            else:
                assert doc["summary"][key] == pytest.approx(float(value), rel=1e-12), key
        for name in f["observables"]:
            np.testing.assert_allclose(table[name], f["observables"][name][:], rtol=1e-12,
                                       equal_nan=True, err_msg=name)
    assert doc["units"]["nadir"] == SUMMARY_UNITS["nadir"]
    assert doc["units"]["cumulative_on_days_drug"] == "days"
    assert doc["observable_units"]["P"] == "cells" and doc["observable_units"]["time"] == "min"
    np.testing.assert_allclose(table["day"], table["time"] / 1440.0)
    log = (out / "cli.log").read_text()
    assert "WARNING" in log and "tissue.tumour.radius=500" in log

    assert summarize_main([str(out), "--no-plots"]) == 0
    row = pd.read_csv(out / "summary.csv")
    assert len(row) == 1 and row["status"][0] == "complete"
    assert row["nadir"][0] == pytest.approx(doc["summary"]["nadir"], rel=1e-9)


def test_help_describes_the_app_and_lists_every_preset_with_one_line(tmp_path):
    from spatialdtp.resources import conf_dir

    text = run_cli(["--help"], tmp_path).stdout
    assert text.startswith("spatialdtp-run: a spatial reaction-diffusion simulation")
    assert "powered by Hydra" not in text
    conf = conf_dir()
    presets = [p for p in conf.rglob("*.yaml") if p.parent != conf]
    for p in presets:
        group = p.parent.relative_to(conf).as_posix()
        prefix = "+optimize=" if group == "optimize" else f"{group}="
        line = [ln for ln in text.splitlines()
                if ln.split() and ln.split()[0].rstrip("*") == prefix + p.stem]
        assert len(line) == 1 and len(line[0].split(maxsplit=1)) == 2, (p, line)
    # benchmark presets in their own section, after every experiment
    bench, experiments = text.index("Benchmark presets"), text.index("Experiments")
    assert all(text.index(f"experiment={p.stem}") > bench
               for p in (conf / "experiment").glob("bench_*.yaml"))
    assert all(experiments < text.index(f"experiment={p.stem}") < bench
               for p in (conf / "experiment").glob("*.yaml") if not p.stem.startswith("bench_"))
    assert "--multirun" in text      # Hydra's own flags ($FLAGS_HELP) still listed


def test_version_is_spatialdtps_and_a_missing_plugin_names_its_extra(tmp_path, monkeypatch):
    import importlib.util

    import spatialdtp
    from spatialdtp import cli

    assert run_cli(["--version"], tmp_path).stdout.startswith(f"spatialdtp {spatialdtp.__version__} ")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if "joblib" in name else real(name, *a))
    hint = cli.missing_plugin(["-m", "hydra/launcher=local_parallel"])
    assert 'pip install "spatialdtp[cluster]"' in hint and "joblib" in hint
    assert cli.missing_plugin(["hydra/launcher=slurm"]) is None or "[cluster]" in \
        cli.missing_plugin(["hydra/launcher=slurm"])
    assert cli.missing_plugin(["treatment=adaptive"]) is None
