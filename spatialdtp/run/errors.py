"""The errors a run stops with (beside interruptions): a field that went non-finite, and
an implicit solve that diverged beyond its fallback. Both are recorded in the run file's
``/failure`` group and give ``spatialdtp-run`` exit status 3."""
from __future__ import annotations


class NonFiniteError(FloatingPointError):
    """A field became NaN or Inf; the message names step, time, field and voxel."""


class SolverDivergence(NonFiniteError):
    """An implicit solve diverged and its fallback did too; the message names the
    substrate, the time and the residual."""
