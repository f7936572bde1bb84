"""The simulation: tissue and state in, a stepping loop, observables and a run file out.

One step of length Δt (Strang splitting; second order when the substrate solve is):

    cells(Δt/2):  pointwise kinetics (reactions), then motility/chemotaxis (transport)
    substrates(Δt): one implicit reaction–diffusion solve per substrate, cells frozen
    cells(Δt/2):  transport, then kinetics

Drug plasma levels come from the treatment (schedule + pharmacokinetics); its adaptive
decisions read the tumour burden of the last step, a scalar already on the host.
"""
from __future__ import annotations

import logging
import math
import signal
from pathlib import Path
from typing import Callable

import numpy as np

from ..backends import Backend, get_backend
from ..config import CELL_TYPES, SpatialDTPConfig, all_substrates, to_dict, validate
from ..model.cells import CellKinetics
from ..model.grid import Grid
from ..model.state import CELL_LONG_NAMES, FieldLayout, State, auc_name
from ..model.substrate_coefficients import Substrate
from ..model.tissue import build_tissue
from ..model.treatment import Treatment
from ..numerics.implicit import ImplicitSolver
from .observables import Observer
from .summary import summarize

log = logging.getLogger("spatialdtp")

MINUTES_PER_DAY = 1440.0
#: the run file's map (and checkpoint array) of S + P + R at treatment start, the niche
#: contrast's reference (cells/voxel)
TUMOUR_START = "tumour_start"
TR_BDF2_GAMMA = 2.0 - math.sqrt(2.0)


class NonFiniteError(FloatingPointError):
    """A field became NaN or Inf; the message names step, time, field and voxel."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the run file was closed with a checkpoint."""


def capacity_of(cfg: SpatialDTPConfig) -> float:
    if cfg.cells.capacity is not None:
        return float(cfg.cells.capacity)
    return cfg.grid.dx**3 / cfg.cells.cell_volume


def treatment_start_minutes(cfg: SpatialDTPConfig) -> float:
    """When the first drug starts: its ``start_day``, or for a ``doses`` schedule (where
    ``start_day`` has no effect) its first dose."""
    starts = [min(day for day, _ in d.schedule.doses) if d.schedule.kind == "doses"
              else d.schedule.start_day for d in cfg.treatment.drugs.values()]
    return min(starts) * MINUTES_PER_DAY if starts else 0.0


class Simulation:
    """A configured tissue, ready to step.

    >>> sim = Simulation(cfg)          # cfg: a SpatialDTPConfig (see spatialdtp.api.load_config)
    >>> sim.run_until(days=2)
    >>> sim.field("P")                 # NumPy array on the host
    """

    def __init__(self, cfg: SpatialDTPConfig, backend: Backend | None = None, *,
                 restore: tuple | None = None):
        self.backend = backend or get_backend(cfg.backend.name, voxels=math.prod(cfg.grid.shape))
        validate(cfg, free_memory_bytes=self.backend.free_memory())
        self.cfg = cfg
        xp = self.xp = self.backend.xp
        self.dtype = np.dtype(cfg.backend.precision)
        self.grid = Grid(tuple(cfg.grid.shape), cfg.grid.dx)
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
        self.state = State(self.grid, self.layout, xp, self.dtype,
                           data=self.backend.asarray(host, dtype=self.dtype),
                           vessels=self.backend.asarray(vessels, dtype=self.dtype))

        self.substrates = [Substrate(name, s, self.grid, self.capacity, cfg.cells.cell_volume,
                                     self.state.vessels, xp, is_drug=name in self.drugs)
                           for name, s in subs.items()]
        self.kinetics = CellKinetics(cfg.cells, self.capacity, self.state.vessels, xp)
        self.treatment = Treatment(cfg.treatment)
        if restore is not None:
            self.treatment.set_state(restore[3]["treatment"])
        self.ops = self.backend.ops(self.dtype)
        self.solver = ImplicitSolver(self.grid.shape, self.grid.dx, xp, self.dtype, ops=self.ops)
        self.observer = Observer(self.grid, self.layout, cfg.run, self.capacity, self.drugs, xp,
                                 ops=self.ops, treatment_start=treatment_start_minutes(cfg))
        self._reference_stored = False         # /static/tumour_start written to the run file
        if restore is not None and TUMOUR_START in restore[2]:
            self.observer.set_reference(self.backend.asarray(restore[2][TUMOUR_START],
                                                             dtype=self.dtype))
        m = cfg.cells
        self.motilities = (m.sensitive.motility, m.persister.motility, m.resistant.motility,
                           m.fibroblast.motility, m.macrophage.motility)
        self._unconverged: set[str] = set()
        self._checkpoint_time: float | None = None
        self._run_file: Path | None = None     # the run file this simulation writes
        self._resumed_from: Path | None = None  # run_until continues there by default
        self.solver_iterations: dict[str, int] = {}
        self._history: list[tuple[float, dict]] = []
        self.last = self._observe(self.treatment.plasma())
        if restore is None:
            self._history.append((self.t, self.last))

    # ------------------------------------------------------------------ one step
    def _cells_half(self, tau: float, transport_first: bool):
        ops, st = self.ops, self.state
        chi = self.cfg.cells.macrophage.chemotaxis
        if transport_first:
            ops.move_cells(st, self.motilities, chi, tau, self.capacity)
        ops.react_cells(st, self.kinetics, self.cfg.treatment, tau)
        if not transport_first:
            ops.move_cells(st, self.motilities, chi, tau, self.capacity)

    def _substrates_step(self, dt: float, blood: dict):
        st, num = self.state, self.cfg.numerics
        for sub in self.substrates:
            c = st[sub.name]
            level = blood[sub.name] if sub.is_drug else sub.cfg.blood
            boundary = sub.boundary(level)
            c_lin = c
            for _ in range(num.picard_iterations + 1):
                D, a, b = self.ops.coefficients(sub, st, c_lin, level)
                c_new, info = self._implicit(c, D, a, b, dt, boundary)
                c_lin = 0.5 * (c + c_new)
            self.solver_iterations[sub.name] = info.iterations
            if not info.converged and sub.name not in self._unconverged:
                self._unconverged.add(sub.name)
                log.warning("%s: implicit solve reached numerics.max_iterations=%d with relative "
                            "residual %.2e (rtol %.1e) at t=%.1f min; raise max_iterations or "
                            "lower run.dt", sub.name, num.max_iterations, info.residual,
                            num.rtol, self.t)
            if sub.is_drug:
                st[auc_name(sub.name)] += 0.5 * dt * (c + c_new)
            st[sub.name] = c_new

    def _implicit(self, c, D, a, b, dt, boundary):
        """One step of ∂c/∂t = ∇·D∇c − a c + b with the configured scheme.

        TR-BDF2 (Bank et al. 1985; Hosea & Shampine 1996): a trapezoidal stage to t + γΔt,
        then BDF2 through t, t + γΔt and t + Δt, with γ = 2 − √2 so both stages solve with
        the same matrix I − (γ/2)Δt A. Second order and L-stable.
        """
        num, solve = self.cfg.numerics, self.solver.step
        opts = dict(D=D, a=a, b=b, boundary=boundary, rtol=num.rtol, max_iter=num.max_iterations)
        if num.scheme == "backward_euler":
            return solve(c, dt=dt, theta=1.0, **opts)
        if num.scheme == "crank_nicolson":
            return solve(c, dt=dt, theta=0.5, **opts)
        g = TR_BDF2_GAMMA
        stage, info1 = solve(c, dt=g * dt, theta=0.5, **opts)
        w = (1.0 - g) / (2.0 - g)
        rhs = (stage - (1.0 - g) ** 2 * c) / (g * (2.0 - g))
        c_new, info2 = solve(rhs, dt=w * dt, theta=1.0, **opts)
        info2.iterations += info1.iterations
        info2.converged = info1.converged and info2.converged
        return c_new, info2

    def step(self, dt: float | None = None) -> dict:
        """Advance by ``dt`` minutes (default ``run.dt``); return the new observables."""
        dt = float(self.cfg.run.dt if dt is None else dt)
        if not dt > 0:
            raise ValueError(f"dt={dt}: a step must be > 0 minutes")
        plasma = self.treatment.advance(self.t, dt, self.last["burden"])
        blood = plasma.average
        try:
            self._cells_half(0.5 * dt, transport_first=False)
            self._substrates_step(dt, blood)
            self._cells_half(0.5 * dt, transport_first=True)
        except ValueError:
            self._check_finite(during=True)  # a NaN born mid-step: name its field and voxel
            raise
        self.t += dt
        self.iteration += 1
        self.last = self._observe(plasma.level)
        self._history.append((self.t, self.last))
        return self.last

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
        xp = self.xp
        sums = self.backend.to_host(self.state.data.reshape(len(self.layout), -1).sum(axis=1))
        if np.all(np.isfinite(sums)):
            return
        i = int(np.flatnonzero(~np.isfinite(sums))[0])
        name = self.layout.names[i]
        bad = self.backend.to_host(xp.argwhere(~xp.isfinite(self.state.data[i]))[0])
        where = dict(zip(self.grid.axes, (int(v) for v in bad)))
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
        for name in self.observer.names:
            out[name] = np.array([o[name] for _, o in self._history], dtype=float)
        return out

    def observables_table(self):
        """The observables as a pandas DataFrame indexed by time in days."""
        import pandas as pd

        obs = self.observables()
        df = pd.DataFrame(obs)
        df.insert(0, "day", df["time"] / MINUTES_PER_DAY)
        return df

    def summary(self) -> dict:
        obs = self.observables()
        return summarize(obs["time"], obs, self.cfg.run, treatment_start_minutes(self.cfg))

    # ------------------------------------------------------------------ running
    def run_until(self, days: float | None = None, *, path: str | Path | None | bool = None,
                  progress: bool | None = None,
                  callback: Callable[["Simulation", str], None] | None = None,
                  stop: Callable[[], bool] | None = None) -> dict:
        """Run to ``days`` (default ``run.days``), writing the run file at ``path`` if given.

        Returns the end-of-run summary. Ctrl-C or SIGTERM closes the file with a checkpoint
        and raises :class:`RunInterrupted`; so does ``stop()`` returning True (checked before
        every step: a viewer's window closing, an optimiser pruning a trial). ``callback(sim,
        event)`` is called after every step (event "step") and every frame written ("frame"),
        from the thread that runs the loop. A non-finite field raises NonFiniteError after
        recording where it happened. A resumed simulation continues in its own run file
        unless ``path`` names another one; ``path=False`` writes no file.
        """
        from .runfile import RunWriter, WriteBehind

        if path is None and self._resumed_from is not None:
            path = self._resumed_from
        elif path is False:
            path = None

        run = self.cfg.run
        t_end = (run.days if days is None else days) * MINUTES_PER_DAY
        progress = run.progress if progress is None else progress
        writer = None
        if path is not None:
            path = Path(path)
            if self._run_file is not None and path.resolve() == self._run_file and path.exists():
                writer = RunWriter.reopen(path)     # continue this simulation's own file
            else:
                if path.exists():
                    log.warning("replacing the existing file %s with a new run file", path)
                writer = self._create_writer(path)
            self._run_file = path.resolve()
        out_every = run.output_interval_hours * 60.0
        ckpt_every = run.checkpoint_interval_hours * 60.0
        eps = 1e-9 * max(1.0, t_end)
        next_out = (math.floor(self.t / out_every + 1e-9) + 1) * out_every
        next_ckpt = (math.floor(self.t / ckpt_every + 1e-9) + 1) * ckpt_every
        bar = _progress_bar(progress, self.t, t_end)
        status = "failed"
        mid_step = False
        behind = WriteBehind() if writer is not None else None
        try:
            with _StopRequests() as requests:
                while self.t < t_end - eps:
                    requests.check()
                    if stop is not None and stop():
                        raise KeyboardInterrupt("stop requested")
                    dt = min(run.dt, next_out - self.t, t_end - self.t)
                    mid_step = True       # a second Ctrl-C lands here: state half-updated
                    obs = self.step(dt)
                    mid_step = False
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
            status = "interrupted"
            where = "no run file was written"
            if behind is not None:
                behind.drain()
            if writer is not None and not mid_step:
                self._checkpoint(writer)
                where = f"{path} holds every completed frame and a checkpoint"
            elif writer is not None:  # stopped inside a step: keep the last consistent one
                where = (f"{path} holds every completed frame; stopped inside a step, so its "
                         f"checkpoint is the last one written (t = "
                         f"{self._checkpoint_time / MINUTES_PER_DAY:.3f} days)")
            raise RunInterrupted(f"run interrupted at t = {self.t / MINUTES_PER_DAY:.3f} days; "
                                 f"{where}") from None
        except NonFiniteError as err:
            status = f"failed: {err}"
            if writer is not None:
                behind.drain()
                writer.write_failure(self.iteration, self.t,
                                     {"state": self.backend.to_host(self.state.data)}, str(err))
            raise
        except BaseException as err:
            status = f"failed: {type(err).__name__}: {err}"
            raise
        finally:
            bar.close()
            write_error = None
            if writer is not None:
                try:
                    behind.close()
                except BaseException as err:   # a frame or row could not be written
                    log.error("writing %s failed: %s: %s", path, type(err).__name__, err)
                    if status == "complete":
                        status = f"failed: writing the run file: {type(err).__name__}: {err}"
                        write_error = err
                if status == "complete":
                    if self._checkpoint_time != self.t:
                        self._checkpoint(writer)
                    writer.write_summary(self.summary())
                writer.close(status=status)
            if write_error is not None:
                raise write_error
        summary = self.summary()
        if path is not None:
            self.write_outputs(path, summary)
        if path is not None and run.plot:
            self.plot(path.with_name(path.stem + "_summary.png"), summary=summary)
        return summary

    def write_outputs(self, path, summary=None) -> list[Path]:
        """The summary JSON and observables CSV beside the run file (:mod:`.outputs`)."""
        from .outputs import write_outputs

        return write_outputs(path, summary or self.summary(), self.observables_table(),
                             self.observer.units)

    def plot(self, png, summary=None):
        """Draw the population dynamics and dose schedule (PNG)."""
        from .summary_plot import plot_summary

        obs = self.observables()
        c = self.cfg
        title = (f"tissue={c.tissue.name}  treatment={c.treatment.name}  seed={c.seed}  "
                 f"grid={'×'.join(map(str, self.grid.shape))} at {self.grid.dx:g} µm  "
                 f"backend={self.backend.name}")
        plot_summary(png, obs["time"], obs, summary or self.summary(), self.drugs, title=title)
        return png

    def _create_writer(self, path: Path):
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
                           overwrite=True)
        writer.write_static("vessels", self.backend.to_host(self.state.vessels),
                            units="vessel fraction")
        writer.append_observables(self.t, self.last, self.observer.units)
        writer.write_frame(self.t, self.fields())
        self._checkpoint(writer)  # a resumable state exists from the first moment on
        return writer

    def _write_frame(self, writer, t, snapshot):
        host = snapshot.result()
        writer.write_frame(t, {n: host[i] for i, n in enumerate(self.layout.names)})

    def _checkpoint(self, writer):
        self._checkpoint_time = self.t
        arrays = {"state": self.backend.to_host(self.state.data),
                  "vessels": self.backend.to_host(self.state.vessels)}
        ref = self.observer.reference
        if ref is not None:            # the niche contrast's tumour at treatment start
            arrays[TUMOUR_START] = self.backend.to_host(ref.T0)
            if not self._reference_stored:
                writer.write_static(TUMOUR_START, arrays[TUMOUR_START], units="cells/voxel")
                self._reference_stored = True
        writer.write_checkpoint(self.iteration, self.t, arrays,
                                {"treatment": self.treatment.get_state()})

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
        names = [n for n in sim.observer.names if n in obs]
        sim._history = [(float(obs["time"][i]), {n: float(obs[n][i]) for n in names})
                        for i in np.flatnonzero(keep)]
        return sim

    def describe(self) -> str:
        g = self.grid
        return (f"{g.ndim}D grid {'×'.join(map(str, g.shape))} at {g.dx:g} µm, "
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
    request; the loop stops after the step in progress. A second Ctrl-C stops at once.
    """

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handler(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
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
