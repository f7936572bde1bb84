"""The experiments from the biology: their arms, their read-outs and their figures.

Each experiment is a preset in ``conf/experiment/`` whose ``hydra.sweeper.params`` sweep
its arms (and seeds), so ``spatialdtp-run -m experiment=schedules`` runs all of them:

=================  ==========================  ===============================================
experiment         arms (swept keys)           question
=================  ==========================  ===============================================
schedules          treatment                   continuous vs intermittent vs adaptive dosing
combinations       treatment                   the targeted drug alone vs with a KDM5/HDAC,
                                               OXPHOS, GPX4 or MET inhibitor
niche              tissue × treatment          CAF/TAM-rich vs depleted stroma, with and
                                               without a MET inhibitor
persister_origin   cells                       pre-existing vs drug-induced persisters
                                               through a drug holiday
=================  ==========================  ===============================================

This module turns runs into what the README reports:

- :func:`arms` reads an experiment preset and gives each arm's overrides (the tests and
  notebooks compose them with :func:`spatialdtp.api.load_config`);
- :class:`ArmRun` holds one run's time courses and last frame, from a finished
  :class:`~spatialdtp.simulation.Simulation` (:meth:`ArmRun.from_simulation`) or a run file
  of a sweep (:func:`load_sweep`);
- the read-outs (:func:`value_at`, :func:`near_far`, :func:`holiday_readouts`) and
  :func:`plot_experiment`, one figure per experiment;
- ``python -m spatialdtp.experiments SWEEP_DIR`` prints the read-outs of a finished
  sweep, arm by arm, and draws its figure (``experiment.png`` in the sweep directory).

Units: cells (P, R, burden), cells/voxel (densities), days (times since treatment start),
µm (distances).
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .observables import MINUTES_PER_DAY, TUMOUR_FLOOR, distance_to_mask
from .resources import conf_dir

EXPERIMENTS = ("schedules", "combinations", "niche", "persister_origin")
CELL_FIELDS = ("S", "P", "R", "F", "M")


# --------------------------------------------------------------------------- the arms
def preset_path(experiment: str) -> Path:
    path = Path(conf_dir()) / "experiment" / f"{experiment}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (Path(conf_dir()) / "experiment").glob("*.yaml"))
        raise ValueError(f"experiment={experiment!r}: no preset {path}; presets are {known}")
    return path


def sweep_params(experiment: str) -> dict[str, list[str]]:
    """The preset's ``hydra.sweeper.params`` as {key: [values]} (seed included)."""
    import yaml

    data = yaml.safe_load(preset_path(experiment).read_text()) or {}
    params = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    if not params:
        raise ValueError(f"experiment={experiment!r}: its preset sets no hydra.sweeper.params")
    return {str(k): [v.strip() for v in str(val).split(",")] for k, val in params.items()}


def arm_keys(experiment: str) -> tuple[str, ...]:
    """The swept keys that tell the arms apart (every swept key but ``seed``)."""
    return tuple(k for k in sweep_params(experiment) if k != "seed")


def arm_label(values: dict[str, str], keys: Sequence[str]) -> str:
    return " + ".join(str(values[k]) for k in keys)


def arms(experiment: str) -> dict[str, list[str]]:
    """{arm label: overrides} for every arm of the preset (seeds left out), e.g.
    ``arms("schedules")["adaptive"] == ["experiment=schedules", "treatment=adaptive"]``."""
    params = sweep_params(experiment)
    keys = arm_keys(experiment)
    out = {}
    for combo in itertools.product(*(params[k] for k in keys)):
        values = dict(zip(keys, combo))
        out[arm_label(values, keys)] = [f"experiment={experiment}"] + [
            f"{k}={v}" for k, v in values.items()]
    return out


# --------------------------------------------------------------------------- one run
@dataclass
class ArmRun:
    """One run of one arm: time courses, baseline, and the cell fields of the last frame."""

    arm: str
    seed: int
    days: np.ndarray                       # days since treatment start, one per step
    observables: dict[str, np.ndarray]     # per step (cells, fractions, µM)
    fields: dict[str, np.ndarray]          # last frame: S, P, R, F, M (cells/voxel)
    bed: np.ndarray                        # bool: the tumour bed, see tumour_bed()
    dx: float                              # µm
    niche_threshold: float                 # F + M (cells/voxel) that makes a niche voxel
    niche_distance: float                  # µm
    summary: dict[str, float] = field(default_factory=dict)

    @property
    def baseline(self) -> float:
        """Burden (cells) at treatment start."""
        return float(self.summary.get("baseline_burden", self.observables["burden"][0]))

    @classmethod
    def from_simulation(cls, sim, initial: dict[str, np.ndarray], arm: str = "") -> "ArmRun":
        """From a simulation that has run; ``initial`` holds its S, P, R at treatment start."""
        from .simulation import treatment_start_minutes

        obs = sim.observables()
        start = treatment_start_minutes(sim.cfg)
        return cls(arm=arm, seed=int(sim.cfg.seed),
                   days=(obs["time"] - start) / MINUTES_PER_DAY, observables=obs,
                   fields={c: sim.field(c) for c in CELL_FIELDS},
                   bed=tumour_bed(initial, sim.capacity), dx=sim.grid.dx,
                   niche_threshold=sim.cfg.run.niche_threshold,
                   niche_distance=sim.cfg.run.niche_distance, summary=sim.summary())

    @classmethod
    def from_run_file(cls, path, arm: str = "") -> "ArmRun":
        """From a run file. The tumour bed comes from its first frame (t = 0): the
        treatment start in every preset but ``schedules`` (a 14-day lead-in), whose
        read-outs do not use it."""
        from .io import read_run

        run = read_run(path)
        cfg = run.config_dict()
        obs = run.read_observables()
        start = float(run.summary.get("treatment_start_day", 0.0) or 0.0)
        with run:
            fields = {c: np.asarray(run.frame(c, -1), dtype=np.float64) for c in CELL_FIELDS}
            initial = {c: np.asarray(run.frame(c, 0), dtype=np.float64) for c in ("S", "P", "R")}
        return cls(arm=arm, seed=int(cfg.get("seed", 0)),
                   days=obs["time"] / MINUTES_PER_DAY - start, observables=obs, fields=fields,
                   bed=tumour_bed(initial, float(run.attrs["capacity"])),
                   dx=float(run.attrs["dx"]), niche_threshold=float(cfg["run"]["niche_threshold"]),
                   niche_distance=float(cfg["run"]["niche_distance"]), summary=dict(run.summary))


def tumour_bed(cells: dict[str, np.ndarray], capacity: float) -> np.ndarray:
    """Voxels that hold tumour at treatment start: S+P+R >= 1e-3 · capacity (the run's
    niche-index floor). The niche read-outs compare persister densities inside this bed,
    where the drug has shrunk the tumour (not where a few cells have wandered since)."""
    return (cells["S"] + cells["P"] + cells["R"]) >= TUMOUR_FLOOR * capacity


def run_arm(overrides: Iterable[str], days: float | None = None, arm: str = "") -> ArmRun:
    """Compose ``overrides`` (as on the command line), run ``days`` (default ``run.days``)
    in this process without a run file, and return the :class:`ArmRun`."""
    from . import api

    sim = api.simulation(list(overrides))
    initial = {c: sim.field(c) for c in ("S", "P", "R")}
    sim.run_until(days=days, progress=False)
    return ArmRun.from_simulation(sim, initial, arm)


# --------------------------------------------------------------------------- read-outs
def value_at(run: ArmRun, name: str, day: float) -> float:
    """Observable ``name`` at the last step at or before ``day`` (days since treatment
    start); ``"SP"`` is S + P, the non-resistant tumour."""
    i = int(np.searchsorted(run.days, day + 1e-9, side="right")) - 1
    if i < 0:
        raise ValueError(f"day={day}: before the first observation ({run.days[0]:.3f} d)")
    if name == "SP":
        return float(run.observables["S"][i] + run.observables["P"][i])
    return float(run.observables[name][i])


def niche_distance_map(run: ArmRun) -> np.ndarray:
    """Distance (µm) from every voxel to the nearest niche voxel of the last frame
    (F + M >= ``niche_threshold``); inf everywhere when there is no niche."""
    niche = (run.fields["F"] + run.fields["M"]) >= run.niche_threshold
    if not niche.any():
        return np.full(niche.shape, np.inf)
    return distance_to_mask(niche, run.dx)


def _near(run: ArmRun) -> np.ndarray:
    return niche_distance_map(run) <= run.niche_distance * (1 + 1e-9)


def near_far(run: ArmRun) -> tuple[float, float]:
    """Mean persister density (cells/voxel) of the tumour bed within ``niche_distance`` µm
    of a niche voxel and farther away, in the last frame. NaN for an empty set."""
    near = _near(run)
    P = run.fields["P"]
    mean = (lambda m: float(P[m].mean()) if m.any() else math.nan)
    return mean(run.bed & near), mean(run.bed & ~near)


def niche_contrast(run: ArmRun) -> float:
    """Mean P near niches / mean P far from them in the tumour bed (last frame); > 1:
    persisters denser near niches; NaN without a niche."""
    near, far = near_far(run)
    return near / far if far > 0 else math.nan


def paired_near_far_ratio(treated: ArmRun, control: ArmRun) -> tuple[float, float]:
    """Σ P(treated) / Σ P(control) over the control's tumour bed near and far from its
    niches (same tissue: same seed). Below 1 where the treated arm has fewer persisters."""
    near = _near(control)
    ratio = (lambda m: float(treated.fields["P"][m].sum() / control.fields["P"][m].sum())
             if m.any() and control.fields["P"][m].sum() > 0 else math.nan)
    return ratio(control.bed & near), ratio(control.bed & ~near)


def paired_profile_ratio(treated: ArmRun, control: ArmRun, edges: Sequence[float]) -> np.ndarray:
    """Σ P(treated) / Σ P(control) over the control's tumour bed in bins of distance (µm)
    to the control's nearest niche voxel (same tissue: same seed); NaN where empty."""
    dist = niche_distance_map(control)[control.bed]
    num, _ = np.histogram(dist, bins=edges, weights=treated.fields["P"][control.bed])
    den, _ = np.histogram(dist, bins=edges, weights=control.fields["P"][control.bed])
    out = np.full(len(edges) - 1, np.nan)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def niche_profile_of(run: ArmRun, edges: Sequence[float]) -> np.ndarray:
    """Mean P (cells/voxel) of the tumour bed in bins of distance (µm) to the nearest
    niche voxel; NaN for empty bins (all NaN without a niche)."""
    dist = niche_distance_map(run)[run.bed]
    counts, _ = np.histogram(dist, bins=edges)
    sums, _ = np.histogram(dist, bins=edges, weights=run.fields["P"][run.bed])
    out = np.full(len(edges) - 1, np.nan)
    ok = counts > 0
    out[ok] = sums[ok] / counts[ok]
    return out


def schedule_windows(run: ArmRun, drug: str = "drug") -> list[tuple[float, float]]:
    """(start, end) days of each period the drug was on."""
    from .plotting import on_periods

    return on_periods(run.days, run.observables[f"on_{drug}"])


def holiday_readouts(run: ArmRun, drug: str = "drug") -> dict[str, float]:
    """The drug holiday of a run with the drug on, then off, then on again.

    ``P_holiday_start``/``P_holiday_end`` (cells) at the first off and the next on;
    ``P_kept`` = their ratio; ``persister_share_end`` = P/(S+P) at the end of the holiday
    (persisters among the non-resistant cells, the pool a rechallenge meets);
    ``P_decay_per_day`` = −ln(P_kept)/holiday length; ``rechallenge_P_gain`` = the most P
    in the first two days of the rechallenge over P when it starts (> 1: the drug makes
    new persisters); ``rechallenge_survival`` = (S+P) one week into the rechallenge over
    (S+P) when it starts (NaN if the run ends sooner).
    """
    windows = schedule_windows(run, drug)
    if len(windows) < 2:
        raise ValueError(f"{run.arm!r}: the drug {drug!r} is on {len(windows)} time(s); a "
                         "holiday needs on, off, on")
    off, back = windows[0][1], windows[1][0]
    p0, p1 = value_at(run, "P", off), value_at(run, "P", back)
    sp1 = value_at(run, "SP", back)
    week = back + 7.0
    survival = (value_at(run, "SP", week) / sp1) if week <= run.days[-1] + 1e-9 else math.nan
    first = (run.days >= back - 1e-9) & (run.days <= back + 2.0 + 1e-9)
    return {"holiday_days": back - off, "P_holiday_start": p0, "P_holiday_end": p1,
            "P_kept": p1 / p0, "P_decay_per_day": -math.log(p1 / p0) / (back - off),
            "persister_share_end": p1 / sp1,
            "rechallenge_P_gain": float(run.observables["P"][first].max()) / p1,
            "rechallenge_survival": survival}


def readouts(experiment: str, run: ArmRun) -> dict[str, float]:
    """The end points each experiment reports for one run (its figure and README)."""
    end = float(run.days[-1])
    s = run.summary
    base = {"P_end": value_at(run, "P", end), "R_end": value_at(run, "R", end),
            "burden_end_fraction": value_at(run, "burden", end) / run.baseline}
    if experiment == "schedules":
        out = dict(base)
        for d in (28.0, 56.0):
            if d <= end:
                out[f"P_day{d:g}"] = value_at(run, "P", d)
                out[f"R_day{d:g}"] = value_at(run, "R", d)
        out["time_to_progression_days"] = float(s.get("time_to_progression_days", math.nan))
        out["cumulative_on_days"] = float(s.get("cumulative_on_days_drug", math.nan))
        return out
    if experiment in ("combinations", "niche"):
        near, far = near_far(run)
        return {**base, "P_end_per_baseline": base["P_end"] / run.baseline,
                "P_near": near, "P_far": far,
                "near_far": near / far if far > 0 else math.nan}
    if experiment == "persister_origin":
        return {**base, **holiday_readouts(run)}
    raise ValueError(f"experiment={experiment!r}: known experiments are {list(EXPERIMENTS)}")


# --------------------------------------------------------------------------- sweeps
def _job_overrides(job_dir: Path) -> list[str]:
    import yaml

    path = job_dir / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []


def load_sweep(sweep_dir, experiment: str | None = None) -> tuple[str, list[ArmRun]]:
    """Every finished run of a Hydra multirun directory, labelled by arm.

    The experiment is read from the jobs' ``experiment=...`` override unless given; the
    arm label from the values of the experiment's swept keys in each job's overrides
    (:func:`arm_keys`). Runs whose file is not ``complete`` are skipped with a note on
    stderr.
    """
    from .io import is_run_file, read_run

    sweep_dir = Path(sweep_dir)
    jobs = sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()),
                  key=lambda p: (len(p.name.split("_")[0]), p.name)) if sweep_dir.is_dir() else []
    if not jobs:
        raise ValueError(f"sweep_dir={str(sweep_dir)!r}: no Hydra job directories "
                         "(<n>_<overrides>/.hydra) in it")
    runs, name = [], experiment
    for job in jobs:
        overrides = dict(o.lstrip("+~").split("=", 1) for o in _job_overrides(job) if "=" in o)
        name = name or overrides.get("experiment")
        if name is None:
            raise ValueError(f"{job}: no experiment=... override; pass experiment=")
        keys = arm_keys(name)
        files = sorted(job.glob("*.h5"))
        if not files or not is_run_file(files[0]) or read_run(files[0]).status != "complete":
            print(f"skipped {job.name}: no complete run file", file=sys.stderr)
            continue
        defaults = sweep_params(name)
        label = arm_label({k: overrides.get(k, defaults[k][0]) for k in keys}, keys)
        runs.append(ArmRun.from_run_file(files[0], label))
    return name, runs


def by_arm(runs: Iterable[ArmRun]) -> dict[str, list[ArmRun]]:
    out: dict[str, list[ArmRun]] = {}
    for r in runs:
        out.setdefault(r.arm, []).append(r)
    return out


def readout_table(experiment: str, runs: Sequence[ArmRun]) -> str:
    """Per arm and read-out: the mean over seeds and [min, max]; one line per arm."""
    lines = []
    for arm, group in by_arm(runs).items():
        rows = [readouts(experiment, r) for r in group]
        parts = []
        for key in rows[0]:
            vals = np.array([row[key] for row in rows], dtype=float)
            fin = vals[np.isfinite(vals)]
            if fin.size == 0:
                parts.append(f"{key}=nan")
            else:
                parts.append(f"{key}={fin.mean():.3g} [{fin.min():.3g}, {fin.max():.3g}]"
                             + (f" ({vals.size - fin.size} nan)" if fin.size < vals.size else ""))
        lines.append(f"{arm} (seeds {sorted(r.seed for r in group)}): " + "; ".join(parts))
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures
COLOURS = ("black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
           "tab:brown", "tab:pink")


def short(arm: str, experiment: str = "") -> str:
    """Axis label of an arm: a combination preset "targeted_kdm5i" reads "+ kdm5i"; where
    the targeted drug alone is compared with partners (combinations, niche) its preset
    "continuous" reads "targeted"."""
    if experiment in ("combinations", "niche"):
        arm = arm.replace("continuous", "targeted")
    return "\n".join(p.replace("targeted_", "+ ") for p in arm.split(" + "))


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _positive(a):
    a = np.asarray(a, dtype=float)
    return np.where(a > 0, a, np.nan)


def _curves(ax, groups: dict[str, list[ArmRun]], quantity, ylabel: str, log: bool = True,
            label=short):
    """Each arm's seeds as thin lines and their geometric (log) or arithmetic mean bold."""
    for k, (arm, runs) in enumerate(groups.items()):
        colour = COLOURS[k % len(COLOURS)]
        n = min(len(r.days) for r in runs)
        ys = np.array([quantity(r)[:n] for r in runs], dtype=float)
        for y, r in zip(ys, runs):
            ax.plot(r.days[:n], _positive(y) if log else y, color=colour, lw=0.6, alpha=0.35)
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN columns (a 0 on a log axis)
            centre = np.exp(np.nanmean(np.log(_positive(ys)), axis=0)) if log else ys.mean(axis=0)
        ax.plot(runs[0].days[:n], centre, color=colour, lw=1.8,
                label=f"{label(arm)} (n={len(runs)})".replace("\n", " "))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("days since treatment start")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


def _shade_windows(ax, run: ArmRun, colour="tab:green"):
    for a, b in schedule_windows(run):
        ax.axvspan(a, b, color=colour, alpha=0.08, lw=0)


def _points(ax, groups: dict[str, list[ArmRun]], value, ylabel: str, log: bool = True,
            label=short):
    """One column per arm: each seed a dot, the mean a bar outline."""
    names = list(groups)
    for k, arm in enumerate(names):
        vals = np.array([value(r) for r in groups[arm]], dtype=float)
        colour = COLOURS[k % len(COLOURS)]
        ax.scatter(np.full(vals.size, k) + np.linspace(-0.12, 0.12, vals.size), vals,
                   color=colour, s=18, zorder=3)
        fin = vals[np.isfinite(vals) & ((vals > 0) if log else True)]
        if fin.size:
            centre = np.exp(np.log(fin).mean()) if log else fin.mean()
            ax.hlines(centre, k - 0.3, k + 0.3, color=colour, lw=2)
    ax.set_xticks(range(len(names)), [label(n) for n in names], fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", which="major", alpha=0.3)


def plot_experiment(experiment: str, runs: Sequence[ArmRun], png) -> Path:
    """The experiment's figure (PNG) from its runs (any number of seeds per arm)."""
    groups = by_arm(runs)
    if not groups:
        raise ValueError("runs=[]: nothing to plot")
    title = {"schedules": "Dosing schedules", "combinations": "Combinations with the targeted drug",
             "niche": "The CAF/TAM niche", "persister_origin":
             "Pre-existing vs drug-induced persisters through a drug holiday"}[experiment]
    first = next(iter(groups.values()))[0]

    def lab(arm):
        return short(arm, experiment)

    if experiment == "schedules":
        fig = _figure((13, 3.8))
        axes = fig.subplots(1, 4)
        _curves(axes[0], groups, lambda r: r.observables["burden"] / r.baseline,
                "burden / baseline", label=lab)
        axes[0].axhline(1.2, color="grey", ls="--", lw=0.8)
        for ax in axes[:3]:
            ax.axvline(0.0, color="grey", ls=":", lw=0.8)      # treatment start
        _curves(axes[1], groups, lambda r: r.observables["P"], "persisters P (cells)", label=lab)
        _curves(axes[2], groups, lambda r: r.observables["R"], "resistant R (cells)", label=lab)
        _points(axes[3], groups, lambda r: r.summary.get("time_to_progression_days", math.nan),
                "time to progression (days)", log=False, label=lab)
        end = float(first.days[-1])
        axes[3].axhline(end, color="grey", ls=":", lw=0.8)
        axes[3].text(0.02, end, "end of run (never progressed: not drawn)", fontsize=7,
                     va="bottom", transform=axes[3].get_yaxis_transform())
        axes[0].legend(fontsize=7)
    elif experiment == "combinations":
        fig = _figure((13, 3.8))
        axes = fig.subplots(1, 3)
        _curves(axes[0], groups, lambda r: r.observables["P"], "persisters P (cells)", label=lab)
        _points(axes[1], groups, lambda r: value_at(r, "P", r.days[-1]) / r.baseline,
                f"P / baseline burden at day {first.days[-1]:g}", label=lab)
        control = groups.get("continuous")
        if control:
            ctrl = {r.seed: r for r in control}
            names = [a for a in groups if a != "continuous"]
            width = 0.38
            for j, label in enumerate(("within niche_distance of a niche", "farther")):
                cut = [[100.0 * (1.0 - paired_near_far_ratio(r, ctrl[r.seed])[j])
                        for r in groups[a] if r.seed in ctrl] for a in names]
                axes[2].bar(np.arange(len(names)) + (j - 0.5) * width,
                            [np.mean(c) if c else np.nan for c in cut], width, label=label,
                            color=("tab:red", "tab:grey")[j])
            axes[2].set_xticks(range(len(names)), [lab(n) for n in names])
            axes[2].set_yscale("log")
            axes[2].set_ylabel(f"persisters removed vs targeted alone (%), day {first.days[-1]:g}")
            axes[2].set_ylim(top=1000.0)      # room for the legend above the 100 % bars
            axes[2].legend(fontsize=7, title="tumour voxels", title_fontsize=7,
                           loc="upper center")
            axes[2].grid(True, axis="y", which="both", alpha=0.3)
        axes[0].legend(fontsize=7)
    elif experiment == "niche":
        fig = _figure((16, 3.8))
        axes = fig.subplots(1, 4)
        _curves(axes[0], groups, lambda r: r.observables["P"] / r.baseline,
                "P / baseline burden", label=lab)
        _points(axes[1], groups, lambda r: value_at(r, "P", r.days[-1]) / r.baseline,
                f"P / baseline burden at day {first.days[-1]:g}", label=lab)
        edges = np.array([0.0, 20.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0])
        centres = 0.5 * (edges[1:] + edges[:-1])
        for k, (arm, rs) in enumerate(groups.items()):
            colour, label = COLOURS[k % len(COLOURS)], lab(arm).replace("\n", " ")
            profiles = np.array([niche_profile_of(r, edges) for r in rs])
            if np.isfinite(profiles).any():
                with np.errstate(invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)    # all-NaN bins
                    axes[2].plot(centres, np.nanmean(profiles, axis=0), "o-", color=colour,
                                 label=label)
            else:   # no niche: the whole tumour bed's mean, for reference
                axes[2].axhline(np.mean([near_far(r)[1] for r in rs]), color=colour, ls="--",
                                lw=1.2, label=f"{label} (no niche: bed mean)")
        axes[2].set_ylabel(f"mean P density at day {first.days[-1]:g} (cells/voxel)")
        control, treated = groups.get("section + continuous"), groups.get("section + targeted_meti")
        if control and treated:
            ctrl = {r.seed: r for r in control}
            ratios = np.array([paired_profile_ratio(r, ctrl[r.seed], edges) for r in treated
                               if r.seed in ctrl])
            for ratio in ratios:
                axes[3].plot(centres, ratio, color="tab:blue", lw=0.6, alpha=0.4)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)    # all-NaN bins
                axes[3].plot(centres, np.nanmean(ratios, axis=0), "o-", color="tab:blue",
                             label="section: P with / without MET inhibitor")
            axes[3].axhline(1.0, color="black", lw=0.8)
            axes[3].set_ylabel(f"P ratio at day {first.days[-1]:g}, voxel by voxel")
            axes[3].legend(fontsize=7)
        for ax in axes[2:]:
            ax.axvline(first.niche_distance, color="grey", ls="--", lw=0.8)
            ax.set_xlabel("distance to the nearest CAF/TAM niche voxel (µm)")
            ax.grid(True, alpha=0.3)
        axes[2].legend(fontsize=7)
        axes[0].legend(fontsize=7)
    elif experiment == "persister_origin":
        fig = _figure((13, 3.8))
        axes = fig.subplots(1, 3)
        _curves(axes[0], groups, lambda r: r.observables["P"], "persisters P (cells)", label=lab)
        _curves(axes[1], groups, lambda r: r.observables["S"], "sensitive S (cells)", label=lab)
        _curves(axes[2], groups, lambda r: r.observables["P"] / (r.observables["S"]
                                                                  + r.observables["P"]),
                "P / (S + P)", label=lab)
        for ax in axes:
            _shade_windows(ax, first)
        axes[0].legend(fontsize=7)
    else:
        raise ValueError(f"experiment={experiment!r}: known experiments are {list(EXPERIMENTS)}")
    fig.suptitle(f"{title} — {len(runs)} runs; seeds {sorted({r.seed for r in runs})}",
                 fontsize=10)
    png = Path(png)
    fig.savefig(png, dpi=110)
    return png


# --------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spatialdtp.experiments",
        description="Read-outs and figure of an experiment sweep "
                    "(spatialdtp-run -m experiment=NAME).")
    parser.add_argument("sweep_dir", help="the multirun directory of the sweep")
    parser.add_argument("--experiment", choices=EXPERIMENTS,
                        help="default: from the jobs' experiment=... override")
    parser.add_argument("--out", help="figure path (default SWEEP_DIR/experiment.png)")
    args = parser.parse_args(argv)
    try:
        name, runs = load_sweep(args.sweep_dir, args.experiment)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: no complete run in {args.sweep_dir}", file=sys.stderr)
        return 2
    print(readout_table(name, runs))
    png = plot_experiment(name, runs, args.out or Path(args.sweep_dir) / "experiment.png")
    print(f"figure: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
