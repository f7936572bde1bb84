"""docs/parameters.md documents every numeric default of the schema and every preset value.

The schema is walked the way a Hydra override names things: dataclass fields by name,
dict entries by key (``substrates.oxygen.uptake.S``), and the defaults of a drug
(``DrugConfig``, empty in the schema) under ``treatment.drugs.drug.`` as the page states.
A numeric leaf is an int or float field, a numeric field that defaults to null
(``Optional[float]``), or a list field (``grid.shape``, ``schedule.doses``).

Tables on the page come in two kinds, told apart by their first header cell:
``key | value | unit | meaning | source | status`` for schema defaults and
``preset | key | value | ...`` for values set in ``conf/treatment`` and ``conf/tissue``.
"""
from __future__ import annotations

import ast
import dataclasses
import math
import re
import typing
from pathlib import Path

import pytest
import yaml

from spatialdtp.config import DrugConfig, SpatialDTPConfig
from spatialdtp.params import parse_tables  # spatialdtp-params reads the page with it

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "parameters.md"
PRESET_GROUPS = ("treatment", "tissue")
STATUSES = ("checked", "unchecked", "calibrated", "none")
DRUG_PREFIX = "treatment.drugs.drug"


# --------------------------------------------------------------------------- the schema
def _is_numeric_type(tp) -> bool:
    """int/float, Optional[int/float], or a list (of numbers, or of [day, amount] pairs)."""
    origin = typing.get_origin(tp)
    if tp in (int, float):
        return True
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return len(args) == 1 and _is_numeric_type(args[0])
    if origin in (list, tuple):
        (arg,) = typing.get_args(tp)[:1] or (typing.Any,)
        return arg in (int, float, typing.Any) or typing.get_origin(arg) in (list, tuple)
    return False


def numeric_leaves(obj, prefix: str = "") -> dict:
    """Dotted key -> default value of every numeric leaf of a dataclass tree."""
    out = {}
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key = f"{prefix}.{f.name}" if prefix else f.name
        value, tp = getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(value):
            out.update(numeric_leaves(value, key))
        elif isinstance(value, dict):
            for name, entry in value.items():
                if dataclasses.is_dataclass(entry):
                    out.update(numeric_leaves(entry, f"{key}.{name}"))
                elif isinstance(entry, (int, float)) and not isinstance(entry, bool):
                    out[f"{key}.{name}"] = entry
        elif isinstance(value, bool) or isinstance(value, str):
            continue
        elif isinstance(value, (int, float)) or _is_numeric_type(tp):
            out[key] = value
    return out


def schema_leaves() -> dict:
    leaves = numeric_leaves(SpatialDTPConfig())
    leaves.update(numeric_leaves(DrugConfig(), DRUG_PREFIX))
    return leaves


# --------------------------------------------------------------------------- the presets
def _flatten(data: dict, prefix: str):
    for k, v in data.items():
        if k == "defaults":
            continue
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            yield from _flatten(v, key)
        elif isinstance(v, (int, float, list)) and not isinstance(v, bool):
            yield key, v


def preset_files() -> list[Path]:
    return sorted(p for g in PRESET_GROUPS for p in (ROOT / "conf" / g).glob("*.yaml"))


def preset_values() -> dict:
    """(preset path, dotted key) -> value of every numeric value a preset sets."""
    out = {}
    for path in preset_files():
        text = path.read_text()
        group = path.parent.name
        prefix = "" if "@package _global_" in text else group
        rel = path.relative_to(ROOT).as_posix()
        for key, value in _flatten(yaml.safe_load(text) or {}, prefix):
            out[(rel, key)] = value
    return out


# --------------------------------------------------------------------------- the page
def documented_rows(text: str):
    """Schema rows and preset rows, each a dict keyed by the header's column names."""
    schema, presets = [], []
    for header, rows in parse_tables(text):
        if header[0] not in ("key", "preset"):
            continue
        assert {"value", "unit", "source", "status"} <= set(header), \
            f"table {header} lacks one of the columns value, unit, source, status"
        for row in rows:
            assert len(row) == len(header), f"row {row} has {len(row)} cells, header {len(header)}"
            (schema if header[0] == "key" else presets).append(dict(zip(header, row)))
    return schema, presets


def parse_value(cell: str):
    """The literal a value cell starts with: null, a [list], or a number."""
    cell = cell.strip()
    if cell.startswith("null"):
        return None
    if cell.startswith("["):
        depth = 0
        for end, ch in enumerate(cell):
            depth += {"[": 1, "]": -1}.get(ch, 0)
            if depth == 0:
                return ast.literal_eval(cell[:end + 1])
    m = re.match(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", cell)
    if not m:
        raise ValueError(f"value cell {cell!r} does not start with null, a list or a number")
    return float(m.group(0))


def same(documented, actual) -> bool:
    if documented is None or actual is None:
        return documented is actual
    if isinstance(actual, (list, tuple)):
        return (isinstance(documented, (list, tuple)) and len(documented) == len(actual)
                and all(same(d, a) for d, a in zip(documented, actual)))
    return math.isclose(float(documented), float(actual), rel_tol=1e-3, abs_tol=1e-12)


def undocumented(leaves: dict, schema_rows: list[dict]) -> list[str]:
    keys = {r["key"] for r in schema_rows}
    return sorted(k for k in leaves if k not in keys)


@pytest.fixture(scope="module")
def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rows(doc_text):
    return documented_rows(doc_text)


# --------------------------------------------------------------------------- tests
def test_walker_reaches_dict_entries_nulls_lists_and_drug_defaults():
    leaves = schema_leaves()
    assert leaves["substrates.oxygen.uptake.S"] == 10.0
    assert leaves["substrates.hgf.secretion.F"] == 0.45
    assert leaves["treatment.drugs.drug.pk.elimination"] == 3.2e-4
    assert leaves["treatment.drugs.drug.transport.uptake.P"] == 0.01
    assert leaves["cells.capacity"] is None and "substrates.glucose.uptake_km" in leaves
    assert leaves["grid.shape"] == [128, 128] and leaves["treatment.drugs.drug.schedule.doses"] == []
    assert "run.output" not in leaves and "run.progress" not in leaves  # str and bool are not numbers


def test_a_schema_field_without_a_row_is_reported():
    """The check can fail: an extra numeric field in a copy of the schema is caught."""
    @dataclasses.dataclass
    class Extended(SpatialDTPConfig):
        new_rate: float = 1.0e-3

    schema_rows, _ = documented_rows(DOC.read_text(encoding="utf-8"))
    leaves = numeric_leaves(Extended())
    leaves.update(numeric_leaves(DrugConfig(), DRUG_PREFIX))
    assert undocumented(leaves, schema_rows) == ["new_rate"]


def test_every_numeric_default_of_the_schema_has_a_row(rows):
    schema_rows, _ = rows
    missing = undocumented(schema_leaves(), schema_rows)
    assert not missing, f"numeric defaults with no row in docs/parameters.md: {missing}"


def test_every_schema_row_names_a_real_key_with_its_default_value(rows):
    schema_rows, _ = rows
    leaves = schema_leaves()
    seen = set()
    for r in schema_rows:
        key = r["key"]
        assert key in leaves, f"docs/parameters.md documents {key!r}, which is not in the schema"
        assert key not in seen, f"{key!r} has two rows"
        seen.add(key)
        documented = parse_value(r["value"])
        assert same(documented, leaves[key]), \
            f"{key}: docs say {r['value']!r}, config.py has {leaves[key]!r}"


def test_every_row_names_a_unit_a_source_and_a_status(rows):
    schema_rows, preset_rows = rows
    assert schema_rows and preset_rows
    for r in schema_rows + preset_rows:
        where = r.get("preset", "") + " " + r["key"]
        assert r["unit"], f"{where}: empty unit (write 1 for dimensionless)"
        source = r["source"]
        assert source and source not in ("-", "—", "–"), f"{where}: empty source"
        status = r["status"].split()[0] if r["status"] else ""
        assert status in STATUSES, f"{where}: status {r['status']!r} is not one of {STATUSES}"
        if status == "none":
            assert source.startswith("no source:"), \
                f"{where}: status none needs a source starting 'no source:' and a reason"
        else:
            assert not source.startswith("no source"), \
                f"{where}: status {status} but the source says there is none"


def test_every_preset_file_is_mentioned(doc_text):
    for path in preset_files():
        rel = path.relative_to(ROOT).as_posix()
        assert rel in doc_text, f"{rel} is not mentioned in docs/parameters.md"


def test_every_preset_value_has_a_row_with_that_value(rows):
    _, preset_rows = rows
    values = preset_values()
    documented = {}
    for r in preset_rows:
        pair = (r["preset"], r["key"])
        assert pair in values, f"docs/parameters.md lists {pair}, which that preset does not set"
        assert pair not in documented, f"{pair} has two rows"
        documented[pair] = parse_value(r["value"])
    missing = sorted(set(values) - set(documented))
    assert not missing, f"preset values with no row in docs/parameters.md: {missing}"
    for pair, value in values.items():
        assert same(documented[pair], value), \
            f"{pair}: docs say {documented[pair]!r}, the preset sets {value!r}"


def test_preset_keys_are_keys_of_the_schema():
    """A preset row's key must be a real config path (drug names aside)."""
    leaves = schema_leaves()
    for (path, key), _ in preset_values().items():
        generic = re.sub(r"^treatment\.drugs\.[^.]+\.", f"{DRUG_PREFIX}.", key)
        assert generic in leaves, f"{path}: {key} is not a numeric key of the schema"


def test_spatialdtp_params_prints_the_page_row_of_a_key(capsys):
    """spatialdtp-params reads the very rows this file checks against the schema."""
    from spatialdtp.params import main

    schema, _ = documented_rows(DOC.read_text())
    row = next(r for r in schema if r["key"] == "grid.dx")
    assert main(["grid.dx"]) == 0
    out = capsys.readouterr().out
    for column in ("meaning", "unit", "value", "source", "status"):
        assert row[column] in out, column
    assert "default job (conf/config.yaml): [96, 96]" in (main(["grid.shape"]) or
                                                          capsys.readouterr().out)
    assert main(["no.such.key"]) == 2
    assert main([]) == 0 and len(capsys.readouterr().out.splitlines()) == len(schema)
