"""The Python API for notebooks: the command line's configs, without the command line.

    >>> from spatialdtp import api
    >>> sim = api.simulation(["grid.shape=[64,64]", "treatment=intermittent"])
    >>> sim.run_until(days=3, path="run.h5")      # writes the run file and its PNG
    >>> sim.field("P").sum(), sim.observables_table().tail()
    >>> more = api.resume("run.h5", days=5)
    >>> more.run_until()                          # continues in run.h5
"""
from __future__ import annotations

from typing import Iterable

from .config import SpatialDTPConfig, validate


def load_config(overrides: Iterable[str] = (), config_name: str = "config") -> SpatialDTPConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides."""
    from .cli import compose

    cfg = compose(overrides, config_name)
    validate(cfg)
    return cfg


def simulation(overrides: Iterable[str] = (), config_name: str = "config", backend=None):
    """A ready-to-step :class:`~spatialdtp.run.simulation.Simulation` from config overrides."""
    from .run.simulation import Simulation

    return Simulation(load_config(overrides, config_name), backend)


def resume(path, days: float | None = None, backend=None):
    """Continue a run from the checkpoint in its run file; ``run_until()`` then appends to
    that same file (``path=`` another file to branch off, ``path=False`` for none)."""
    from .run.simulation import Simulation

    return Simulation.resume(path, backend=backend, days=days)
