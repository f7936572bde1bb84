"""The README's reference problems, run as written (``-m slow``: about 40 s).

The bash block of the README section "Reference problems" runs in a temporary directory
after ``make_inputs.py``; each comparison script in ``docs/reference_problems`` asserts
its error below the bound its comments derive, so the block fails if one is off."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "docs" / "reference_problems"


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Reference problems", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)


def test_the_readme_runs_every_comparison_script():
    block = readme_block()
    for script in SCRIPTS.glob("cmp_*.py"):
        assert f"python {script.name}" in block, script.name


@pytest.mark.slow
def test_reference_problems_as_the_readme_writes_them(tmp_path):
    for script in SCRIPTS.glob("*.py"):
        shutil.copy(script, tmp_path)
    subprocess.run([sys.executable, "make_inputs.py"], cwd=tmp_path, check=True)
    block = readme_block().replace("python cmp_", f"{sys.executable} cmp_")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(["bash", "-ec", block], cwd=tmp_path, capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.count("max") >= 4, out.stdout
