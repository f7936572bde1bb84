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
