"""The README documents every configuration key of the schema (docs cannot drift silently)."""
import re
from dataclasses import fields, is_dataclass
from pathlib import Path

from spatialdtp.config import DrugConfig, SpatialDTPConfig, SubstrateConfig

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def documented_keys() -> set[str]:
    keys = set()
    for column in re.findall(r"^\| ([^|]+) \|", README, flags=re.M):
        for part in re.findall(r"`([^`]+)`", column):
            m = re.match(r"^(.*)\{([^}]*)\}(.*)$", part)
            if m:
                keys |= {m.group(1) + x.strip() + m.group(3) for x in m.group(2).split(",")}
            else:
                keys.add(part)
    return keys


def schema_keys(obj, prefix="") -> set[str]:
    out = set()
    for f in fields(obj):
        v = getattr(obj, f.name)
        key = prefix + f.name
        if is_dataclass(v):
            out |= schema_keys(v, key + ".")
        elif f.name == "substrates":
            out |= schema_keys(SubstrateConfig(), "substrates.<name>.")
        elif f.name == "drugs":
            drug = {k for k in schema_keys(DrugConfig(), "treatment.drugs.<drug>.")
                    if ".transport." not in k}
            out |= drug | {"treatment.drugs.<drug>.transport.*"}
        else:
            out.add(key)
    return out


def test_every_config_key_is_in_the_readme():
    docs = documented_keys()
    missing = []
    for key in sorted(schema_keys(SpatialDTPConfig())):
        if key in docs:
            continue
        # dict-valued keys are documented with their entries: uptake.<S,P,R,F,M>
        if any(d.startswith(key + ".<") for d in docs):
            continue
        missing.append(key)
    assert not missing, f"README lacks these config keys: {missing}"


def test_readme_opens_with_the_two_commands():
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    assert "spatialdtp-run" in blocks[0] and "pip install -e ." in blocks[0]
    assert "pytest" in blocks[1] and '".[dev,viewer]"' in blocks[1]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci


def test_the_readme_python_api_example_runs(tmp_path, monkeypatch):
    """The README's API block, at a 24² grid and a few hours instead of days; the resumed
    simulation must append to run.h5 itself (api.resume continues in its own file)."""
    import h5py

    block = next(b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S)
                 if "from spatialdtp import api" in b)
    small = (block.replace("grid.shape=[64,64]", "grid.shape=[24,24]")
             .replace("days=10", "days=0.25").replace("days=14", "days=0.5"))
    assert small.count("days=") == block.count("days=") and small != block
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(small, "README.md", "exec"), scope)
    assert scope["summary"]["final_burden"] > 0
    with h5py.File(tmp_path / "run.h5") as f:
        assert f["observables/time"][-1] == 0.5 * 1440.0    # resumed run reached day 0.5
        assert f.attrs["status"] == "complete"


def _reduced(command: str, out: str = "out") -> list[str]:
    """A README command's arguments at a size CI can afford: the same presets and keys,
    a small grid (same dimension) and a few simulated hours."""
    args = command.split("#")[0].split()[1:]
    if args[:2] == ["-m", "spatialdtp"]:
        args = args[2:]
    reduced = []
    for a in args:
        if a.startswith("grid.shape="):
            a = "grid.shape=[" + ",".join(["16"] * (a.count(",") + 1)) + "]"
        elif a.startswith("run.days="):
            a = "run.days=0.25"
        reduced.append(a)
    keys = {a.split("=")[0] for a in reduced}
    extra = [k for k in ("grid.shape=[24,24]", "run.days=0.25")
             if k.split("=")[0] not in keys and not any(a.startswith("tissue=spheroid3d")
                                                        and k.startswith("grid") for a in reduced)]
    return reduced + extra + ["run.progress=false", f"hydra.run.dir={out}"]


def test_every_command_of_what_a_run_gives_you_runs(tmp_path):
    """Each example command of "What a run gives you", at reduced size, exits 0 and writes
    its outputs (an example that stops working fails CI)."""
    import subprocess
    import sys

    section = README.split("## What a run gives you", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    commands = [ln for ln in block.splitlines() if ln.strip()]
    assert len(commands) >= 4
    for number, command in enumerate(commands):
        args = _reduced(command, out=f"out{number}")   # a run file is never overwritten
        proc = subprocess.run([sys.executable, "-m", "spatialdtp", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (command, args, proc.stderr[-3000:])
        if "--cfg" not in args:
            assert (tmp_path / f"out{number}" / "run_summary.json").exists(), command
