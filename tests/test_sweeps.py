"""Sweeps as a user runs them: `spatialdtp-run -m ...`, then `spatialdtp-summarize SWEEP`.

One table row per job (read back with pandas), failed jobs listed with their error, a
sweep still running summarised, the joblib/submitit launchers and the SLURM script they
would submit, the objective returned to Hydra, and an Optuna schedule study.
"""
import math
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from spatialdtp.cli import expand_basic_sweep
from spatialdtp.config import ObjectiveConfig
from spatialdtp.studies.objective import (
    check_objective,
    objective_value,
    plasma_exposure,
)
from spatialdtp.run.summary import summary_unit
from spatialdtp.studies.sweeps import gather, kaplan_meier, km_median

TINY = ["experiment=quick", "run.days=0.25"]


def run(module_args, cwd, timeout=240, check=True, env=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.run([sys.executable, "-m", *module_args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}")
    return proc


def sweep(args, cwd, **kw):
    return run(["spatialdtp", "-m", *args], cwd, **kw)


def summarize(args, cwd, **kw):
    return run(["spatialdtp.summarize", *args], cwd, **kw)


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory):
    """A real 2×2 sweep: two treatments × two seeds."""
    root = tmp_path_factory.mktemp("sweep2x2")
    sweep([*TINY, "treatment=continuous,intermittent", "seed=0,1", "hydra.sweep.dir=sweep"],
          root)
    return root / "sweep"


# --------------------------------------------------------------------------- the table
def test_a_2x2_sweep_becomes_one_row_per_run_equal_to_the_run_files(two_by_two, tmp_path):
    out = tmp_path / "out"
    proc = summarize([str(two_by_two), "--out", str(out)], tmp_path)
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 4
    for column in ("job", "status", "treatment", "seed", "days", "time_to_progression_days",
                   "nadir", "nadir_fraction", "final_P", "final_R", "final_niche_contrast",
                   "cumulative_on_days_drug", "plasma_exposure_drug", "plasma_exposure",
                   "objective", "error", "dir", "overrides"):
        assert column in table.columns, column
    assert sorted(table["job"]) == [0, 1, 2, 3]
    assert table["below_one_cell"].fillna("").str.contains("final_R").all()   # R ≈ 0.02 cells
    assert table["nadir"].dtype.kind == "f"            # the counts themselves stay numbers
    assert set(table["status"]) == {"complete"}
    assert sorted(zip(table["treatment"], table["seed"])) == [
        ("continuous", 0), ("continuous", 1), ("intermittent", 0), ("intermittent", 1)]
    assert table["seed"].dtype.kind == "i"             # override values parsed, not text
    for row in table.itertuples():
        with h5py.File(two_by_two / row.dir / "run.h5", "r") as f:
            summary = dict(f["summary"].attrs)
            assert f.attrs["seed"] == row.seed
            assert yaml.safe_load(f.attrs["config"])["treatment"]["name"] == row.treatment
        for key in ("nadir", "nadir_fraction", "final_P", "final_R", "final_burden",
                    "cumulative_on_days_drug", "baseline_burden"):
            assert getattr(row, key) == pytest.approx(float(summary[key]), rel=1e-12), key
        assert math.isnan(row.time_to_progression_days) == math.isnan(
            summary["time_to_progression_days"])
        assert row.days == pytest.approx(0.25)
        # the cell counts above 0 and below one cell, named in their own text column
        sub = " ".join(k for k in table.columns if k in summary and summary_unit(k) == "cells"
                       and 0 < float(summary[k]) < 1)
        assert (row.below_one_cell if isinstance(row.below_one_cell, str) else "") == sub
        # continuous at 1 µM for 0.25 days: 0.25 µM·day; intermittent is on for its first 7 days
        assert row.plasma_exposure_drug == pytest.approx(0.25, rel=1e-9)
    for png in ("burden_curves.png", "time_to_progression.png"):
        assert (out / png).stat().st_size > 10_000
    assert not (two_by_two / "summary.csv").exists()   # --out kept the sweep untouched
    assert "continuous" in proc.stdout and "intermittent" in proc.stdout
    assert "4 complete" in proc.stdout


def test_runs_group_by_any_keys(two_by_two, tmp_path):
    sw = gather(two_by_two)
    proc = summarize([str(two_by_two), "--out", str(tmp_path), "--by", "seed", "--by",
                      "treatment", "--no-plots"], tmp_path)
    assert "seed=0, treatment=continuous" in proc.stdout
    assert not (tmp_path / "burden_curves.png").exists()
    # A key nobody overrode comes from the job's composed config or its preset choice.
    assert {j.value("tissue") for j in sw.jobs} == {"section"}
    assert {j.value("grid.shape")[0] for j in sw.jobs} == {24}


def test_the_table_also_goes_to_parquet_when_pyarrow_is_installed(two_by_two, tmp_path):
    pytest.importorskip("pyarrow")
    summarize([str(two_by_two), "--out", str(tmp_path), "--no-plots"], tmp_path)
    csv = pd.read_csv(tmp_path / "summary.csv")
    parquet = pd.read_parquet(tmp_path / "summary.parquet")
    assert list(parquet.columns) == list(csv.columns)
    np.testing.assert_allclose(parquet["nadir"], csv["nadir"])


# --------------------------------------------------------------------------- failures
@pytest.mark.parametrize("launcher", ["basic", "local_parallel"])
def test_a_failed_job_is_listed_with_its_error_and_the_others_still_run(tmp_path, launcher):
    if launcher == "local_parallel":
        pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc = sweep([*TINY, "run.days=0.1", "substrates.oxygen.diffusion=-5,1000",
                  f"hydra/launcher={launcher}", "hydra.sweep.dir=sweep"], tmp_path, check=False)
    # Hydra reports the failure at the end, after running every job of the sweep.
    assert proc.returncode == 1, proc.stderr
    assert "JobFailed" in proc.stderr
    out = summarize(["sweep"], tmp_path).stdout
    table = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert list(table["status"]) == ["failed", "complete"]
    error = "substrates.oxygen.diffusion=-5.0: must be a finite number >= 0"
    assert error in table.loc[0, "error"]
    assert table.loc[1, "nadir"] > 0
    assert "failed (1):" in out and error in out


def test_a_sweep_still_running_is_summarised(two_by_two, tmp_path):
    """Job 1's writer is mid-run (status running, half its observables, no summary);
    job 3 has not started yet (no directory)."""
    live = tmp_path / "live"
    shutil.copytree(two_by_two, live)
    job1 = next(live.glob("1_*"))
    with h5py.File(job1 / "run.h5", "r+") as f:
        f.attrs["status"] = "running"
        del f["summary"]
        n = len(f["observables/time"]) // 2
        f["observables/time"].resize((n,))     # other columns keep one more row, as a
        burden = f["observables/burden"][:n]   # writer killed mid-row leaves them
        t_end = f["observables/time"][n - 1]
    shutil.rmtree(next(live.glob("3_*")))
    proc = summarize([str(live), "--no-plots"], tmp_path)
    table = pd.read_csv(live / "summary.csv")
    assert list(table["status"]) == ["complete", "running", "complete", "pending"]
    row = table.iloc[1]
    assert row["days"] == pytest.approx(t_end / 1440)
    assert row["nadir"] == pytest.approx(burden.min())
    assert row["baseline_burden"] == pytest.approx(burden[0])
    assert table.iloc[3]["overrides"].split()[-2:] == ["treatment=intermittent", "seed=1"]
    assert "not finished (2):" in proc.stdout
    assert "#3 pending" in proc.stdout and "#1 running" in proc.stdout


# --------------------------------------------------------------------------- launchers
def test_the_submitit_local_launcher_runs_a_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep([*TINY, "run.days=0.1", "seed=0,1", "hydra/launcher=local_submitit",
           "hydra.sweep.dir=sweep"], tmp_path)
    assert any((tmp_path / "sweep" / ".submitit").iterdir())   # submitit's own job folders
    sw = gather(tmp_path / "sweep")
    assert [j.status for j in sw.jobs] == ["complete", "complete"]
    assert sorted(j.value("seed") for j in sw.jobs) == [0, 1]


def test_the_slurm_preset_submits_one_gpu_per_run_as_an_array(tmp_path):
    """No cluster here: stand-ins for sbatch/srun keep the script submitit submits."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/submitted.sbatch\n'
                                    'echo "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc = subprocess.Popen([sys.executable, "-m", "spatialdtp", "-m", *TINY, "seed=range(3)",
                             "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                             "hydra.launcher.array_parallelism=2", "hydra.sweep.dir=sweep"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    script = tmp_path / "submitted.sbatch"
    try:
        deadline = time.time() + 60
        while not script.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
    finally:
        proc.kill()     # it would wait for SLURM's accounting forever
        proc.wait()
    text = script.read_text()
    for line in ("#SBATCH --gpus-per-node=1", "#SBATCH --array=0-2%2",
                 "#SBATCH --partition=gpu", "#SBATCH --time=240", "#SBATCH --ntasks-per-node=1"):
        assert line in text, text
    sw = gather(tmp_path / "sweep", expand=expand_basic_sweep)   # submitted, none started: pending
    assert [j.status for j in sw.jobs] == ["pending"] * 3


def test_the_ray_preset_runs_a_sweep_on_a_private_ray(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    sweep([*TINY, "run.days=0.1", "seed=0,1", "hydra/launcher=ray_cluster",
           "hydra.launcher.ray.init.address=null", "hydra.launcher.ray.remote.num_gpus=0",
           "hydra.sweep.dir=sweep"], tmp_path, timeout=300)
    assert [j.status for j in gather(tmp_path / "sweep").jobs] == ["complete", "complete"]


# --------------------------------------------------------------------------- objective
def observables(days, plasma):
    t = np.linspace(0.0, days * 1440.0, len(plasma))
    return {"time": t, "plasma_drug": np.asarray(plasma, dtype=float)}


def test_the_objective_is_the_metric_or_the_censored_days():
    obs = observables(2.0, [0.0, 1.0, 1.0, 1.0, 1.0])
    summary = {"time_to_progression_days": 0.8, "treatment_start_day": 0.5}
    assert objective_value(ObjectiveConfig(), summary, obs) == 0.8
    never = dict(summary, time_to_progression_days=math.nan)
    # Never progressed: the days followed since treatment start (2.0 - 0.5), i.e. censored.
    assert objective_value(ObjectiveConfig(), never, obs) == pytest.approx(1.5)
    assert objective_value(ObjectiveConfig(censored_value="60"), never, obs) == 60.0


def test_a_run_over_the_dose_cap_scores_the_penalty():
    # Row 0 is the level before treatment; rows 1..4 are 2 µM over four half-day steps.
    obs = observables(2.0, [0.0, 2.0, 2.0, 2.0, 2.0])
    assert plasma_exposure(obs) == {"drug": pytest.approx(4.0)}          # µM·day
    two = dict(obs, plasma_other=np.array([0.0, 1.0, 0.0, 0.0, 0.0]))
    assert plasma_exposure(two) == {"drug": pytest.approx(4.0), "other": pytest.approx(0.5)}
    summary = {"time_to_progression_days": 1.0, "treatment_start_day": 0.0}
    capped = ObjectiveConfig(dose_cap=4.2, penalty=-1.0)
    assert objective_value(capped, summary, obs) == 1.0                 # under the cap
    assert objective_value(capped, summary, two) == -1.0                # 4.5 > 4.2, summed
    assert objective_value(ObjectiveConfig(dose_cap=3.9, penalty=-1.0), summary, obs) == -1.0


def test_bad_objective_settings_are_refused_by_name():
    obs = observables(1.0, [0.0, 1.0])
    with pytest.raises(ValueError, match="objective.metric='ttp': not a summary key"):
        objective_value(ObjectiveConfig(metric="ttp"), {"nadir": 1.0}, obs)
    with pytest.raises(ValueError, match="objective.censored_value='forever'"):
        check_objective(ObjectiveConfig(censored_value="forever"))
    with pytest.raises(ValueError, match="objective.dose_cap=-1"):
        check_objective(ObjectiveConfig(dose_cap=-1.0))


def test_plasma_exposure_of_a_real_run_is_dose_times_days_on():
    from spatialdtp import api

    sim = api.simulation([*TINY, "grid.shape=[16,16]", "treatment=intermittent",
                          "treatment.drugs.drug.schedule.on_days=0.25",
                          "treatment.drugs.drug.schedule.off_days=0.25",
                          "treatment.drugs.drug.schedule.dose=1.5", "run.progress=false",
                          "run.plot=false"])
    summary = sim.run_until(days=1.0)
    on_days = summary["cumulative_on_days_drug"]
    assert on_days == pytest.approx(0.5)
    assert plasma_exposure(sim.observables())["drug"] == pytest.approx(1.5 * on_days, rel=1e-9)


def test_kaplan_meier_by_hand():
    t, s = kaplan_meier([1.0, 2.0, 3.0, 4.0], [True, False, True, True])
    # 4 at risk at day 1 (one event): 3/4; day 2 censored; day 3: 2 at risk, one event: 3/8
    np.testing.assert_allclose(s, [1.0, 0.75, 0.375, 0.0, 0.0])
    np.testing.assert_allclose(t, [0.0, 1.0, 3.0, 4.0, 4.0])
    assert km_median([1.0, 2.0, 3.0, 4.0], [True, False, True, True]) == 3.0
    assert math.isnan(km_median([5.0, 6.0], [False, False]))


# --------------------------------------------------------------------------- Optuna
def test_an_optuna_schedule_study_writes_its_best_schedule_and_history(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep(["+optimize=intermittent", *TINY, "grid.shape=[16,16]", "hydra.sweeper.n_trials=3",
           "objective.dose_cap=0.4", "objective.penalty=-1", "hydra.sweep.dir=study"],
          tmp_path)
    study = tmp_path / "study"
    proc = summarize(["study"], tmp_path)
    history = pd.read_csv(study / "optimization_history.csv")
    assert list(history["trial"]) == [0, 1, 2]
    params = ["treatment.drugs.drug.schedule.on_days", "treatment.drugs.drug.schedule.off_days",
              "treatment.drugs.drug.schedule.dose"]
    for p in params:
        assert p in history.columns
    for _, row in history.iterrows():
        # Always on (on_days >= 1) for 0.25 days, never progressing: the censored 0.25 days,
        # unless dose × 0.25 days is over the cap
        assert row["plasma_exposure"] == pytest.approx(0.25 * row[params[2]], rel=1e-9)
        over = row["plasma_exposure"] > 0.4
        assert row["over_cap"] == over
        assert row["objective"] == (-1.0 if over else pytest.approx(0.25))
    best = yaml.safe_load((study / "best_schedule.yaml").read_text())
    assert best["direction"] == "maximize"
    assert best["best_value"] == history["objective"].max()
    assert best["schedule"]["drug"]["kind"] == "intermittent"
    assert best["schedule"]["drug"]["dose"] == pytest.approx(best["params"][params[2]])
    # What the runs returned to Optuna equals what the summary recomputes from the files.
    hydra_best = yaml.safe_load((study / "optimization_results.yaml").read_text())
    assert hydra_best["best_value"] == pytest.approx(best["best_value"])
    assert (study / "optimization.png").stat().st_size > 10_000
    assert "intermittent" in proc.stdout


@pytest.mark.parametrize("n", [3, 10, 11, 20, 35])
def test_sweep_plots_give_every_group_its_own_colour(n):
    from matplotlib.colors import to_rgba

    from spatialdtp.studies.sweep_plots import _colours

    colours = [to_rgba(c) for c in _colours(n)]
    assert len(colours) == n and len(set(colours)) == n
