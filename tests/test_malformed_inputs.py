"""Every bad input is one clear error, before anything is written.

``preflight`` is what ``spatialdtp-run`` runs before Hydra creates a run directory: each
case here must raise one ConfigError whose message names the key or file (and leave the
run directory uncreated). A handful go through the command line itself (exit code 2, one
line on stderr, no directory, no traceback); the whole campaign through the command line
is ``-m slow``.
"""
from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from spatialdtp import cli
from spatialdtp.config import ConfigError

QUICK = ["experiment=quick", "run.days=0.05"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Arrays and files of every broken kind, on a 24×24 grid."""
    d = tmp_path_factory.mktemp("inputs")
    np.save(d / "ok.npy", np.zeros((24, 24)))
    np.save(d / "wrongshape.npy", np.zeros((5, 5)))
    a = np.zeros((24, 24))
    a[3, 4] = np.nan
    np.save(d / "nan.npy", a)
    np.save(d / "inf.npy", np.full((24, 24), np.inf))
    np.save(d / "neg.npy", -np.ones((24, 24)))
    np.save(d / "complex.npy", np.zeros((24, 24)) + 1j)
    np.save(d / "strings.npy", np.full((24, 24), "a"))
    np.save(d / "objects.npy", np.array([[None] * 24] * 24, dtype=object), allow_pickle=True)
    np.save(d / "vessels2.npy", np.full((24, 24), 2.0))
    (d / "text.npy").write_text("hello")
    (d / "empty.npy").write_bytes(b"")
    (d / "dir.npy").mkdir()
    (d / "text.tif").write_text("hello")
    (d / "a.csv").write_text("1,2")
    full = np.zeros((24, 24))
    np.save(d / "truncated.npy", full)
    raw = (d / "truncated.npy").read_bytes()
    (d / "truncated.npy").write_bytes(raw[:len(raw) // 2])
    labels = np.zeros((24, 24))
    labels[3, 3] = 0.5
    np.save(d / "fraclabels.npy", labels)
    np.save(d / "complexlabels.npy", np.zeros((24, 24), dtype=complex))
    (d / "notes.h5").write_text("not hdf5")
    with h5py.File(d / "foreign.h5", "w") as f:
        f["x"] = 1
    with h5py.File(d / "nocheckpoint.h5", "w") as f:
        f.attrs["format"] = "spatialdtp-run"
        f.attrs["config"] = "seed: 0\n"
    with h5py.File(d / "handmade.h5", "w") as f:     # a checkpoint without its arrays
        f.attrs["format"] = "spatialdtp-run"
        f.attrs["config"] = "seed: 0\n"
        f.create_group("checkpoint").attrs.update({"step": 3, "time": 60.0})
    return d


# (overrides, what the message must contain) — values, types, keys, presets, schedules,
# couplings, faces, grid shapes, arrays, label images, resume files, backends, unbounded
CASES = [
    (["substrates.oxygen.diffusion=-5"], "substrates.oxygen.diffusion=-5.0"),
    (["substrates.oxygen.diffusion=abc"], "substrates.oxygen.diffusion=abc"),
    (["substrates.oxygen.diffusion=nan"], "substrates.oxygen.diffusion=nan"),
    (["substrates.oxygen.decay=inf"], "substrates.oxygen.decay=inf"),
    (["substrates.glucose.uptake_km=0"], "substrates.glucose.uptake_km"),
    (["+substrates.oxygen.uptake.Q=1"], "substrates.oxygen.uptake.Q"),
    (["+substrates.oxygen.colour=1"], "substrates.oxygen.colour: not a key"),
    (["grid.shape=[2,40]"], "grid.shape=[2, 40]"),
    (["grid.shape=[24]"], "grid.shape=[24]"),
    (["grid.shape=[24,24,24,24]"], "grid.shape"),
    (["grid.shape=abc"], "grid.shape"),
    (["grid.shape=[24.5,24]"], "grid.shape"),
    (["grid.shape=[3"], "[3"),
    (["grid.dx=0"], "grid.dx=0.0"),
    (["grid.dx=1e-300"], "grid.dx=1e-300"),
    (["grid.dx=1e300"], "grid.dx=1e+300"),
    (["grid.dx=-1"], "grid.dx=-1.0"),
    (["run.dt=1e-300"], "run.dt=1e-300"),
    (["run.dt=0"], "run.dt=0.0"),
    (["run.days=1e300"], "run.days=1e+300"),
    (["run.days=1e9", "run.output_interval_hours=1e9"], "run.days=1000000000.0"),
    (["run.days=-1"], "run.days=-1.0"),
    (["run.output_interval_hours=1e-9"], "run.output_interval_hours=1e-09"),
    (["run.checkpoint_interval_hours=nan"], "run.checkpoint_interval_hours=nan"),
    (["run.dayz=3"], "run.dayz: not a key of run"),
    (["+run.dayz=3"], "run.dayz: not a key of run"),
    (["+grid.foo=1"], "grid.foo: not a key of grid"),
    (["+cells.sensitive.speed=1"], "cells.sensitive.speed: not a key"),
    (["run.days=1,2"], "run.days=1,2"),
    (["run.output=../../escape.h5"], "run.output='../../escape.h5'"),
    (["run.output=/tmp/abs.h5"], "run.output='/tmp/abs.h5'"),
    (["run.output=run.txt"], "run.output='run.txt'"),
    (["run.progress=maybe"], "run.progress"),
    (["seed=-1"], "seed=-1"),
    (["seed=abc"], "seed=abc"),
    (["numerics.max_iterations=0"], "numerics.max_iterations=0"),
    (["numerics.max_iterations=1000000000000"], "numerics.max_iterations=1000000000000"),
    (["numerics.picard_iterations=11"], "numerics.picard_iterations=11"),
    (["numerics.rtol=0"], "numerics.rtol=0.0"),
    (["numerics.scheme=rk4"], "numerics.scheme='rk4'"),
    (["treatment=nonexistent"], "treatment=nonexistent: no such preset"),
    (["tissue=nonexistent"], "tissue=nonexistent: no such preset"),
    (["backend=gpu"], "backend=gpu: no such preset"),
    (["backend.name=gpu"], "backend.name='gpu'"),
    (["backend.precision=float16"], "backend.precision='float16'"),
    (["treatment.drugs.drug.schedule.kind=weekly"], "treatment.drugs.drug.schedule.kind='weekly'"),
    (["treatment.drugs.drug.schedule.stop_day=nan"], "treatment.drugs.drug.schedule.stop_day=nan"),
    (["treatment.drugs.drug.schedule.stop_day=inf"], "treatment.drugs.drug.schedule.stop_day=inf"),
    (["treatment.drugs.drug.schedule.start_day=5", "treatment.drugs.drug.schedule.stop_day=1"],
     "treatment.drugs.drug.schedule.stop_day=1.0"),
    (["treatment=doses", "treatment.drugs.drug.schedule.doses=[[1.0,inf]]"],
     "treatment.drugs.drug.schedule.doses[0]"),
    (["treatment=doses", "treatment.drugs.drug.schedule.doses=[[1.0]]"],
     "treatment.drugs.drug.schedule.doses[0]"),
    (["treatment=doses", "treatment.drugs.drug.schedule.doses=[]"],
     "treatment.drugs.drug.schedule.doses"),
    (["treatment=intermittent", "treatment.drugs.drug.schedule.on_days=1e-12",
      "treatment.drugs.drug.schedule.off_days=1e-12"], "treatment.drugs.drug.schedule.on_days"),
    (["treatment=oral_daily", "treatment.drugs.drug.schedule.interval_hours=1e-9"],
     "treatment.drugs.drug.schedule.interval_hours"),
    (["treatment=adaptive", "treatment.drugs.drug.schedule.stop_fraction=1.5"],
     "treatment.drugs.drug.schedule.stop_fraction"),
    (["treatment.drugs.drug.emax=2"], "treatment.drugs.drug.emax=2.0"),
    (["treatment.drugs.drug.pk.model=iv"], "treatment.drugs.drug.pk.model='iv'"),
    (["treatment.combination=sum"], "treatment.combination='sum'"),
    (["cells.sensitive.motility=1e30"], "cells.sensitive.motility=1e+30"),
    (["cells.macrophage.chemotaxis=1e30"], "cells.macrophage.chemotaxis=1e+30"),
    (["cells.switching.theta=2"], "cells.switching.theta=2.0"),
    (["cells.capacity=0"], "cells.capacity=0.0"),
    (["cells.capacity=1e300"], "cells.capacity=1e+300"),
    (["cells.environment.o2_hypoxic=1"], "cells.environment.o2_hypoxic=1.0"),
    (["cells.kill_model=linear"], "cells.kill_model='linear'"),
    (["tissue.stroma.n_clusters=1000000000"], "tissue.stroma.n_clusters=1000000000"),
    (["tissue.stroma.n_clusters=-1"], "tissue.stroma.n_clusters=-1"),
    (["tissue.vessels.spacing=0.001"], "tissue.vessels.spacing=0.001"),
    (["tissue.vessels.kind=tree"], "tissue.vessels.kind='tree'"),
    (["tissue.tumour.center=[3,-2]"], "tissue.tumour.center"),
    (["tissue.tumour.persister_fraction=0.7", "tissue.tumour.resistant_fraction=0.7"],
     "tissue.tumour.persister_fraction"),
    (["+substrates.oxygen.boundary.w-=fixed"], "substrates.oxygen.boundary.w-"),
    (["+substrates.oxygen.boundary.z-=fixed"], "substrates.oxygen.boundary.z-"),
    (["+substrates.oxygen.boundary.x-=periodic"], "substrates.oxygen.boundary.x"),
    (["+substrates.oxygen.boundary.x-=open"], "substrates.oxygen.boundary.x-='open'"),
    (["substrates.oxygen.initial=1e39"], "substrates.oxygen.initial"),
    (["objective.metric=nonsense"], "objective.metric='nonsense'"),
    (["objective.censored_value=nan"], "objective.censored_value='nan'"),
    (["objective.dose_cap=-1"], "objective.dose_cap=-1.0"),
    (["viewer.mode=window"], "viewer.mode='window'"),
    (["tissue=from_files"], "tissue.labels.path"),
    (["--config-dir=/nonexistent/dir"], "--config-dir"),
]

FILE_CASES = [
    ("+tissue.files.oxygen={d}/wrongshape.npy", "tissue.files.oxygen=", "shape (5, 5)"),
    ("+tissue.files.oxygen={d}/nan.npy", "tissue.files.oxygen=", "NaN"),
    ("+tissue.files.oxygen={d}/inf.npy", "tissue.files.oxygen=", "infinite"),
    ("+tissue.files.oxygen={d}/neg.npy", "tissue.files.oxygen=", "negative"),
    ("+tissue.files.oxygen={d}/complex.npy", "tissue.files.oxygen=", "complex"),
    ("+tissue.files.oxygen={d}/strings.npy", "tissue.files.oxygen=", "not a real number"),
    ("+tissue.files.oxygen={d}/objects.npy", "tissue.files.oxygen=", "cannot be read"),
    ("+tissue.files.oxygen={d}/missing.npy", "tissue.files.oxygen=", "no such file"),
    ("+tissue.files.oxygen={d}/dir.npy", "tissue.files.oxygen=", "is a directory"),
    ("+tissue.files.oxygen={d}/text.npy", "tissue.files.oxygen=", "not a NumPy .npy file"),
    ("+tissue.files.oxygen={d}/empty.npy", "tissue.files.oxygen=", "not a NumPy .npy file"),
    ("+tissue.files.oxygen={d}/truncated.npy", "tissue.files.oxygen=", "cannot be read"),
    ("+tissue.files.oxygen={d}/text.tif", "tissue.files.oxygen=", "cannot be read as a TIFF"),
    ("+tissue.files.oxygen={d}/a.csv", "tissue.files.oxygen=", "unsupported file type"),
    ("+tissue.files.vessels={d}/vessels2.npy", "tissue.files.vessels=", "[0, 1]"),
    ("+tissue.files.nosuch={d}/ok.npy", "tissue.files.nosuch=", "fields that can be loaded"),
    ("tissue.labels.path={d}/fraclabels.npy", "tissue.labels.path=", "integer"),
    ("tissue.labels.path={d}/complexlabels.npy", "tissue.labels.path=", "not a label type"),
    ("tissue.labels.path={d}/missing.npy", "tissue.labels.path=", "no such file"),
    ("+resume={d}/missing.h5", "resume=", "no such file"),
    ("+resume={d}/notes.h5", "resume=", "not an HDF5 file"),
    ("+resume={d}/foreign.h5", "resume=", "not a spatialdtp run file"),
    ("+resume={d}/nocheckpoint.h5", "resume=", "no checkpoint"),
    ("+resume={d}/handmade.h5", "resume=", "lacks what a resume needs: dataset 'state', "
                                           "dataset 'vessels', attribute 'treatment'"),
    ("+resume={d}", "resume=", "is a directory"),
    ("hydra.run.dir={d}/ok.npy", "hydra.run.dir=", "not a directory"),
    ("hydra.run.dir=/proc/spatialdtp/out", "hydra.run.dir=", "/proc"),
]


def refusal(tmp_path, overrides) -> str:
    """The message preflight refuses ``overrides`` with (fails if it does not)."""
    base = [] if any(o.startswith("+resume=") for o in overrides) else QUICK
    argv = [*base, f"hydra.run.dir={tmp_path / 'out'}", *overrides]
    if any(o.startswith("hydra.run.dir=") for o in overrides):
        argv = [*base, *overrides]
    argv = cli._accept_plus_resume(argv)
    try:
        with pytest.raises(ConfigError) as info:
            cli.preflight(argv)
    finally:
        cli._Prepared.sim = cli._Prepared.key = None
    assert not (tmp_path / "out").exists(), "a run directory was created"
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("overrides,expected", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_bad_value_key_or_preset_is_refused_by_name(tmp_path, overrides, expected):
    assert expected in refusal(tmp_path, overrides)


@pytest.mark.parametrize("override,key,why", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_bad_file_is_refused_naming_key_file_and_problem(tmp_path, files, override, key, why):
    message = refusal(tmp_path, [override.format(d=files)])
    assert message.startswith(key) or f" {key}" in message or message.startswith(key[:-1])
    assert why in message


def test_unavailable_backends_are_refused_by_name(tmp_path):
    pytest.importorskip("hydra")
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    assert refusal(tmp_path, ["backend=cupy"]).startswith("backend.name")
    env_cxx = os.environ.get("CXX")
    os.environ["CXX"] = "no-such-compiler-here"
    try:
        assert "compiler" in refusal(tmp_path, ["backend=cpu"])
    finally:
        if env_cxx is None:
            del os.environ["CXX"]
        else:
            os.environ["CXX"] = env_cxx


def test_a_valid_command_line_passes_and_keeps_its_simulation(tmp_path):
    argv = [*QUICK, f"hydra.run.dir={tmp_path / 'out'}"]
    cli.preflight(argv)
    try:
        assert cli._Prepared.sim is not None
    finally:
        cli._Prepared.sim = cli._Prepared.key = None
    assert not (tmp_path / "out").exists()


def run_cli(args, cwd, timeout=120, env=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "spatialdtp", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_refused(proc, cwd, expected):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("spatialdtp-run: error: "), proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not any(cwd.iterdir()), f"written: {list(cwd.iterdir())}"


@pytest.mark.parametrize("overrides,expected", [
    (["+run.dayz=3"], "run.dayz: not a key of run"),
    (["treatment.drugs.drug.schedule.stop_day=nan"], "stop_day=nan"),
    (["grid.dx=1e-300"], "grid.dx=1e-300"),
    (["+tissue.files.oxygen=missing.npy"], "tissue.files.oxygen='missing.npy': no such file"),
    (["+resume=missing.h5"], "resume='missing.h5': no such file"),
])
def test_the_command_line_refuses_in_one_line_with_exit_2_and_writes_nothing(tmp_path, overrides,
                                                                             expected):
    base = [] if overrides[0].startswith("+resume=") else QUICK
    proc = run_cli([*base, *overrides], tmp_path)
    assert_refused(proc, tmp_path, expected)


def test_a_sweep_whose_every_job_is_refused_writes_nothing_but_one_bad_job_fails_alone(tmp_path):
    proc = run_cli(["-m", *QUICK, "seed=0,1", "run.dt=-1"], tmp_path)
    assert_refused(proc, tmp_path, "every job of the sweep would be refused: run.dt=-1.0")
    proc = run_cli(["-m", *QUICK, "run.dt=20,-1", "hydra.sweep.dir=sweep"], tmp_path, timeout=240)
    assert proc.returncode == 1, proc.stderr          # Hydra: a job failed
    assert "job 1 will fail: run.dt=-1.0" in proc.stderr
    good, bad = sorted((tmp_path / "sweep").glob("[01]_*"))
    with h5py.File(good / "run.h5") as f:
        assert f.attrs["status"] == "complete"
    assert not (bad / "run.h5").exists()
    assert "run.dt=-1.0: must be a finite number > 0" in (bad / "cli.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("overrides,expected", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_the_whole_campaign_through_the_command_line(tmp_path, overrides, expected):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    assert_refused(run_cli([*QUICK, *overrides], cwd), cwd, expected)
