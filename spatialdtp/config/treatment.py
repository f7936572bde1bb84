"""The schema of the treatment: each drug's class, Hill effect, pharmacokinetics, schedule
and transport (as a substrate). What they do is :mod:`spatialdtp.model.treatment`; every
default's source is in ``docs/parameters.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .checks import choice, fail, fraction, is_number, nonneg, positive
from .substrates import SubstrateConfig, validate_substrate

DRUG_CLASSES = ("targeted", "epigenetic", "oxphos", "gpx4", "fao", "met")
PK_MODELS = ("constant", "bolus", "oral", "infusion")
SCHEDULE_KINDS = ("continuous", "intermittent", "adaptive", "doses")
COMBINATION_RULES = ("bliss", "hsa")
#: how a drug reaches the tissue: through the vessels (transport, a substrate), at its
#: plasma level everywhere (in-vitro-like), or at penetration × plasma everywhere
EXPOSURES = ("vessels", "plasma", "uniform")


@dataclass
class PKConfig:
    model: str = "constant"            # constant | bolus | oral | infusion
    elimination: float = 3.2e-4        # 1/min first-order plasma elimination (erlotinib t½≈36 h)
    absorption: float = 1.7e-2         # 1/min first-order absorption (oral)


@dataclass
class ScheduleConfig:
    kind: str = "continuous"           # continuous | intermittent | adaptive | doses
    start_day: float = 0.0
    stop_day: Optional[float] = None   # null: until the end of the run
    dose: float = 2.0                  # constant: plasma µM; bolus/oral: µM per dose; infusion: µM/min
    interval_hours: float = 24.0       # time between doses (bolus, oral)
    on_days: float = 7.0               # intermittent
    off_days: float = 7.0              # intermittent
    stop_fraction: float = 0.5         # adaptive: stop below this fraction of baseline burden
    resume_fraction: float = 1.0       # adaptive: resume at this fraction of baseline burden
    check_interval_days: float = 1.0   # adaptive: how often the rule is checked
    doses: List[Any] = field(default_factory=list)  # doses: [[day, amount], ...]
    dose_duration_hours: float = 24.0  # doses with constant/infusion PK: how long each lasts


@dataclass
class DrugConfig:
    drug_class: str = "targeted"       # targeted | epigenetic | oxphos | gpx4 | fao | met
    ec50: float = 0.1                  # µM
    hill: float = 1.0
    emax: float = 1.0
    kill_rate: float = 0.0             # 1/min on P at E = 1 (oxphos, gpx4, fao)
    exposure: str = "vessels"          # vessels | plasma | uniform
    penetration: float = 1.0           # uniform: tissue level / plasma level
    pk: PKConfig = field(default_factory=PKConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    transport: SubstrateConfig = field(default_factory=lambda: SubstrateConfig(
        units="µM", diffusion=6000.0, decay=0.0, permeability=0.1,
        uptake={"S": 0.01, "P": 0.01, "R": 0.01}, hindrance=1.0))


@dataclass
class TreatmentConfig:
    name: str = "continuous"
    combination: str = "bliss"         # bliss | hsa (highest single agent) within a class
    # Untreated days at the start of the run, so that the drug's effect is not mixed with
    # the seeded tissue settling (conf/config.yaml sets 7); every drug's schedule days
    # (start_day, stop_day, doses) count from its end.
    lead_in_days: float = 0.0
    # Empty here: the treatment presets in conf/treatment name the drugs (a preset with
    # none is the untreated control). A drug is also a substrate of the same name.
    drugs: Dict[str, DrugConfig] = field(default_factory=dict)


def validate_drug(key: str, d: DrugConfig, ndim: int):
    choice(f"{key}.drug_class", d.drug_class, DRUG_CLASSES)
    nonneg(f"{key}.ec50", d.ec50)       # 0: E = emax wherever the drug is present
    positive(f"{key}.hill", d.hill)
    fraction(f"{key}.emax", d.emax)
    nonneg(f"{key}.kill_rate", d.kill_rate)
    choice(f"{key}.exposure", d.exposure, EXPOSURES)
    nonneg(f"{key}.penetration", d.penetration)
    choice(f"{key}.pk.model", d.pk.model, PK_MODELS)
    nonneg(f"{key}.pk.elimination", d.pk.elimination)
    if d.pk.model in ("bolus", "oral", "infusion"):
        positive(f"{key}.pk.elimination", d.pk.elimination)
    if d.pk.model == "oral":
        positive(f"{key}.pk.absorption", d.pk.absorption)
    s = d.schedule
    k = f"{key}.schedule"
    choice(f"{k}.kind", s.kind, SCHEDULE_KINDS)
    nonneg(f"{k}.start_day", s.start_day)
    nonneg(f"{k}.dose", s.dose)             # 0: the schedule gives no drug (a vehicle arm)
    if s.stop_day is not None:   # null means "until the end"; NaN or inf never do
        nonneg(f"{k}.stop_day", s.stop_day)
        if s.stop_day < s.start_day:
            fail(f"{k}.stop_day", s.stop_day, f"must be >= start_day ({s.start_day})")
    if d.pk.model in ("bolus", "oral"):
        positive(f"{k}.interval_hours", s.interval_hours)
    if s.kind == "intermittent":
        positive(f"{k}.on_days", s.on_days)
        nonneg(f"{k}.off_days", s.off_days)
    if s.kind == "adaptive":
        positive(f"{k}.check_interval_days", s.check_interval_days)
        fraction(f"{k}.stop_fraction", s.stop_fraction)
        positive(f"{k}.resume_fraction", s.resume_fraction)
        if s.stop_fraction >= s.resume_fraction:
            fail(f"{k}.stop_fraction", s.stop_fraction,
                 f"must be below resume_fraction ({s.resume_fraction})")
    if s.kind == "doses":
        if not s.doses:
            fail(f"{k}.doses", s.doses, "a 'doses' schedule needs at least one [day, amount]")
        for i, entry in enumerate(s.doses):
            if (not isinstance(entry, (list, tuple)) or len(entry) != 2
                    or not all(is_number(v) and v >= 0 for v in entry)):
                fail(f"{k}.doses[{i}]", entry, "each dose is [day, amount], both finite "
                     "numbers >= 0")
        if d.pk.model in ("constant", "infusion"):
            positive(f"{k}.dose_duration_hours", s.dose_duration_hours)
    validate_substrate(f"{key}.transport", d.transport, ndim)

