"""The schema of a run's machinery: grid, stepping and outputs, numerics, backend, viewer,
and the objective a sweep's run returns.
"""
from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field
from typing import List, Optional

from .checks import ConfigError, choice, fail, integer_in, nonneg, positive

PRECISIONS = ("float32", "float64")
BACKENDS = ("auto", "numpy", "cpu", "cupy")
SCHEMES = ("backward_euler", "tr_bdf2", "crank_nicolson")
SOLVERS = ("multigrid", "pcg")
#: objective.censored_value that means "the simulated days since treatment start"
CENSORED_RUN_DAYS = "run_days"


@dataclass
class NumericsConfig:
    # Substrate time stepping: backward_euler (1st order, L-stable, positivity preserving,
    # exact steady states), tr_bdf2 (2nd order, L-stable; two solves a step) or
    # crank_nicolson (2nd order, not L-stable: stiff transients ring; for smooth problems).
    scheme: str = "backward_euler"
    # How the implicit systems are solved: multigrid (every substrate of a step in one
    # batched multigrid solve, V-cycles as the solver) or pcg (multigrid-preconditioned
    # conjugate gradients, one substrate at a time: the solver before multigrid).
    solver: str = "multigrid"
    # Factor by which a solve reduces its true, diagonally scaled residual from its start.
    # null: derived from the step's time-discretisation error (0.05 for a backward-Euler
    # step started from its predictor, 0.05² otherwise; see the README's Numerics).
    rtol: Optional[float] = None
    max_iterations: int = 200          # V-cycles (multigrid) or CG iterations (pcg) per solve
    # Michaelis–Menten uptake is linearised at the start of the step; each extra pass
    # re-linearises at the step's midpoint value (1 pass keeps tr_bdf2 second order).
    picard_iterations: int = 0


@dataclass
class GridConfig:
    shape: List[int] = field(default_factory=lambda: [128, 128])
    dx: float = 20.0                   # µm


@dataclass
class BackendConfig:
    name: str = "auto"                 # auto | numpy | cpu | cupy
    precision: str = "float32"         # float32 | float64


@dataclass
class RunConfig:
    days: float = 21.0                 # simulated time
    dt: float = 10.0                   # minutes per step
    output_interval_hours: float = 12.0  # how often field frames are written
    checkpoint_interval_hours: float = 24.0
    progression_factor: float = 1.2    # progression: burden > factor × baseline
    # the niche measure (spatialdtp.run.niche): niche voxels, near and far, edge strata
    niche_threshold: float = 0.25      # F + M that makes a voxel a niche, fraction of capacity
    niche_distance: float = 50.0       # µm: tumour within this of a niche voxel is "near"
    niche_far_distance: float = 150.0  # µm: tumour beyond this from every niche is "far"
    niche_edge_bin: float = 50.0       # µm: width of the strata of distance to the tumour edge
    hypoxic_threshold: float = 15.0    # mmHg, for the hypoxic fraction
    mrd_threshold: float = 1.0e-3      # minimal residual disease: burden / baseline below this
    output: str = "run.h5"             # run file name, inside the Hydra run directory
    progress: bool = True
    plot: bool = True
    overwrite: bool = False            # replace an existing run file (never one being written)


@dataclass
class ViewerConfig:
    mode: str = "none"                 # none | live (napari follows the run as it goes)


@dataclass
class ObjectiveConfig:
    """What a sweep's run returns to Hydra (the Optuna sweeper maximises or minimises it)."""
    metric: str = "time_to_progression_days"   # a key of the end-of-run summary
    censored_value: str = "run_days"           # value when the metric is NaN (never progressed)
    dose_cap: Optional[float] = None           # cap on cumulative plasma exposure, µM·day
    penalty: float = 0.0                       # value returned when the cap is exceeded


def validate_run(cfg) -> int:
    """Grid, run, seed, numerics, backend and viewer of ``cfg``; returns the grid's ndim."""
    g = cfg.grid
    if not (isinstance(g.shape, (list, tuple)) and len(g.shape) in (2, 3)
            and all(isinstance(n, int) and n >= 3 for n in g.shape)):
        fail("grid.shape", list(g.shape) if isinstance(g.shape, (list, tuple)) else g.shape,
             "2 or 3 integers >= 3: [ny, nx] or [nz, ny, nx]")
    ndim = len(g.shape)
    positive("grid.dx", g.dx)
    r = cfg.run
    positive("run.days", r.days)
    positive("run.dt", r.dt)
    positive("run.output_interval_hours", r.output_interval_hours)
    positive("run.checkpoint_interval_hours", r.checkpoint_interval_hours)
    positive("run.progression_factor", r.progression_factor)
    nonneg("run.niche_distance", r.niche_distance)
    if not (isinstance(r.niche_threshold, (int, float)) and 0 < r.niche_threshold <= 1):
        fail("run.niche_threshold", r.niche_threshold, "must be a fraction of capacity in (0, 1]")
    if not (isinstance(r.niche_far_distance, (int, float))
            and math.isfinite(r.niche_far_distance)
            and r.niche_far_distance >= r.niche_distance):
        fail("run.niche_far_distance", r.niche_far_distance,
             f"must be a finite distance >= run.niche_distance ({r.niche_distance}) µm")
    positive("run.niche_edge_bin", r.niche_edge_bin)
    positive("run.mrd_threshold", r.mrd_threshold)
    nonneg("run.hypoxic_threshold", r.hypoxic_threshold)
    check_output_name(r.output)
    for key in ("progress", "plot", "overwrite"):
        if not isinstance(getattr(r, key), bool):
            fail(f"run.{key}", getattr(r, key), "must be true or false")
    integer_in("seed", cfg.seed, 0)
    n = cfg.numerics
    choice("numerics.scheme", n.scheme, SCHEMES)
    choice("numerics.solver", n.solver, SOLVERS)
    if n.rtol is not None:
        positive("numerics.rtol", n.rtol)
        if not n.rtol < 1:
            fail("numerics.rtol", n.rtol, "must be null (derived) or a number in (0, 1): "
                 "the factor by which a solve reduces its residual")
    integer_in("numerics.picard_iterations", n.picard_iterations, 0, 10)
    integer_in("numerics.max_iterations", n.max_iterations, 1)
    choice("backend.name", cfg.backend.name, BACKENDS)
    choice("backend.precision", cfg.backend.precision, PRECISIONS)
    choice("viewer.mode", cfg.viewer.mode, ("none", "live"))
    return ndim


def check_output_name(output) -> None:
    """``run.output`` names a file inside the run directory: a relative path without
    ``..``, ending in .h5 or .hdf5 (so that sweeps, the viewer and resume find it)."""
    allowed = ("a file name inside the run directory, e.g. 'run.h5' or 'out/run.h5' "
               "(relative, no '..', ending in .h5 or .hdf5)")
    if not isinstance(output, str) or not output.strip():
        fail("run.output", output, allowed)
    norm = posixpath.normpath(output.replace("\\", "/"))
    if (posixpath.isabs(norm) or norm.split("/")[0] in ("..", ".", "~") or output.endswith("/")
            or not norm.lower().endswith((".h5", ".hdf5")) or "\0" in output):
        fail("run.output", output, allowed)


def check_objective(objective: ObjectiveConfig) -> None:
    """Refuse values that cannot give a number, before a run starts (ValueError naming the key)."""
    if objective.censored_value != CENSORED_RUN_DAYS:
        try:
            ok = math.isfinite(float(objective.censored_value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"objective.censored_value={objective.censored_value!r}: must be "
                             f"{CENSORED_RUN_DAYS!r} or a finite number")
    cap = objective.dose_cap
    if cap is not None and not (isinstance(cap, (int, float)) and math.isfinite(cap) and cap >= 0):
        raise ValueError(f"objective.dose_cap={cap!r}: must be null or a finite number >= 0 "
                         "(µM·day)")
    if not (isinstance(objective.penalty, (int, float)) and math.isfinite(objective.penalty)):
        raise ValueError(f"objective.penalty={objective.penalty!r}: must be a finite number")


def validate_objective(objective: ObjectiveConfig, metrics) -> None:
    """The objective section; ``metrics``: the summary keys ``metric`` may name."""
    try:
        check_objective(objective)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    choice("objective.metric", objective.metric, list(metrics))
