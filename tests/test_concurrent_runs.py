"""Runs started together never share or clobber a run file (issue 14, item 1), as a user on
a cluster starts them: `spatialdtp-run` several times at once from one directory, with the
default run-directory pattern, and a second run pointed at a directory that already holds a
run file.

Before the fix, three runs started in the same second shared ``outputs/<date>/<time>/``: two
died on HDF5's lock and the third reported success with an unreadable file.
"""
import os
import subprocess
import sys
from pathlib import Path

import h5py
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
QUICK = ["experiment=quick", "run.plot=false"]


def _run(cwd, *args, **kw):
    return subprocess.Popen([sys.executable, "-m", "spatialdtp", *QUICK, *args], cwd=cwd,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)


def test_runs_started_together_each_get_their_own_whole_file(tmp_path):
    seeds = [1, 2, 3, 4]
    procs = [_run(tmp_path, f"seed={s}") for s in seeds]     # started within milliseconds
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    files = sorted(tmp_path.glob("outputs/*/*/run.h5"))
    assert len(files) == len(seeds), files                    # one directory each
    stored = []
    for path in files:
        with h5py.File(path, "r") as f:
            assert f.attrs["status"] == "complete"
            assert len(f["time"]) == 5 and len(f["fields/P"]) == 5   # day 0 and every 6 h
            f["fields/P"][:]                                   # every frame reads
            stored.append(yaml.safe_load(f.attrs["config"])["seed"])
    assert sorted(stored) == seeds                             # each run wrote its own file


def test_a_run_into_a_directory_with_a_run_file_refuses_and_leaves_it_untouched(tmp_path):
    first = _run(tmp_path, "hydra.run.dir=out")
    assert first.wait(timeout=600) == 0
    run = tmp_path / "out" / "run.h5"
    before = run.read_bytes()
    second = _run(tmp_path, "hydra.run.dir=out", "seed=7")
    _, err = second.communicate(timeout=600)
    assert second.returncode == 2, err
    assert "Traceback" not in err
    assert str(run) in err or "run.h5" in err, err
    assert "run.overwrite=true" in err or "+resume" in err, err   # says what would be allowed
    assert run.read_bytes() == before
