"""Treatment: when each drug is given, the plasma level it reaches, and what it does to cells.

Three parts, in the order a step uses them:

1. :mod:`.schedules` decide when a drug is *on* (continuous, intermittent, adaptive,
   explicit doses);
2. :mod:`.pharmacokinetics` turn the schedule into the plasma level ``c_blood(t)`` (µM),
   advanced exactly; :mod:`.plasma` steps every drug of a treatment with the simulation;
3. :mod:`.effects` turn the *local* tissue concentration into effects on the cells (Hill
   curves, Bliss/HSA within a class).
"""
from .effects import EC50_FLOOR, HAZARD_CLASSES, DrugEffects, drug_effects, hill
from .plasma import DoseEvent, StepPlasma, Treatment

__all__ = ["EC50_FLOOR", "HAZARD_CLASSES", "DoseEvent", "DrugEffects", "StepPlasma", "Treatment",
           "drug_effects", "hill"]
