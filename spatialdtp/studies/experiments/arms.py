"""The arms of an experiment and one run of an arm.

Each experiment is a preset in ``conf/experiment/`` whose ``hydra.sweeper.params`` sweep
its arms (and seeds). :func:`arms` gives each arm's overrides; :class:`ArmRun` holds one
run's time courses and last frame, from a finished simulation or a run file of a sweep
(:func:`load_sweep`).

Units: cells (P, R, burden), cells/voxel (densities), days (times since treatment start),
µm (distances).
"""
from __future__ import annotations

import functools
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ...resources import conf_dir
from ...run import niche
from ...units import MINUTES_PER_DAY

EXPERIMENTS = ("schedules", "combinations", "niche", "persister_origin")
CELL_FIELDS = ("S", "P", "R", "F", "M")
#: the last frame's fields an arm run keeps: the cells and the substrates (to show what a
#: partner drug did, or did not, change, and for the two-zone estimate); the drugs too
FRAME_FIELDS = CELL_FIELDS + ("oxygen", "glucose", "hgf", "chemokine")


# --------------------------------------------------------------------------- the arms
def preset_path(experiment: str) -> Path:
    path = Path(conf_dir()) / "experiment" / f"{experiment}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (Path(conf_dir()) / "experiment").glob("*.yaml"))
        raise ValueError(f"experiment={experiment!r}: no preset {path}; presets are {known}")
    return path


def sweep_params(experiment: str) -> dict[str, list[str]]:
    """The preset's ``hydra.sweeper.params`` as {key: [values]} (seed included)."""
    import yaml

    data = yaml.safe_load(preset_path(experiment).read_text()) or {}
    params = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    if not params:
        raise ValueError(f"experiment={experiment!r}: its preset sets no hydra.sweeper.params")
    return {str(k): [v.strip() for v in str(val).split(",")] for k, val in params.items()}


def arm_keys(experiment: str) -> tuple[str, ...]:
    """The swept keys that tell the arms apart (every swept key but ``seed``)."""
    return tuple(k for k in sweep_params(experiment) if k != "seed")


def arm_label(values: dict[str, str], keys: Sequence[str]) -> str:
    return " + ".join(str(values[k]) for k in keys)


def arms(experiment: str) -> dict[str, list[str]]:
    """{arm label: overrides} for every arm of the preset (seeds left out), e.g.
    ``arms("schedules")["adaptive"] == ["experiment=schedules", "treatment=adaptive"]``."""
    params = sweep_params(experiment)
    keys = arm_keys(experiment)
    out = {}
    for combo in itertools.product(*(params[k] for k in keys)):
        values = dict(zip(keys, combo))
        out[arm_label(values, keys)] = [f"experiment={experiment}"] + [
            f"{k}={v}" for k, v in values.items()]
    return out


# --------------------------------------------------------------------------- one run
@dataclass
class ArmRun:
    """One run of one arm: time courses, baseline, the last frame, and the tumour at
    treatment start (the reference of the niche measure, :mod:`spatialdtp.run.niche`)."""

    arm: str
    seed: int
    days: np.ndarray                       # days since treatment start, one per step
    observables: dict[str, np.ndarray]     # per step (cells, fractions, µM)
    fields: dict[str, np.ndarray]          # last frame: FRAME_FIELDS and the drugs
    tumour_start: np.ndarray               # S + P + R at treatment start (cells/voxel)
    geometry: niche.NicheGeometry          # the niche measure's settings of the run
    cfg: object = None                     # the run's SpatialDTPConfig
    summary: dict[str, float] = field(default_factory=dict)

    @property
    def baseline(self) -> float:
        """Burden (cells) at treatment start."""
        return float(self.summary.get("baseline_burden", self.observables["burden"][0]))

    @property
    def dx(self) -> float:
        return self.geometry.dx

    @functools.cached_property
    def reference(self) -> niche.NicheReference:
        return niche.reference_of(self.tumour_start, self.geometry)

    @property
    def bed(self) -> np.ndarray:
        """bool: the tumour bed, voxels that held tumour at treatment start."""
        return np.asarray(self.reference.bed)

    @classmethod
    def from_simulation(cls, sim, arm: str = "") -> "ArmRun":
        """From a simulation that has run past treatment start."""
        from ...run.simulation import treatment_start_minutes

        obs = sim.observables()
        start = treatment_start_minutes(sim.cfg)
        ref = sim.observer.reference
        if ref is None:
            raise ValueError(f"{arm!r}: the run has not reached treatment start "
                             f"({start / MINUTES_PER_DAY:g} d)")
        return cls(arm=arm, seed=int(sim.cfg.seed),
                   days=(obs["time"] - start) / MINUTES_PER_DAY, observables=obs,
                   fields={c: sim.field(c) for c in FRAME_FIELDS + sim.drugs},
                   tumour_start=sim.backend.to_host(ref.T0).astype(np.float64),
                   geometry=sim.observer.geometry, cfg=sim.cfg, summary=sim.summary())

    @classmethod
    def from_run_file(cls, path, arm: str = "") -> "ArmRun":
        """From a run file. The tumour at treatment start is its ``/static/tumour_start``
        map; a file written before that map existed falls back to its first frame."""
        from ...config import from_dict
        from ...run.runfile import read_run

        run = read_run(path)
        cfg = from_dict(run.config_dict())
        obs = run.read_observables()
        start = float(run.summary.get("treatment_start_day", 0.0) or 0.0)
        names = FRAME_FIELDS + tuple(cfg.treatment.drugs)
        with run:
            fields = {c: np.asarray(run.frame(c, -1), dtype=np.float64) for c in names}
            if "tumour_start" in run.static:
                T0 = np.asarray(run.static_map("tumour_start"), dtype=np.float64)
            else:
                T0 = sum(np.asarray(run.frame(c, 0), dtype=np.float64) for c in ("S", "P", "R"))
        geometry = niche.NicheGeometry.of(cfg.run, float(run.attrs["capacity"]),
                                          float(run.attrs["dx"]))
        return cls(arm=arm, seed=int(cfg.seed),
                   days=obs["time"] / MINUTES_PER_DAY - start, observables=obs, fields=fields,
                   tumour_start=T0, geometry=geometry, cfg=cfg, summary=dict(run.summary))


# --------------------------------------------------------------------------- sweeps
def _job_overrides(job_dir: Path) -> list[str]:
    import yaml

    path = job_dir / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []


def load_sweep(sweep_dir, experiment: str | None = None) -> tuple[str, list[ArmRun]]:
    """Every finished run of a Hydra multirun directory, labelled by arm.

    The experiment is read from the jobs' ``experiment=...`` override unless given; the
    arm label from the values of the experiment's swept keys in each job's overrides
    (:func:`arm_keys`). Runs whose file is not ``complete`` are skipped with a note on
    stderr.
    """
    from ...run.runfile import is_run_file, read_run

    sweep_dir = Path(sweep_dir)
    jobs = sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()),
                  key=lambda p: (len(p.name.split("_")[0]), p.name)) if sweep_dir.is_dir() else []
    if not jobs:
        raise ValueError(f"sweep_dir={str(sweep_dir)!r}: no Hydra job directories "
                         "(<n>_<overrides>/.hydra) in it")
    runs, name = [], experiment
    for job in jobs:
        overrides = dict(o.lstrip("+~").split("=", 1) for o in _job_overrides(job) if "=" in o)
        name = name or overrides.get("experiment")
        if name is None:
            raise ValueError(f"{job}: no experiment=... override; pass experiment=")
        keys = arm_keys(name)
        files = sorted(job.glob("*.h5"))
        if not files or not is_run_file(files[0]) or read_run(files[0]).status != "complete":
            print(f"skipped {job.name}: no complete run file", file=sys.stderr)
            continue
        defaults = sweep_params(name)
        label = arm_label({k: overrides.get(k, defaults[k][0]) for k in keys}, keys)
        runs.append(ArmRun.from_run_file(files[0], label))
    return name, runs
