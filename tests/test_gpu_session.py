"""The one-shot GPU session (``benchmarks/gpu_session.sh``) runs end to end, at tiny sizes
on the CuPy device double: every step, within its limits, and at most 8 files to $OUT (the
device tool returns no more). On a GPU the session is the real thing: run it by hand."""
import json
import subprocess
import sys

import pytest

from conftest import DOUBLE, ROOT, gpu_env



def test_the_session_measures_the_gpu_plan_the_issue_names():
    """Device copy bandwidth (every suite run), 128³ and 256³ bench_tissue3d, the 1024²
    section, substrate-only, on cupy and cupy-arrays (tiny sizes cannot show this)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.gpu_session import session_plan

    plan = session_plan(170.0)
    assert plan.coupled == [("section2d", [(1024, 1024)]),
                            ("tissue3d", [(128, 128, 128), (256, 256, 256)])]
    assert plan.substrate_shape == (100, 100, 100) and plan.scaling2d == []
    assert set(plan.max_step_s) == {"cupy", "cupy-arrays"} and plan.mode == "full"


@pytest.mark.gpu
@pytest.mark.skipif(DOUBLE is None, reason="on a GPU, run the session itself")
def test_the_gpu_session_runs_every_step_and_writes_at_most_8_files(tmp_path):
    out = tmp_path / "out"
    env = gpu_env(OUT=str(out), SESSION_SIZE="tiny", PYTHON=sys.executable)
    proc = subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8, files
    assert {"session.log", "summary.md", "pytest.txt", "parity.json", "bench/results.json",
            "bench/results.md"} <= set(files)
    summary = (out / "summary.md").read_text()
    for step in ("pytest -m gpu", "pytest sm_90 builds", "parity 12³",
                 "benchmarks (cupy, cupy-arrays)", "kernels 16³"):
        assert f"| {step} | ok |" in summary or f"| {step} (no ncu) | ok |" in summary, summary
    parity = json.loads((out / "parity.json").read_text())
    assert {p: c["passed"] for p, c in parity["cases"].items()} == {"float64": True,
                                                                      "float32": True}
    bench = json.loads((out / "bench" / "results.json").read_text())
    assert bench["backends"]["cupy"]["available"] and bench["backends"]["cupy-arrays"]["available"]
    assert {c["backend"] for c in bench["coupled"]} == {"cupy", "cupy-arrays"}
    assert " passed" in (out / "pytest.txt").read_text()
