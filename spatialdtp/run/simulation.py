"""The simulation: tissue and state in, a stepping loop, observables and a run file out.

One step of length Δt (Strang splitting; second order when the substrate solve is):

    cells(Δt/2):  pointwise kinetics (reactions), then motility/chemotaxis (transport)
    substrates(Δt): one implicit reaction–diffusion solve per substrate, cells frozen
    cells(Δt/2):  transport, then kinetics

Drug plasma levels come from the treatment (schedule + pharmacokinetics); its adaptive
decisions read the tumour burden of the last step, a scalar already on the host.

A drug with ``exposure`` plasma or uniform (and every drug of a well-mixed tissue) is not
transported: its field is penetration × plasma, held at the step's exact average plasma
level through both cell half-steps, and a step is cut at that drug's schedule switches and
doses, so that the cells see a switch when it happens (second order in Δt across it).
A well-mixed tissue (``tissue.kind=well_mixed``) is one voxel: no cell transport, and the
substrate step is the pointwise solve of :mod:`spatialdtp.numerics.pointwise`.
"""
from __future__ import annotations

import logging
import math
import signal
from pathlib import Path
from typing import Callable

import numpy as np

from ..backends import Backend, get_backend
from ..config import (CELL_TYPES, SpatialDTPConfig, all_substrates, check_resources,
                      to_dict, validate_values)
from ..config.limits import check_transport, chemokine_bound, n_frames, n_steps
from ..model.cells import CellKinetics
from ..model.grid import POINT, Grid
from ..model.state import CELL_LONG_NAMES, FieldLayout, State, auc_name
from ..model.substrate_coefficients import Substrate
from ..model.tissue import build_tissue, load_coefficient_maps
from ..model.treatment import Treatment
from .errors import NonFiniteError, SolverDivergence
from .observables import Observer
from .substrate_step import SubstrateStep
from .runfile import RunFileWriteError, WriteBehind
from .summary import summarize

log = logging.getLogger("spatialdtp")

MINUTES_PER_DAY = 1440.0
#: the run file's map (and checkpoint array) of S + P + R at treatment start, the niche
#: contrast's reference (cells/voxel)
TUMOUR_START = "tumour_start"

__all__ = ["NonFiniteError", "RunInterrupted", "Simulation", "SolverDivergence"]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the run file was closed with a checkpoint."""


def capacity_of(cfg: SpatialDTPConfig) -> float:
    if cfg.cells.capacity is not None:
        return float(cfg.cells.capacity)
    return cfg.grid.dx**3 / cfg.cells.cell_volume


def tissue_ratios(cfg: SpatialDTPConfig) -> dict[str, float]:
    """Tissue level / plasma level of every drug that is not transported: ``exposure``
    plasma (1) or uniform (``penetration``); in a well-mixed tissue every drug, a
    ``vessels`` one at its plasma level (the well has no vessels to cross)."""
    well_mixed = cfg.tissue.kind == "well_mixed"
    return {name: (d.penetration if d.exposure == "uniform" else 1.0)
            for name, d in cfg.treatment.drugs.items()
            if well_mixed or d.exposure != "vessels"}


def treatment_start_minutes(cfg: SpatialDTPConfig) -> float:
    """When the first drug starts: the lead-in plus its ``start_day``, or for a ``doses``
    schedule (where ``start_day`` has no effect) its first dose; 0 without drugs."""
    starts = [min(day for day, _ in d.schedule.doses) if d.schedule.kind == "doses"
              else d.schedule.start_day for d in cfg.treatment.drugs.values()]
    if not starts:
        return 0.0
    return (cfg.treatment.lead_in_days + min(starts)) * MINUTES_PER_DAY


class Simulation:
    """A configured tissue, ready to step.

    >>> sim = Simulation(cfg)          # cfg: a SpatialDTPConfig (see spatialdtp.api.load_config)
    >>> sim.run_until(days=2)
    >>> sim.field("P")                 # NumPy array on the host
    """

    def __init__(self, cfg: SpatialDTPConfig, backend: Backend | None = None, *,
                 restore: tuple | None = None):
        self.well_mixed = cfg.tissue.kind == "well_mixed"
        shape = POINT if self.well_mixed else tuple(cfg.grid.shape)
        capacity = validate_values(cfg)   # the backend is chosen for a valid grid
        self.backend = backend or get_backend(cfg.backend.name, voxels=math.prod(shape))
        check_resources(cfg, capacity, self.backend.free_memory(), self.backend.name)
        self.cfg = cfg
        xp = self.xp = self.backend.xp
        self.dtype = np.dtype(cfg.backend.precision)
        self.grid = Grid(shape, cfg.grid.dx)
        self.tissue_ratio = tissue_ratios(cfg)
        subs = all_substrates(cfg)
        self.drugs = tuple(cfg.treatment.drugs)
        self.layout = FieldLayout(substrates=tuple(subs), drugs=self.drugs,
                                  units={name: s.units for name, s in subs.items()})
        self.capacity = capacity_of(cfg)

        if restore is None:
            rng = np.random.default_rng(cfg.seed)
            init = build_tissue(cfg.tissue, self.grid, self.capacity,
                                {n: s.initial for n, s in subs.items()}, rng)
            host = np.zeros((len(self.layout),) + self.grid.shape, dtype=self.dtype)
            for name, s in subs.items():
                host[self.layout.index[name]] = init.get(name, s.initial)
            for name in CELL_TYPES:
                host[self.layout.index[name]] = init[name]
            vessels = init["vessels"]
            self.t, self.iteration = 0.0, 0
        else:
            step, t, arrays, info = restore
            host, vessels = arrays["state"], arrays["vessels"]
            self.t, self.iteration = float(t), int(step)
        self._check_chemotaxis(host, vessels)
        host_maps = load_coefficient_maps(subs, self.grid, self.drugs)
        for name, kinds in host_maps.items():
            if "fixed" in kinds and restore is None:   # fixed voxels start at their value
                held = ~np.isnan(kinds["fixed"])
                host[self.layout.index[name]][held] = kinds["fixed"][held]
        self.state = State(self.grid, self.layout, xp, self.dtype,
                           data=self.backend.asarray(host, dtype=self.dtype),
                           vessels=self.backend.asarray(vessels, dtype=self.dtype))

        maps = {name: {kind: self.backend.asarray(m, dtype=self.dtype)
                       for kind, m in kinds.items()}
                for name, kinds in host_maps.items()}
        self.substrates = [Substrate(name, s, self.grid, self.capacity, cfg.cells.cell_volume,
                                     self.state.vessels, xp, is_drug=name in self.drugs,
                                     maps=maps.get(name))
                           for name, s in subs.items()]
        self.kinetics = CellKinetics(cfg.cells, self.capacity, self.state.vessels, xp)
        self.treatment = Treatment(cfg.treatment)
        if restore is not None:
            self.treatment.set_state(restore[3]["treatment"])
        self.ops = self.backend.ops(self.dtype)
        self.substrate_step = SubstrateStep(self.substrates, self.grid, self.ops, xp, self.dtype,
                                            cfg.numerics, held=self.tissue_ratio)
        self.solver = self.substrate_step.pcg   # per substrate: PCG, or pointwise if well mixed
        if restore is not None:
            self.substrate_step.set_state(restore[3].get("solver", {}),
                                          restore[2].get("solver_history"))
        self.observer = Observer(self.grid, self.layout, cfg.run, self.capacity, self.drugs, xp,
                                 ops=self.ops, treatment_start=treatment_start_minutes(cfg))
        self._reference_stored = False         # /static/tumour_start written to the run file
        if restore is not None and TUMOUR_START in restore[2]:
            self.observer.set_reference(self.backend.asarray(restore[2][TUMOUR_START],
                                                             dtype=self.dtype))
        m = cfg.cells
        self.motilities = (m.sensitive.motility, m.persister.motility, m.resistant.motility,
                           m.fibroblast.motility, m.macrophage.motility)
        self._checkpoint_time: float | None = None
        self._run_file: Path | None = None     # the run file this simulation writes
        self._resumed_from: Path | None = None  # run_until continues there by default
        self._history: list[tuple[float, dict]] = []
        self.last = self._observe(self.treatment.plasma())
        self.last.update(self.substrate_step.report.step_values())
        if restore is None:
            self._history.append((self.t, self.last))

    def _check_chemotaxis(self, host, vessels):
        """Refuse a chemotaxis whose drift, bounded from this tissue's chemokine sources,
        would need unbounded transport sub-steps (:func:`config.limits.check_transport`).
        Only cell types that exist here, or can arise (S, P, R from each other; M from
        vessels), count as chemokine sources."""
        cfg, index = self.cfg, self.layout.index
        if cfg.cells.macrophage.chemotaxis <= 0:
            return
        present = {c for c in CELL_TYPES if np.any(host[index[c]] > 0)}
        if present & {"S", "P", "R"}:
            present |= {"S", "P", "R"}
        if np.any(vessels > 0) and cfg.cells.macrophage.recruitment > 0:
            present.add("M")
        q_max = chemokine_bound(cfg, self.capacity, float(np.max(host[index["chemokine"]])),
                                present)
        check_transport(cfg, self.capacity, q_max)

    # ------------------------------------------------------------------ one step
    def _cells_half(self, tau: float, transport_first: bool):
        ops, st = self.ops, self.state
        chi, pressure = self.cfg.cells.macrophage.chemotaxis, self.cfg.cells.pressure_mobility
        if transport_first and not self.well_mixed:
            ops.move_cells(st, self.motilities, chi, tau, self.capacity, pressure)
        ops.react_cells(st, self.kinetics, self.cfg.treatment, tau)
        if not transport_first and not self.well_mixed:
            ops.move_cells(st, self.motilities, chi, tau, self.capacity, pressure)

    def _substrates_step(self, dt: float, blood: dict, first: bool = True):
        """Every substrate's implicit step, cells frozen (:mod:`.substrate_step`); a drug
        held at its tissue level (``tissue_ratio``) keeps its field and gains exposure."""
        self.substrate_step.step(self.state, dt, blood, self.t, new_step=first)

    @property
    def solver_iterations(self) -> dict[str, int]:
        """Iterations (V-cycles or CG iterations) of each substrate's solves in the last step."""
        return dict(self.substrate_step.report.step_iterations)

    @property
    def solver_report(self):
        """Every implicit solve so far, counted (:class:`~.solver_report.SolverReport`)."""
        return self.substrate_step.report

    def step(self, dt: float | None = None) -> dict:
        """Advance by ``dt`` minutes (default ``run.dt``); return the new observables."""
        dt = float(self.cfg.run.dt if dt is None else dt)
        if not dt > 0:
            raise ValueError(f"dt={dt}: a step must be > 0 minutes")
        t_end = self.t + dt
        try:
            for k, h in enumerate(self._pieces(dt)):
                plasma = self.treatment.advance(self.t, h, self.last["burden"])
                self._expose(plasma.average)
                self._cells_half(0.5 * h, transport_first=False)
                self._substrates_step(h, plasma.average, first=k == 0)
                self._cells_half(0.5 * h, transport_first=True)
                self._expose(plasma.level)
                self.t += h
        except (ValueError, SolverDivergence):
            self._check_finite(during=True)  # a NaN born mid-step: name its field and voxel
            raise
        self.t = t_end
        self.iteration += 1
        self.last = self._observe(plasma.level)
        self.last.update(self.substrate_step.report.step_values())
        self._history.append((self.t, self.last))
        return self.last

    def _pieces(self, dt: float) -> list[float]:
        """The sub-steps of a step: cut at the switches and doses inside it when a drug is
        at its plasma level in the tissue (its field jumps there); else the whole step."""
        if not self.tissue_ratio:
            return [dt]
        a, b = self.t, self.t + dt
        edges = [a, *(x for x in self.treatment.event_times(b) if a < x < b), b]
        return [y - x for x, y in zip(edges, edges[1:])]

    def _expose(self, plasma: dict):
        """Set the untransported drugs' fields to penetration × ``plasma`` (µM)."""
        for drug, ratio in self.tissue_ratio.items():
            self.state[drug][...] = ratio * plasma[drug]

    def _observe(self, plasma: dict) -> dict:
        """Observables at ``self.t``. An ``on_<drug>`` flag stands for the coming step, so
        adaptive decisions due now are taken first, with the burden just observed."""
        obs = self.observer.compute(self.state, plasma, self.treatment.is_on(self.t), t=self.t)
        self._check_finite()
        if self.drugs:
            self.treatment.decide(obs["burden"])
            for drug, on in self.treatment.is_on(self.t).items():
                obs[f"on_{drug}"] = float(on)
        return obs

    def _check_finite(self, during: bool = False):
        """Raise NonFiniteError naming the step, the field and the first bad voxel.

        Each field's sum, accumulated in float64, is the cheap test; only where a sum is
        not finite is the field searched voxel by voxel. After an observation the sums are
        the observer's (its one pass totals every field: ``Observer.field_sums``); mid-step
        (``during``) they are taken here (one reduction). A sum can overflow while every
        voxel is finite (float64 values near 1e308), so only a voxel found non-finite is
        an error.
        """
        xp = self.xp
        n = len(self.layout)
        known = self.observer.field_sums
        if during or any(name not in known for name in self.layout.names):
            sums = self.backend.to_host(
                self.state.data.reshape(n, -1).sum(axis=1, dtype=xp.float64))
        else:
            sums = np.array([known[name] for name in self.layout.names])
        for i in np.flatnonzero(~np.isfinite(sums)):
            bad = self.backend.to_host(xp.argwhere(~xp.isfinite(self.state.data[int(i)])))
            if len(bad) == 0:
                continue
            name = self.layout.names[int(i)]
            where = dict(zip(self.grid.axes, (int(v) for v in bad[0])))
            step = self.iteration + 1 if during else self.iteration
            raise NonFiniteError(
                f"field {name!r} became non-finite at step {step} "
                f"(t = {self.t:.1f} min = {self.t / MINUTES_PER_DAY:.3f} days), first at voxel "
                f"{where}; lower run.dt or check the parameters of {name!r}")

    # ------------------------------------------------------------------ reading
    def field(self, name: str) -> np.ndarray:
        """A copy of one field on the host."""
        return self.backend.to_host(self.state[name]).copy()

    def fields(self) -> dict[str, np.ndarray]:
        host = self.backend.to_host(self.state.data)
        return {n: np.array(host[i]) for i, n in enumerate(self.layout.names)}

    def observables(self) -> dict[str, np.ndarray]:
        """Every recorded step: ``time`` (min) and one array per observable."""
        out = {"time": np.array([t for t, _ in self._history])}
        for name in self.observable_names:
            out[name] = np.array([o[name] for _, o in self._history], dtype=float)
        return out

    def observables_table(self):
        """The observables as a pandas DataFrame indexed by time in days."""
        import pandas as pd

        obs = self.observables()
        df = pd.DataFrame(obs)
        df.insert(0, "day", df["time"] / MINUTES_PER_DAY)
        return df

    @property
    def observable_names(self) -> tuple[str, ...]:
        """Every per-step observable: the observer's, then the solver's."""
        return self.observer.names + self.substrate_step.report.names()

    def summary(self) -> dict:
        """The end points of the treatment (:mod:`.summary`) and the solver's counts."""
        obs = {k: v for k, v in self.observables().items()
               if k not in self.substrate_step.report.names()}
        out = summarize(obs["time"], obs, self.cfg.run, treatment_start_minutes(self.cfg))
        out.update(self.substrate_step.report.summary())
        return out

    def solver_warning(self) -> str | None:
        """A line naming every substrate with unconverged solves, or None."""
        return self.substrate_step.report.warning()

    # ------------------------------------------------------------------ running
    def run_until(self, days: float | None = None, *, path: str | Path | None | bool = None,
                  progress: bool | None = None,
                  callback: Callable[["Simulation", str], None] | None = None,
                  stop: Callable[[], bool] | None = None, overwrite: bool | None = None) -> dict:
        """Run to ``days`` (default ``run.days``), writing the run file at ``path`` if given.

        Returns the end-of-run summary. Ctrl-C or SIGTERM closes the file with a checkpoint
        and raises :class:`RunInterrupted`; so does ``stop()`` returning True (checked before
        every step: a viewer's window closing, an optimiser pruning a trial). ``callback(sim,
        event)`` is called after every step (event "step") and every frame written ("frame"),
        from the thread that runs the loop. A non-finite field raises NonFiniteError after
        recording where it happened; a failed write (a full disk) raises
        :class:`~spatialdtp.run.runfile.RunFileWriteError` and leaves the file closed,
        readable and resumable.

        An existing file at ``path`` is this simulation's own (continued) or is refused
        (:class:`~spatialdtp.run.runfile.RunFileExists`) unless ``overwrite`` (default
        ``run.overwrite``); a file another process writes is always refused
        (:class:`~spatialdtp.run.runfile.RunFileBusy`). A resumed simulation continues in
        its own run file unless ``path`` names another one; ``path=False`` writes no file.
        """
        if path is None and self._resumed_from is not None:
            path = self._resumed_from
        elif path is False:
            path = None

        run = self.cfg.run
        t_end = (run.days if days is None else days) * MINUTES_PER_DAY
        progress = run.progress if progress is None else progress
        overwrite = run.overwrite if overwrite is None else overwrite
        out_every = run.output_interval_hours * 60.0
        ckpt_every = run.checkpoint_interval_hours * 60.0
        eps = 1e-9 * max(1.0, t_end)
        next_out = (math.floor(self.t / out_every + 1e-9) + 1) * out_every
        next_ckpt = (math.floor(self.t / ckpt_every + 1e-9) + 1) * ckpt_every
        writer = behind = None
        status = "failed"
        # Signals are handled from here until the file is closed and the outputs beside it
        # are written: a second one during the shutdown may not cut the final checkpoint
        # short.
        with _StopRequests() as requests:
            bar = _progress_bar(progress, self.t, t_end)
            try:
                if path is not None:
                    path = Path(path)
                    writer = self._open_writer(path, overwrite)
                    behind = WriteBehind()
                while self.t < t_end - eps:
                    requests.check()
                    if stop is not None and stop():
                        raise KeyboardInterrupt("stop requested")
                    dt = min(run.dt, next_out - self.t, t_end - self.t)
                    requests.in_step = True   # a second Ctrl-C lands here: state half-updated
                    obs = self.step(dt)
                    requests.in_step = False
                    if writer is not None:
                        behind.submit(writer.append_observables, self.t, obs,
                                      self.observer.units)
                    if callback is not None:
                        callback(self, "step")
                    if self.t >= next_out - eps or self.t >= t_end - eps:
                        if writer is not None:      # copied now, written while we step on
                            behind.submit(self._write_frame, writer, self.t,
                                          self.backend.snapshot(self.state.data))
                        if callback is not None:
                            callback(self, "frame")
                        if self.t >= next_out - eps:
                            next_out += out_every
                    if self.t >= next_ckpt - eps:
                        if writer is not None:
                            behind.drain()
                            self._checkpoint(writer)
                        next_ckpt += ckpt_every
                    bar.update(self.t / MINUTES_PER_DAY - bar.n)
                    bar.set_postfix(burden=f"{obs['burden']:.3g}", P=f"{obs['P']:.3g}",
                                    refresh=False)
                status = "complete"
            except KeyboardInterrupt:
                requests.shutting_down = True
                status = "interrupted"
                raise RunInterrupted(self._interrupted(writer, behind, path,
                                                       requests.in_step)) from None
            except NonFiniteError as err:
                requests.shutting_down = True
                status = f"failed: {err}"
                if writer is not None and not writer.broken:
                    behind.drain()
                    writer.write_failure(self.iteration, self.t,
                                         {"state": self.backend.to_host(self.state.data)},
                                         str(err))
                raise
            except RunFileWriteError as err:
                status = f"failed: {err}"
                raise
            except BaseException as err:
                status = f"failed: {type(err).__name__}: {err}"
                raise
            finally:
                requests.shutting_down = True
                bar.close()
                if writer is not None:
                    self._close_writer(writer, behind, path, status)
            # still shutting down: a signal now would leave a complete run file without
            # the summary and observables beside it
            summary = self.summary()
            if self.solver_warning():
                log.warning("the run completed with unconverged implicit solves: %s",
                            self.solver_warning())
            if path is not None:
                self.write_outputs(path, summary)
            if path is not None and run.plot:
                try:
                    self.plot(path.with_name(path.stem + "_summary.png"), summary=summary,
                              run_file=path)
                except OSError as err:   # the run file is complete; only the picture is missing
                    log.error("the summary plot could not be written: %s", err)
        return summary

    def _open_writer(self, path: Path, overwrite: bool):
        from .runfile import RunWriter

        if self._run_file is not None and path.resolve() == self._run_file and path.exists():
            writer = RunWriter.reopen(path)     # continue this simulation's own file
        else:
            writer = self._create_writer(path, overwrite)
        self._run_file = path.resolve()
        return writer

    def _interrupted(self, writer, behind, path, in_step: bool) -> str:
        """Drain the writer and checkpoint (unless stopped inside a step); the message."""
        where = "no run file was written"
        if behind is not None:
            try:
                behind.drain()
            except RunFileWriteError as err:
                return f"run interrupted; writing {path} had failed: {err}"
        if writer is not None and writer.broken:
            where = f"{path} could not be written to the end"
        elif writer is not None and not in_step:
            self._checkpoint(writer)
            where = f"{path} holds every completed frame and a checkpoint"
        elif writer is not None:  # stopped inside a step: keep the last consistent one
            where = (f"{path} holds every completed frame; stopped inside a step, so its "
                     f"checkpoint is the last one written (t = "
                     f"{self._checkpoint_time / MINUTES_PER_DAY:.3f} days)")
        return f"run interrupted at t = {self.t / MINUTES_PER_DAY:.3f} days; {where}"

    def _close_writer(self, writer, behind, path, status: str):
        """Finish the file: pending frames, the final checkpoint and summary of a complete
        run, the status. A write that fails on the way turns a complete run into a failed
        one and is raised after the file is closed."""
        write_error = None
        try:
            behind.close()
        except BaseException as err:   # a frame or row could not be written
            log.error("writing %s failed: %s", path, err)
            write_error = err
        if write_error is None and status == "complete" and not writer.broken:
            try:
                if self._checkpoint_time != self.t:
                    self._checkpoint(writer)
                writer.write_summary(self.summary())
                writer.write_summary({"solver_warning": self.solver_warning() or ""})
            except RunFileWriteError as err:
                write_error = err
        completed = status == "complete"
        if write_error is not None and completed:
            status = f"failed: writing the run file: {write_error}"[:1000]
        writer.close(status=status)
        if write_error is not None and completed:   # else the run's own error is raised
            raise write_error

    def write_outputs(self, path, summary=None) -> list[Path]:
        """The summary JSON and observables CSV beside the run file (:mod:`.outputs`)."""
        from .outputs import write_outputs

        summary = dict(summary or self.summary())
        summary["solver_warning"] = self.solver_warning() or ""   # as in the run file
        return write_outputs(path, summary, self.observables_table(), self.observer.units)

    def plot(self, png, summary=None, run_file=None):
        """Draw the population dynamics and dose schedule (PNG); with ``run_file`` (a run
        file of this run) the spatial panel from its frames too."""
        from .response_marks import run_settings
        from .summary_maps import spatial_panel
        from .summary_plot import plot_summary

        obs = self.observables()
        c = self.cfg
        title = f"{run_settings(c, self.grid.shape, self.grid.dx)}  backend={self.backend.name}"
        summary = summary or self.summary()
        spatial = None if run_file is None else spatial_panel(
            run_file, summary, c.run.niche_threshold, self.capacity)
        plot_summary(png, obs["time"], obs, summary, self.drugs, title=title, spatial=spatial,
                     config=c)
        return png

    def _create_writer(self, path: Path, overwrite: bool = False):
        import yaml

        from .runfile import RunWriter

        fields = {}
        for name in self.layout.names:
            if name in CELL_TYPES:
                fields[name] = {"units": "cells/voxel", "long_name": CELL_LONG_NAMES[name],
                                "kind": "cell"}
            elif name in self.layout.accumulators:
                fields[name] = {"units": self.layout.units[name], "kind": "exposure",
                                "long_name": f"cumulative exposure (AUC) to {name[4:]}"}
            else:
                fields[name] = {"units": self.layout.units[name], "long_name": name,
                                "kind": "substrate"}
        attrs = {"config": yaml.safe_dump(to_dict(self.cfg), sort_keys=False),
                 "backend": self.backend.name, "device": self.backend.device(),
                 "precision": self.dtype.name, "seed": self.cfg.seed,
                 "capacity": self.capacity, "drugs": list(self.drugs)}
        writer = RunWriter(path, grid=self.grid, fields=fields, attrs=attrs, dtype=self.dtype,
                           overwrite=overwrite, expected_frames=n_frames(self.cfg),
                           expected_rows=n_steps(self.cfg))
        try:
            writer.write_static("vessels", self.backend.to_host(self.state.vessels),
                                units="vessel fraction")
            writer.append_observables(self.t, self.last, self.observer.units)
            writer.write_frame(self.t, self.fields())
            self._checkpoint(writer)  # a resumable state exists from the first moment on
        except BaseException as err:
            writer.close(status=f"failed: {type(err).__name__}: {err}"[:1000])
            raise
        return writer

    def _write_frame(self, writer, t, snapshot):
        host = snapshot.result()
        writer.write_frame(t, {n: host[i] for i, n in enumerate(self.layout.names)})

    def _checkpoint(self, writer):
        self._checkpoint_time = self.t
        arrays = {"state": self.backend.to_host(self.state.data),
                  "vessels": self.backend.to_host(self.state.vessels),
                  "solver_history": self.backend.to_host(self.substrate_step.prev)}
        ref = self.observer.reference
        if ref is not None:            # the niche contrast's tumour at treatment start
            arrays[TUMOUR_START] = self.backend.to_host(ref.T0)
            if not self._reference_stored:
                writer.write_static(TUMOUR_START, arrays[TUMOUR_START], units="cells/voxel")
                self._reference_stored = True
        writer.write_checkpoint(self.iteration, self.t, arrays,
                                {"treatment": self.treatment.get_state(),
                                 "solver": self.substrate_step.get_state()})

    @classmethod
    def resume(cls, path, backend: Backend | None = None, days: float | None = None,
               cfg: SpatialDTPConfig | None = None) -> "Simulation":
        """Rebuild a simulation from a run file's checkpoint (its stored config by default)."""
        from ..config import from_dict
        from .runfile import read_checkpoint, read_observables, read_run

        if cfg is None:
            import yaml

            cfg = from_dict(yaml.safe_load(read_run(path).config))
        if days is not None:
            cfg.run.days = days
        step, t, arrays, info = read_checkpoint(path)
        sim = cls(cfg, backend, restore=(step, t, arrays, info))
        sim._run_file = Path(path).resolve()
        sim._resumed_from = Path(path)
        sim._checkpoint_time = float(t)
        obs = read_observables(path)
        keep = obs["time"] <= t + 1e-9
        names = [n for n in sim.observable_names if n in obs]
        sim._history = [(float(obs["time"][i]), {n: float(obs[n][i]) for n in names})
                        for i in np.flatnonzero(keep)]
        return sim

    def describe(self) -> str:
        g = self.grid
        where = ("well-mixed tissue (one voxel" if self.well_mixed else
                 f"{g.ndim}D grid {'×'.join(map(str, g.shape))}") + f" at {g.dx:g} µm"
        where += ")" if self.well_mixed else ""
        return (f"{where}, "
                f"{len(self.layout)} fields, backend {self.backend.name} ({self.dtype.name}), "
                f"capacity {self.capacity:.3g} cells/voxel, drugs {list(self.drugs) or 'none'}")


def _progress_bar(enabled: bool, t0: float, t_end: float):
    from tqdm.auto import tqdm

    return tqdm(total=round(t_end / MINUTES_PER_DAY, 6), initial=t0 / MINUTES_PER_DAY,
                unit="day", disable=not enabled, dynamic_ncols=True, mininterval=1.0,
                bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} days "
                           "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")


class _StopRequests:
    """Ctrl-C and SIGTERM ask the run to stop *between* steps.

    Raising from a signal handler would land mid-step (a checkpoint of half-updated fields)
    or inside a finaliser, where Python swallows it. So the handler only records the
    request; the loop stops after the step in progress. A second Ctrl-C while a step
    computes stops at once, inside the step (``in_step``). Once the run is shutting down
    (``shutting_down``: final checkpoint, closing the file) every further signal is
    ignored with a message, so the file is always closed whole; the handlers are restored
    only after that (and after a complete run's summary files are written).
    """

    def __init__(self):
        self.signum = None
        self.in_step = False
        self.shutting_down = False
        self._previous = {}

    def _handler(self, signum, frame):
        if self.shutting_down:
            log.warning("signal %d ignored: writing the final checkpoint and closing the run "
                        "file", signum)
            return
        if self.signum is not None and signum == signal.SIGINT and self.in_step:
            self.shutting_down = True
            raise KeyboardInterrupt
        if self.signum is None:
            log.warning("signal %d: stopping after the step in progress", signum)
        self.signum = signum

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def check(self):
        if self.signum is not None:
            raise KeyboardInterrupt(f"signal {self.signum}")
