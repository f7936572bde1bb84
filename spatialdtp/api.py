"""The Python API for notebooks: the command line's configs, without the command line.

    >>> from spatialdtp import api
    >>> sim = api.simulation(["grid.shape=[64,64]", "treatment=intermittent"])
    >>> sim.run_until(days=3, path="run.h5")      # writes the run file and its PNG
    >>> sim.field("P").sum(), sim.observables_table().tail()
"""
from __future__ import annotations

from typing import Iterable

from .config import SpatialDTPConfig, validate
from .resources import conf_dir


def load_config(overrides: Iterable[str] = (), config_name: str = "config") -> SpatialDTPConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from . import cli  # noqa: F401  (registers the schema in Hydra's ConfigStore)

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    cfg = OmegaConf.to_object(cfg)
    validate(cfg)
    return cfg


def simulation(overrides: Iterable[str] = (), config_name: str = "config", backend=None):
    """A ready-to-step :class:`~spatialdtp.simulation.Simulation` from config overrides."""
    from .simulation import Simulation

    return Simulation(load_config(overrides, config_name), backend)


def resume(path, days: float | None = None, backend=None):
    """Continue a run from the checkpoint in its run file."""
    from .simulation import Simulation

    return Simulation.resume(path, backend=backend, days=days)
