"""Where the Hydra configs and CUDA kernel sources are, installed or not.

A wheel carries them inside the package (``spatialdtp/conf``, ``spatialdtp/kernels``); a
source checkout or an editable install keeps them at the repository's top level.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"spatialdtp's {name}/ directory is missing from {_PACKAGE} and {_PACKAGE.parent}; "
        "reinstall the package (pip install spatialdtp) or run from a full source checkout")


def conf_dir() -> Path:
    return _find("conf")


def kernels_dir() -> Path:
    return _find("kernels")


def docs_dir() -> Path:
    """docs/ (parameters.md is what ``spatialdtp-params`` prints)."""
    return _find("docs")
