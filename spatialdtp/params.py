"""``spatialdtp-params [KEY]``: a parameter's meaning, unit, default and source.

    spatialdtp-params                      # every key with its value and unit
    spatialdtp-params cells.switching.theta
    spatialdtp-params substrates.oxygen    # every key under a prefix

The one source of truth is the tables of ``docs/parameters.md`` (``key | value | unit |
meaning | source | status`` and, for preset values, ``preset | key | value | ...``);
``tests/test_parameter_docs.py`` checks them against the schema's defaults and the preset
files with the parser below, so what this prints is what the code uses. The value the
default job actually runs with (``conf/config.yaml`` composed) is printed beside it.
"""
from __future__ import annotations

import argparse
import re
import sys

from .resources import docs_dir

PAGE = "parameters.md"


def parse_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Markdown tables as (header cells, rows of cells); backticks stripped."""
    def cells(line):
        return [c.strip().replace("`", "") for c in line.strip().strip("|").split("|")]

    tables, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) \
                and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]):
            header, rows, i = cells(lines[i]), [], i + 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


def documented_rows(text: str | None = None) -> tuple[list[dict], list[dict]]:
    """(schema rows, preset rows) of the page, each a dict keyed by its table's header."""
    text = (docs_dir() / PAGE).read_text(encoding="utf-8") if text is None else text
    schema, presets = [], []
    for header, rows in parse_tables(text):
        if header[0] not in ("key", "preset"):
            continue
        for row in rows:
            (schema if header[0] == "key" else presets).append(dict(zip(header, row)))
    return schema, presets


def configured_value(key: str):
    """The value of ``key`` in the default job (conf/config.yaml composed); None if the key
    is not a plain path there (``treatment.drugs.drug.*`` is a drug's schema default)."""
    from .cli import compose

    node = compose()
    for part in key.split("."):
        if isinstance(node, dict):
            if part not in node:
                return None
            node = node[part]
        elif hasattr(node, part):
            node = getattr(node, part)
        else:
            return None
    return node


def describe(row: dict, presets: list[dict]) -> str:
    key = row["key"]
    lines = [key, f"  meaning:  {row['meaning']}", f"  unit:     {row['unit']}",
             f"  default:  {row['value']} (schema)"]
    configured = configured_value(key)
    if configured is not None and str(configured) != row["value"]:
        lines.append(f"  default job (conf/config.yaml): {configured}")
    lines += [f"  source:   {row['source']}", f"  status:   {row['status']}"]
    for p in presets:
        if p["key"] == key:
            lines.append(f"  preset {p['preset']}: {p['value']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="spatialdtp-params",
        description="A parameter's meaning, unit, default and source (docs/parameters.md).")
    parser.add_argument("key", nargs="?", help="a config key (cells.switching.theta) or a "
                                               "prefix (substrates.oxygen); none: list all")
    args = parser.parse_args(argv)
    schema, presets = documented_rows()
    if args.key is None:
        width = max(len(r["key"]) for r in schema)
        for r in schema:
            print(f"{r['key']:<{width}}  {r['value']:>12}  {r['unit']}")
        return 0
    exact = [r for r in schema if r["key"] == args.key]
    under = [r for r in schema if r["key"].startswith(args.key + ".")]
    if not exact and not under:
        close = [r["key"] for r in schema if args.key.split(".")[-1] in r["key"]][:10]
        hint = f"; similar: {', '.join(close)}" if close else ""
        print(f"spatialdtp-params: {args.key!r} is not a documented key{hint}", file=sys.stderr)
        return 2
    print("\n\n".join(describe(r, presets) for r in exact + under))
    return 0


if __name__ == "__main__":
    sys.exit(main())
