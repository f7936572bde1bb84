"""Values the run's precision can hold: the levels fields start at, and the coefficients
of each substrate's implicit step that the values make together.

Each value can be in range on its own and still make a step impossible in float32:
``permeability=1e300`` is inf in a float32 array (and inf × an empty voxel is NaN),
``blood=1e37`` times the oxygen permeability 1000 overflows, ``hindrance=1e200`` or
``binding.sites=1e300`` turns the diffusivity next to a CAF into 0, which the solver
refuses. So the step's coefficients, as :mod:`spatialdtp.model.substrate_coefficients`
builds them, are bounded here, before anything is allocated: D·dt/dx², a·dt and b·dt at
most √max of the precision (1.8e19 in float32, 1.3e154 in float64: squares in the solver's
norms stay finite), a diffusivity that is not 0 at least 10⁶ × the smallest normal number
(1.2e-32 µm²/min in float32). The refusal names the key with the largest part.
"""
from __future__ import annotations

import math

from .checks import fail


def _limits(precision: str) -> tuple[float, float]:
    import numpy as np

    info = np.finfo(precision)
    return math.sqrt(float(info.max)), float(info.tiny) * 1e6


def check_levels(cfg, all_substrates: dict) -> None:
    """Levels a field takes on directly (initial, blood, boundary values, plasma doses) must
    fit the precision: 1e39 in float32 is inf before the first step."""
    import numpy as np

    top = float(np.finfo(cfg.backend.precision).max)
    levels = []
    for name, sub in all_substrates.items():
        levels += [(f"{_key(cfg, name)}.{a}", getattr(sub, a))
                   for a in ("initial", "blood", "boundary_value")]
    for name, drug in cfg.treatment.drugs.items():
        levels.append((f"treatment.drugs.{name}.schedule.dose", drug.schedule.dose))
    for key, value in levels:
        if value is not None and value >= top:
            fail(key, value, f"larger than {cfg.backend.precision} can hold ({top:.3g}); "
                 "fields would be infinite from the start")


def _key(cfg, name: str) -> str:
    return f"treatment.drugs.{name}.transport" if name in cfg.treatment.drugs \
        else f"substrates.{name}"


def _binding_culprit(key: str, b) -> tuple[str, float]:
    """The binding key that makes R = 1 + sites/kd large: sites, or kd when it is the
    further of the two from 1 (log sites against -log kd)."""
    if b is None:
        return f"{key}.binding.sites", 0.0
    if b.kd > 0 and b.sites > 0 and -math.log(b.kd) > math.log(b.sites):
        return f"{key}.binding.kd", b.kd
    return f"{key}.binding.sites", b.sites


def check_coefficients(cfg, all_substrates: dict, capacity: float) -> None:
    """Refuse a substrate whose step coefficients (largest D, a, b over any tissue with at
    most ``capacity`` cells of each type per voxel) the precision cannot hold."""
    big, small = _limits(cfg.backend.precision)
    dt, dx = float(cfg.run.dt), float(cfg.grid.dx)
    per_voxel = cfg.cells.cell_volume / dx**3 * capacity   # φ·R × capacity
    for name, s in all_substrates.items():
        key = _key(cfg, name)
        b = s.binding
        kappa = b.sites / b.kd if b is not None else 0.0
        R = 1.0 + kappa
        D = s.diffusion / R
        # a drug's vessels carry its plasma level, at most its dose for the PK models here
        blood = max(s.blood or 0.0, cfg.treatment.drugs[name].schedule.dose or 0.0) \
            if name in cfg.treatment.drugs else (s.blood or 0.0)
        if s.diffusion > 0:
            D_min = D / (1.0 + s.hindrance)        # next to a voxel full of CAFs
            if not D_min >= small:
                # the factor that lowers it most (a diffusivity against 1 µm²/min)
                culprit, value = max(
                    [(f"{key}.hindrance", s.hindrance, math.log1p(s.hindrance)),
                     # R = 1 + sites/kd: many sites or a tight kd (against 1 µM) raise it
                     (*_binding_culprit(key, b), math.log(R)),
                     (f"{key}.diffusion", s.diffusion, -math.log(s.diffusion))],
                    key=lambda c: c[2])[:2]
                fail(culprit, value, f"makes the diffusivity of {name} "
                     f"{D_min:.3g} µm²/min, below what {cfg.backend.precision} holds "
                     f"({small:.2g}); the diffusivity, divided by 1 + hindrance and by "
                     "1 + binding.sites/binding.kd, must be 0 or at least that")
        parts = {
            "D": [(f"{key}.diffusion", D * dt / dx**2)],
            "a": [(f"{key}.decay", s.decay / R * dt),
                  (f"{key}.binding.bound_decay",
                   kappa * b.bound_decay / R * dt if b is not None else 0.0),
                  (f"{key}.permeability", s.permeability / R * dt),
                  *((f"{key}.uptake.{c}", r * per_voxel / R * dt) for c, r in s.uptake.items())],
            "b": [(_blood_key(cfg, name, key) if blood > s.permeability
                   else f"{key}.permeability", s.permeability / R * blood * dt),
                  *((f"{key}.secretion.{c}", r * per_voxel / R * dt)
                    for c, r in s.secretion.items())],
        }
        if s.uptake_km is not None:
            parts["a"].append((f"{key}.uptake_km", s.uptake_km))
        for what, terms in parts.items():
            total = sum(v for _, v in terms)
            if not total <= big:
                culprit = max(terms, key=lambda kv: kv[1] if not math.isnan(kv[1]) else math.inf)
                fail(culprit[0], _value(cfg, s, culprit[0], key),
                     f"makes the {_WHAT[what]} of {name}'s step {total:.3g} (run.dt={dt:g} "
                     f"min, grid.dx={dx:g} µm), more than {cfg.backend.precision} can "
                     f"hold in a solve ({big:.2g}); lower it or run.dt")


def _blood_key(cfg, name: str, key: str) -> str:
    return f"treatment.drugs.{name}.schedule.dose" if name in cfg.treatment.drugs \
        else f"{key}.blood"


_WHAT = {"D": "diffusion number D·dt/dx²", "a": "loss a·dt", "b": "source b·dt"}


def _value(cfg, s, full_key: str, prefix: str):
    obj, rest = s, full_key[len(prefix) + 1:]
    if not full_key.startswith(prefix + "."):       # a drug's dose
        obj, rest = cfg, full_key
    for part in rest.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part)
    return obj
