"""Which run a plot shows, in words: its file and the Hydra overrides it was run with.

Every run file is called ``run.h5``, so the name alone does not tell two runs apart: the
label adds the run's directory and, from Hydra's ``.hydra/overrides.yaml`` beside the file,
the overrides that made it. A file without them (a copied file, a live run, a run made
through the API) is described by its settings (tissue, treatment, seed, grid) instead.
"""
from __future__ import annotations

import os

from ..run.response_marks import run_settings


def hydra_overrides(run_path) -> list[str] | None:
    """The overrides Hydra recorded for the run whose file is ``run_path`` (None when the
    run's directory has no ``.hydra/overrides.yaml``, or it cannot be read)."""
    if not run_path:
        return None
    import yaml

    path = os.path.join(os.path.dirname(os.path.abspath(os.fspath(run_path))), ".hydra",
                        "overrides.yaml")
    try:
        with open(path, encoding="utf-8") as f:
            overrides = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    return [str(o) for o in overrides] if isinstance(overrides, list) else None


def run_label(source) -> str:
    """Two lines: ``<directory>/<file>`` and the run's overrides (or its settings)."""
    path = getattr(source, "path", None)
    name = source.name
    if path:
        parent = os.path.basename(os.path.dirname(os.path.abspath(os.fspath(path))))
        name = f"{parent}/{name}" if parent else name
    overrides = hydra_overrides(path)
    if overrides is not None:
        detail = " ".join(overrides) if overrides else "defaults (no overrides)"
    else:
        detail = run_settings(source.cfg, source.grid.shape, source.grid.dx)
    return f"{name}\n{detail}"
