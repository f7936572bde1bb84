"""A wheel carries the Hydra configs and kernel sources, so a non-editable install runs."""
import subprocess
import sys
import zipfile

import pytest


@pytest.mark.timeout(300)
def test_the_wheel_ships_configs_and_kernels(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(tmp_path), str(root)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"could not build a wheel here: {proc.stderr[-300:]}")
    wheel = next(tmp_path.glob("spatialdtp-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("spatialdtp/conf/config.yaml", "spatialdtp/conf/treatment/adaptive.yaml",
                 "spatialdtp/conf/tissue/spheroid3d.yaml", "spatialdtp/kernels/README.md",
                 "spatialdtp/cli.py"):
        assert path in names, path
    meta = next(n for n in names if n.endswith("entry_points.txt"))
    assert "spatialdtp-run = spatialdtp.cli:main" in zipfile.ZipFile(wheel).read(meta).decode()
