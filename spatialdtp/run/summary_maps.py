"""The spatial panel of the summary figure: persisters, CAF/TAM niche voxels and the
vessels at treatment start, at the nadir and at the end of a run, with the tumour bed at
treatment start outlined, read from the frames of its run file (a 3D run shows its middle
z plane).

The frames are the run file's, so each moment is the frame nearest to it: the picture
shows what the file holds, at the file's output interval, and costs the run nothing.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..units import MINUTES_PER_DAY
from .niche import TUMOUR_FLOOR


class Snapshot(NamedTuple):
    label: str            # "treatment start", "nadir", "end" (joined when frames coincide)
    day: float            # day of the frame shown
    P: np.ndarray         # cells/voxel, 2D
    niche: np.ndarray     # bool: F + M >= run.niche_threshold × capacity (niche voxels)


class SpatialPanel(NamedTuple):
    snapshots: list       # of Snapshot, in time order
    vessels: np.ndarray   # bool, 2D
    bed: np.ndarray       # bool: S + P + R >= TUMOUR_FLOOR × capacity at treatment start
    dx: float             # µm
    plane: str            # "" for a 2D run, "z = k of n" for a 3D run


def _plane(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a[a.shape[0] // 2] if a.ndim == 3 else a


def moments(summary: dict, end_day: float) -> list[tuple[str, float]]:
    """(label, day) of treatment start, the nadir and the end; the nadir is left out where
    the summary has none (NaN), and a run that ended inside its lead-in shows its start."""
    start = float(summary.get("treatment_start_day", 0.0) or 0.0)
    nadir = summary.get("nadir_day", math.nan)
    out = [("treatment start", start) if start <= end_day else ("run start", 0.0)]
    if nadir is not None and math.isfinite(float(nadir)):
        out.append(("nadir", start + float(nadir)))
    out.append(("end", end_day))
    return out


def spatial_panel(run_file, summary: dict, niche_threshold: float,
                  capacity: float) -> SpatialPanel | None:
    """The snapshots of ``run_file`` (None when it holds no whole frame or no cell fields)."""
    from .runfile import read_run

    run = read_run(run_file)
    if run.n_frames == 0 or not {"S", "P", "R", "F", "M"} <= set(run.fields):
        return None
    days = np.asarray(run.time, dtype=np.float64) / MINUTES_PER_DAY
    picked: dict[int, list[str]] = {}
    for label, day in moments(summary, float(days[-1])):
        i = int(np.argmin(np.abs(days - day)))
        picked.setdefault(i, []).append(label)
    shots = []
    with run:
        for i in sorted(picked):
            f = {k: _plane(run.frame(k, i)).astype(np.float64) for k in ("S", "P", "R", "F", "M")}
            shots.append(Snapshot(label=" = ".join(picked[i]), day=float(days[i]), P=f["P"],
                                  niche=(f["F"] + f["M"]) >= niche_threshold * capacity))
            if not shots[1:]:   # the first snapshot: treatment start (the niche measure's bed)
                bed = (f["S"] + f["P"] + f["R"]) >= TUMOUR_FLOOR * capacity
        vessels = (_plane(run.static_map("vessels")) > 0 if "vessels" in run.static
                   else np.zeros_like(shots[0].niche))
    shape = tuple(run.grid.shape)
    plane = f"z = {shape[0] // 2} of {shape[0]}" if len(shape) == 3 else ""
    return SpatialPanel(shots, vessels, bed, float(run.grid.dx), plane)
