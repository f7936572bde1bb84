"""Bounds on the work a configuration implies, checked before a run starts.

Every value here is finite and positive once the sections are valid, yet some finite
values would keep a run going for ever: ``run.dt=1e-300`` (steps), an output interval of
1e-9 h (frames, and a step cut at each), a bolus every 1e-9 h (doses), motility 1e30
(explicit transport sub-steps). :func:`check_work` counts what the run would do and refuses
a configuration beyond these bounds, naming the keys that imply it:

=============================  ============  ==============================================
bound                          value         what it counts
=============================  ============  ==============================================
:data:`MAX_STEPS`              10⁷           steps, ``days·1440/dt`` plus one per frame
:data:`MAX_FRAMES`             10⁵           frames, ``days·24/output_interval_hours``
:data:`MAX_TRANSPORT_SUBSTEPS` 10⁶           explicit cell-transport sub-steps per half step
:data:`MAX_TRANSPORT_WORK`     10¹²          voxel updates of the cell transport over the run
:data:`MAX_TREATMENT_EVENTS`   10⁶           doses and on/off switches of one drug
:data:`MAX_SOLVER_ITERATIONS`  10⁵           ``numerics.max_iterations``
=============================  ============  ==============================================

10⁷ steps of the smallest grid, or 10¹² transport voxel updates, take hours to a day on
one core, not for ever. The memory the per-step observables need is counted by
:mod:`.memory` and checked against free memory as well. The chemotactic drift is bounded
from the configuration (:func:`chemokine_bound`); the transport checks its sub-step count
again at run time, from the chemokine field itself.
"""
from __future__ import annotations

import math

from ..units import MINUTES_PER_DAY, MINUTES_PER_HOUR
from .checks import ConfigError

MAX_STEPS = 10_000_000
MAX_FRAMES = 100_000
MAX_TRANSPORT_SUBSTEPS = 1_000_000
MAX_TRANSPORT_WORK = 1e12
MAX_TREATMENT_EVENTS = 1_000_000
MAX_SOLVER_ITERATIONS = 100_000
#: the explicit transport's stability bound (numerics.transport.substeps uses the same)
TRANSPORT_COURANT = 0.9


def run_minutes(cfg) -> float:
    return cfg.run.days * MINUTES_PER_DAY


def _ratio(a: float, b: float) -> float:
    """a / b for a >= 0, b > 0, as a float that is inf rather than an overflow error."""
    try:
        return a / b
    except (OverflowError, ZeroDivisionError):
        return math.inf


def _ceil(x: float) -> float:
    return float(math.ceil(x)) if math.isfinite(x) else math.inf


# Counts are floats: a count of 1e300 must compare against a bound, not overflow.
def n_frames(cfg) -> float:
    """Frames a run writes: the initial one, one per output interval, and the last."""
    return _ceil(_ratio(cfg.run.days * 24.0, cfg.run.output_interval_hours)) + 1


def n_steps(cfg) -> float:
    """Steps a run takes at most: ``run.dt`` steps, each output time cutting one more."""
    return _ceil(_ratio(run_minutes(cfg), cfg.run.dt)) + n_frames(cfg)


def transport_substeps(D_max: float, v_max: float, tau: float, dx: float, ndim: int) -> float:
    """Sub-steps of the explicit cell transport over ``tau`` minutes, as
    :func:`spatialdtp.numerics.transport.substeps` counts them:
    ``ceil(τ·2d·(D/dx² + v/dx) / 0.9)``, at least 1."""
    courant = tau * 2 * ndim * (_ratio(D_max, dx * dx) + _ratio(v_max, dx))
    return max(1.0, _ceil(courant / TRANSPORT_COURANT))


def chemokine_bound(cfg, capacity: float, initial_max: float | None = None,
                    secreting=None) -> float:
    """An upper bound (nM) of the chemokine over the run.

    With q >= 0, secretion at most ``s_max`` per cell and at most ``capacity`` cells per
    voxel, the source is at most ``S = φ·capacity·s_max`` (φ = cell volume / voxel
    volume); every other term (diffusion, decay λ, vessel exchange, fixed faces) pulls q
    towards a level at most ``q0`` = the largest of its initial, blood and boundary values.
    So q(t) <= q0 + S·min(t, 1/λ). ``initial_max``: the largest initial value (a loaded
    array); ``secreting``: the cell types that can exist in this tissue (default: all).
    """
    q = cfg.substrates["chemokine"]
    q0 = max(q.initial if initial_max is None else initial_max, q.blood,
             q.boundary_value or 0.0)
    phi = _ratio(cfg.cells.cell_volume, cfg.grid.dx * cfg.grid.dx * cfg.grid.dx)
    rates = [r for cell, r in q.secretion.items() if secreting is None or cell in secreting]
    S = phi * capacity * max(rates, default=0.0)
    horizon = run_minutes(cfg) if q.decay <= 0 else min(run_minutes(cfg), 1.0 / q.decay)
    return q0 + S * horizon


def check_work(cfg, capacity: float) -> None:
    """Refuse a configuration whose steps, frames, transport sub-steps (motility),
    treatment events or solver iterations exceed the bounds above (one ConfigError naming
    the keys). The chemotactic drift depends on the tissue: :func:`check_transport` with
    its chemokine bound once the tissue is built."""
    r = cfg.run
    frames = n_frames(cfg)
    if frames > MAX_FRAMES:
        raise ConfigError(
            f"run.output_interval_hours={r.output_interval_hours!r} (run.days={r.days!r}): "
            f"the run would write {frames:.3g} frames, more than the {MAX_FRAMES} allowed; "
            "write frames less often or shorten the run")
    steps = n_steps(cfg)
    if steps > MAX_STEPS:
        raise ConfigError(
            f"run.dt={r.dt!r} (run.days={r.days!r}): the run would take {steps:.3g} steps, "
            f"more than the {MAX_STEPS} allowed; use a larger run.dt or a shorter run.days")
    if cfg.numerics.max_iterations > MAX_SOLVER_ITERATIONS:
        raise ConfigError(
            f"numerics.max_iterations={cfg.numerics.max_iterations!r}: must be at most "
            f"{MAX_SOLVER_ITERATIONS} (a solve that needs more will not converge; lower "
            "run.dt or raise numerics.rtol)")
    check_transport(cfg, capacity)
    _check_treatment(cfg)


def check_transport(cfg, capacity: float, q_max: float = 0.0) -> None:
    """Sub-steps of the explicit cell transport, per half step (a Python loop each) and over
    the run (voxel updates), for each cell type's motility, the tumour's pressure flux
    (``cells.pressure_mobility``, :func:`~spatialdtp.numerics.transport.pressure_substeps`)
    and the chemotactic drift
    ``χ·q_max/dx`` of a chemokine that stays below ``q_max`` (:func:`chemokine_bound`).
    A well-mixed tissue has no transport: nothing to bound."""
    if cfg.tissue.kind == "well_mixed":
        return
    v_max = _ratio(cfg.cells.macrophage.chemotaxis * q_max, cfg.grid.dx)
    c, g = cfg.cells, cfg.grid
    tau, ndim = cfg.run.dt / 2, len(g.shape)
    counts = {}
    for name in ("sensitive", "persister", "resistant", "fibroblast", "macrophage"):
        D = getattr(c, name).motility
        v = v_max if name == "macrophage" else 0.0
        if D == 0 and v == 0:
            continue
        drift_dominates = _ratio(v, g.dx) > _ratio(D, g.dx * g.dx)
        key = ("cells.macrophage.chemotaxis", c.macrophage.chemotaxis) if drift_dominates \
            else (f"cells.{name}.motility", D)
        counts[key] = transport_substeps(D, v, tau, g.dx, ndim)
    if c.pressure_mobility > 0:   # the tumour's pressure flux has sub-steps of its own
        counts[("cells.pressure_mobility", c.pressure_mobility)] = transport_substeps(
            c.pressure_mobility, 0.0, tau, g.dx, ndim)
    if not counts:
        return
    (key, value), m = max(counts.items(), key=lambda kv: kv[1])
    why = (f"with run.dt={cfg.run.dt:g} min and grid.dx={g.dx:g} µm"
           if not key.endswith("chemotaxis") else
           f"with the chemokine up to {q_max:.3g} nM, a chemotactic drift of up to "
           f"{v_max:.3g} µm/min")
    if m > MAX_TRANSPORT_SUBSTEPS:
        raise ConfigError(f"{key}={value!r}: {why}, the explicit cell transport would need "
                          f"{m:.3g} sub-steps per half step, more than the "
                          f"{MAX_TRANSPORT_SUBSTEPS:.0e} allowed; lower it or run.dt")
    work = 2 * n_steps(cfg) * sum(counts.values()) * math.prod(g.shape)
    if work > MAX_TRANSPORT_WORK:
        what = (f"the explicit cell transport would need {sum(counts.values()):.3g} sub-steps "
                f"per half step on {math.prod(g.shape):.3g} voxels for {n_steps(cfg):.3g} "
                f"steps, {work:.3g} voxel updates, more than the {MAX_TRANSPORT_WORK:.0e} "
                "allowed")
        if m <= 100:   # few sub-steps: the grid and the run's length are what is large
            raise ConfigError(f"grid.shape={list(g.shape)}: {what}; use a smaller grid, a "
                              "larger run.dt or a shorter run.days")
        raise ConfigError(f"{key}={value!r}: {why}, {what}; lower it, run.dt or run.days")


def treatment_events(drug, minutes: float) -> tuple[str, float]:
    """(key, count): the schedule key that sets how many doses or switches one drug has
    over ``minutes``, and an upper bound of that count."""
    s = drug.schedule
    windows, key = 1.0, "schedule.kind"
    if s.kind == "intermittent" and s.off_days > 0:
        windows = minutes / ((s.on_days + s.off_days) * MINUTES_PER_DAY) + 1
        key = "schedule.on_days"
    elif s.kind == "doses":
        windows = float(len(s.doses))
    events = 2 * windows
    if drug.pk.model in ("bolus", "oral"):
        doses = minutes / (s.interval_hours * MINUTES_PER_HOUR) + windows
        if doses > windows:
            key = "schedule.interval_hours"
        events += doses
    return key, events


def _check_treatment(cfg) -> None:
    for name, drug in cfg.treatment.drugs.items():
        key, events = treatment_events(drug, run_minutes(cfg))
        if events > MAX_TREATMENT_EVENTS:
            s = drug.schedule
            value = {"schedule.on_days": s.on_days, "schedule.interval_hours":
                     s.interval_hours}.get(key, s.kind)
            also = f" (off_days={s.off_days!r})" if key == "schedule.on_days" else ""
            raise ConfigError(
                f"treatment.drugs.{name}.{key}={value!r}{also}: over run.days="
                f"{cfg.run.days:g} the schedule would give "
                f"{events:.3g} doses and switches, more than the {MAX_TREATMENT_EVENTS} "
                "allowed")
