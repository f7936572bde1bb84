"""Units shared by every layer: time conversions, and the units of the end-of-run summary.

Internally time is in minutes; configs give days and hours, outputs report days.
"""
MINUTES_PER_DAY = 1440.0
MINUTES_PER_HOUR = 60.0

#: The mark of a count below one cell. The model's populations are mean-field densities, so
#: a count of 0.3 (or 1e-12) cells is a fraction of a cell, not a cell that is present: the
#: tables say so rather than showing it as if it were a population.
SUB_CELL = "< 1 cell"


def is_sub_cell(value, unit: str = "cells") -> bool:
    """Whether ``value`` (in ``unit``) is a count of cells above 0 and below one cell."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return unit == "cells" and 0.0 < v < 1.0


#: the end-of-run summary's keys and their units (``cumulative_on_days_<drug>``, one per
#: drug, comes on top, in days); ``objective.metric`` names one of them
SUMMARY_UNITS = {
    "treatment_start_day": "days", "baseline_burden": "cells", "progression_threshold": "cells",
    # counted from treatment start (the lead-in excluded), as the summary says
    "time_to_progression_days": "days after treatment start", "nadir": "cells",
    "nadir_day": "days after treatment start",
    "nadir_fraction": "of baseline", "mrd_reached": "1 = yes", "final_burden": "cells",
    "final_fraction": "of baseline", "final_resistant_fraction": "of burden",
    "final_persister_fraction": "of burden", "final_P": "cells", "final_R": "cells",
    "final_niche_contrast": "P/T0 near / far",
}
