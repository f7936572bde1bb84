"""What the local drug concentrations do to the cells of a voxel: Hill effects, combined
within a drug class by Bliss independence or the highest single agent.

    E = emax cʰ/(cʰ + EC50ʰ)                                 one drug (c in µM)
    Bliss: 1 − Π(1 − E_i)     HSA: max E_i                   drugs of one class

Classes: ``targeted`` gives the kill effect E, ``epigenetic`` lowers entry into P,
``met`` blocks the HGF–MET protection, and ``oxphos``/``gpx4``/``fao`` are persister
kill hazards ``kill_rate·E`` (1/min) that add across classes. Part of the reference of
``kernels/cell_kinetics.cu`` (see :mod:`spatialdtp.numerics.cell_kinetics`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy

from ...config import COMBINATION_RULES, TreatmentConfig
from ...config.checks import choice

# Classes whose effect is a persister kill hazard (1/min) rather than a fraction.
HAZARD_CLASSES = ("oxphos", "gpx4", "fao")
#: µM, the EC50 that ``ec50 = 0`` stands for: E = emax wherever c >> 1e-30 µM (any level a
#: dose gives, in float32 too), E = 0 where c = 0 exactly. Beyond float32's range c/EC50
#: saturates at the cap below, so nothing overflows.
EC50_FLOOR = 1.0e-30


def hill(c, ec50, hill, emax, xp=numpy):
    """Hill (sigmoid Emax) effect ``E = emax·cʰ/(cʰ + EC50ʰ)`` of concentration ``c`` (µM).

    Negative concentrations (round-off from the solvers) count as 0. Written as
    ``r/(1 + r)`` with ``r = (c/EC50)ʰ`` capped at 1e30 so that float32 neither overflows
    nor gives inf/inf. ``ec50 = 0`` is the limit of a step: E = emax for any c > 0
    (:data:`EC50_FLOOR`), so that E = 1 is reachable with emax = 1.
    """
    cap = 1.0e30 ** (1.0 / max(hill, 1.0))
    x = xp.minimum(xp.maximum(c, 0.0) / max(ec50, EC50_FLOOR), cap)
    r = x ** hill
    return emax * r / (1.0 + r)


@dataclass
class DrugEffects:
    """Combined effects at every voxel (arrays, or 0.0 where no drug of that class is given)."""

    kill: Any          # targeted effect E in [0, 1] (multiplies each type's kill rate)
    epigenetic: Any    # KDM5/HDAC inhibition in [0, 1] (lowers entry into P)
    met_blockade: Any  # MET blockade in [0, 1] (removes the HGF–MET protection)
    p_kill: Any        # 1/min, extra persister kill hazard from oxphos/gpx4/fao drugs


def _bliss(effects, xp):
    """Bliss independence: the fraction left unaffected is the product of each drug's."""
    if not effects:
        return 0.0
    if len(effects) == 1:
        return effects[0]
    survive = functools.reduce(lambda s, e: s * (1.0 - e), effects[1:], 1.0 - effects[0])
    return 1.0 - survive


def _hsa(effects, xp):
    """Highest single agent: the combination is as good as its best drug."""
    if not effects:
        return 0.0
    return functools.reduce(xp.maximum, effects)


_COMBINE = {"bliss": _bliss, "hsa": _hsa}


def drug_effects(cfg: TreatmentConfig, conc: dict, xp=numpy) -> DrugEffects:
    """Effects of the local drug concentrations ``conc`` (drug name -> µM array).

    Drugs of one class combine by ``cfg.combination`` (Bliss: ``1 − Π(1 − E_i)``; HSA:
    ``max E_i``). Each drug of the oxphos/gpx4/fao classes is a persister hazard
    ``kill_rate·E`` (1/min). Within one of those classes hazards add under Bliss (adding
    hazards is Bliss independence for survival over time) and the largest counts under HSA;
    the classes' hazards add up into ``p_kill``.
    """
    choice("treatment.combination", cfg.combination, COMBINATION_RULES)
    by_class: dict[str, list] = {"targeted": [], "epigenetic": [], "met": []}
    hazards: dict[str, list] = {c: [] for c in HAZARD_CLASSES}
    for name, d in cfg.drugs.items():
        if name not in conc:
            raise KeyError(f"conc has no concentration for drug {name!r}; "
                           f"drug_effects needs one for each of {list(cfg.drugs)}")
        e = hill(conc[name], d.ec50, d.hill, d.emax, xp)
        if d.drug_class in HAZARD_CLASSES:
            hazards[d.drug_class].append(d.kill_rate * e)
        elif d.drug_class in by_class:
            by_class[d.drug_class].append(e)
        else:
            raise ValueError(f"treatment.drugs.{name}.drug_class={d.drug_class!r}: allowed "
                             f"values are {list(by_class) + list(HAZARD_CLASSES)}")
    combine = _COMBINE[cfg.combination]
    within = (lambda hs: functools.reduce(lambda x, y: x + y, hs)) if cfg.combination == "bliss" \
        else (lambda hs: _hsa(hs, xp))
    p_kill = 0.0
    for hs in hazards.values():
        if hs:
            p_kill = p_kill + within(hs)
    return DrugEffects(kill=combine(by_class["targeted"], xp),
                       epigenetic=combine(by_class["epigenetic"], xp),
                       met_blockade=combine(by_class["met"], xp),
                       p_kill=p_kill)
