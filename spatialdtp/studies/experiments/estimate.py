"""The two-zone estimate of the niche contrast: what the rates alone predict.

Take the tumour bed near niches and far from them as two well-mixed zones. In each, the
environment the cells see (drug effect E, MET signal H, growth permission g, hypoxia,
hypoxic/starvation death, the room CAFs and TAMs leave) is held at its zone mean from a
run's frame, and the cell ODEs of :class:`spatialdtp.model.cells.CellKinetics` are solved
(scipy LSODA) from the seeded composition for the run's treatment time:

    contrast_estimate = (P_near(t) / T0) / (P_far(t) / T0)

Transport is left out (cells do not move between zones, and each zone has one
environment), so this is the contrast the HGF levels can give through the rates; the run's
measured contrast differs by what averaging H over a zone and motility do.
"""
from __future__ import annotations

import math

import numpy as np

from ...model.cells import CellKinetics, Environment
from ...model.treatment import drug_effects
from .arms import ArmRun
from .readouts import _zones

#: the environment quantities averaged over a zone
_ENV = ("growth", "hypoxia", "env_death", "kill", "met_signal", "epigenetic", "p_kill",
        "recruitment")


def zone_environments(run: ArmRun) -> dict[str, dict[str, float]]:
    """{"near": {...}, "far": {...}}: the zone means of the environment of the last frame
    (and of F, M), over the tumour bed near and far from niches."""
    cfg, f = run.cfg, run.fields
    vessels = np.zeros_like(f["F"])
    kin = CellKinetics(cfg.cells, run.geometry.capacity, vessels)
    subs = {k: f[k] for k in ("oxygen", "glucose", "hgf", "chemokine")}
    effects = drug_effects(cfg.treatment, {d: f[d] for d in cfg.treatment.drugs}, np)
    env = kin.environment(subs, effects)
    near, far = _zones(run)
    out = {}
    for zone, mask in (("near", near), ("far", far)):
        if not mask.any():
            out[zone] = None
            continue
        values = {k: float(np.mean(np.broadcast_to(getattr(env, k), mask.shape)[mask]))
                  for k in _ENV}
        values.update(F=float(f["F"][mask].mean()), M=float(f["M"][mask].mean()))
        out[zone] = values
    return out


def two_zone_estimate(run: ArmRun, days: float | None = None) -> dict[str, float]:
    """The estimate for ``run`` over ``days`` of treatment (default: the run's): the zones'
    mean H and persisters per initial tumour cell, and their ratio (NaN without a zone)."""
    from scipy.integrate import solve_ivp

    days = float(run.days[-1]) if days is None else float(days)
    zones = zone_environments(run)
    cfg = run.cfg
    t = cfg.tissue.tumour
    kin = CellKinetics(cfg.cells, run.geometry.capacity, np.zeros(1))
    out = {}
    for zone, e in zones.items():
        if e is None:
            out.update({f"H_{zone}": math.nan, f"rate_{zone}": math.nan})
            continue
        env = Environment(**{k: np.array([e[k]]) for k in _ENV})
        T0 = t.density * run.geometry.capacity
        y0 = [(1 - t.persister_fraction - t.resistant_fraction) * T0,
              t.persister_fraction * T0, t.resistant_fraction * T0, e["F"], e["M"]]

        def rhs(_, y):
            cells = [np.array([v]) for v in y]
            return [float(v[0]) for v in kin.rhs(cells, env)]
        sol = solve_ivp(rhs, (0.0, days * 1440.0), y0, method="LSODA", rtol=1e-9, atol=1e-14)
        out.update({f"H_{zone}": e["met_signal"], f"rate_{zone}": sol.y[1, -1] / T0})
    out["contrast_estimate"] = (out["rate_near"] / out["rate_far"]
                                if out["rate_far"] > 0 else math.nan)
    return out
