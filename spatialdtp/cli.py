"""``spatialdtp-run``: the Hydra application (the only module that imports Hydra).

    spatialdtp-run                                   # the default 2D demo on the CPU
    spatialdtp-run treatment=intermittent run.days=42 grid.shape=[256,256]
    spatialdtp-run -m treatment=continuous,intermittent,adaptive seed=0,1,2
    spatialdtp-run +resume=outputs/2026-11-21/12-00-00/run.h5 run.days=60

The composed config is turned into the dataclasses of :mod:`spatialdtp.config` and
checked before anything is allocated; the run file is written in Hydra's run directory.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .config import ConfigError, SpatialDTPConfig
from .resources import conf_dir

log = logging.getLogger("spatialdtp")

ConfigStore.instance().store(name="spatialdtp_schema", node=SpatialDTPConfig)


def to_config(cfg: DictConfig) -> SpatialDTPConfig:
    return OmegaConf.to_object(cfg)


def _run(cfg: DictConfig):
    from .observables import format_summary
    from .simulation import NonFiniteError, RunInterrupted, Simulation

    config = to_config(cfg)
    try:
        if config.resume:
            days = config.run.days if _overridden("run.days") else None
            sim = Simulation.resume(config.resume, days=days)
            path = Path(config.resume)
            log.info("resuming %s at t = %.3f days", path, sim.t / 1440)
        else:
            sim = Simulation(config)
            path = Path(HydraConfig.get().runtime.output_dir) / config.run.output
        log.info("%s", sim.describe())
        log.info("backend %s on %s", sim.backend.name, sim.backend.device())
        summary = sim.run_until(path=path)
    except ConfigError as err:
        log.error("configuration error: %s", err)
        raise SystemExit(2) from None
    except RunInterrupted as err:
        log.warning("%s", err)
        raise SystemExit(130) from None
    except NonFiniteError as err:
        log.error("%s", err)
        raise SystemExit(3) from None
    log.info("run file: %s", path)
    print(format_summary(summary))
    return summary.get("time_to_progression_days")


def _overridden(key: str) -> bool:
    try:
        return any(o.split("=", 1)[0].lstrip("+~") == key for o in HydraConfig.get().overrides.task)
    except ValueError:
        return False


def _accept_plus_resume(argv: list[str]) -> list[str]:
    """``+resume=PATH`` is the documented spelling; the schema already has ``resume``."""
    return [("resume=" + a[len("+resume="):]) if a.startswith("+resume=") else a for a in argv]


def main() -> None:
    sys.argv = _accept_plus_resume(sys.argv)
    app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")(_run)
    app()


if __name__ == "__main__":
    main()
