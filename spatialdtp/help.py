"""The text of ``spatialdtp-run --help``: what the app does and every preset with one line,
read from the opening comment of its YAML file (so a new preset documents itself).

Hydra renders it (``hydra/help`` in :mod:`spatialdtp.cli`); ``$FLAGS_HELP`` is Hydra's own
list of flags.
"""
from __future__ import annotations

import re
from pathlib import Path

from .resources import conf_dir

INTRO = """\
spatialdtp-run: a spatial reaction-diffusion simulation of drug-tolerant persister (DTP)
cancer cells and the CAF/TAM niches that shelter them. One run writes run.h5 (fields,
observables, checkpoint), run_summary.json, run_observables.csv and run_summary.png into
its run directory (outputs/DATE/TIME); -m runs a sweep (multirun/DATE/TIME).

Usage:
  spatialdtp-run [GROUP=PRESET ...] [KEY=VALUE ...]   one run, e.g. treatment=adaptive
  spatialdtp-run -m treatment=continuous,adaptive seed=0,1,2   a sweep
  spatialdtp-run +resume=outputs/DATE/TIME/run.h5 run.days=60   continue a run
  spatialdtp-run --cfg job          print the composed config;  --version  the version
  spatialdtp-params [KEY]           a parameter's meaning, unit, default and source
  spatialdtp-summarize DIR          table and plots of a sweep or of one run
"""
# the groups in the order a newcomer needs them; experiments are split in two below
GROUPS = ("tissue", "cells", "treatment", "substrates", "backend", "viewer")


def describe(path: Path, width: int = 72) -> str:
    """The first sentence of the file's opening comment (``# @package`` lines skipped)."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# @package"):
            continue
        words.append(line.lstrip("# ").strip())
    text = " ".join(words)
    text = re.sub(r"^(Experiment|Schedule optimisation|Benchmark reference problem)[:,]\s*",
                  "", text)   # the section title says it already
    m = re.match(r"(.+?(?<! al)\.)(\s|$)", text)    # the first sentence ("et al." is not one)
    text = m.group(1) if m else text
    if len(text) <= width:
        return text
    return text[:width - 1].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def _section(title: str, paths, prefix: str, default: str | None = None) -> list[str]:
    paths = sorted(paths)
    width = max((len(p.stem) for p in paths), default=0) + 1
    lines = [title]
    for p in paths:
        mark = "*" if p.stem == default else " "
        lines.append(f"  {prefix}{p.stem + mark:<{width}} {describe(p)}")
    return lines + [""]


def help_text() -> str:
    conf = conf_dir()
    defaults = {}
    for line in (conf / "config.yaml").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*-\s*(\w+):\s*(\w+)", line)
        if m:
            defaults[m.group(1)] = m.group(2)
    lines = [INTRO, "Config groups (GROUP=PRESET; * the default):", ""]
    for group in GROUPS:
        lines += _section(f"{group}:", (conf / group).glob("*.yaml"), f"{group}=",
                          defaults.get(group))
    experiments = list((conf / "experiment").glob("*.yaml"))
    lines += _section("Experiments (a whole study's settings; run them with -m):",
                      [p for p in experiments if not p.stem.startswith("bench_")],
                      "experiment=")
    lines += _section("Benchmark presets (benchmarks/, not biology):",
                      [p for p in experiments if p.stem.startswith("bench_")], "experiment=")
    lines += _section("Launchers for -m (hydra/launcher=NAME; default: one job after another):",
                      (conf / "hydra" / "launcher").glob("*.yaml"), "hydra/launcher=")
    lines += _section("Schedule optimisation (with -m; Optuna):",
                      (conf / "optimize").glob("*.yaml"), "+optimize=")
    lines += ["Any key can be set: grid.shape=[128,128] run.days=42 seed=1 "
              "(all keys: README, docs/parameters.md).", "", "$FLAGS_HELP"]
    return "\n".join(lines)
