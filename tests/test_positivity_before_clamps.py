"""Positivity and conservation measured *before* the clamps that would hide a violation.

The cell integrator (numerics/cell_kinetics.py), cell transport (numerics/transport.py)
and the fused kernel (kernels/cell_kinetics.cu) end with ``max(n, 0)``, and a θ = 1 solve
clears negative values: a test of the clamped output cannot see a scheme that goes
negative. Here the reference integrators run on an array namespace that records what
reaches ``maximum``, so the values before the clamp are checked; the kernel, whose clamp
cannot be watched, is checked by conservation at huge steps (a clamp that removed a
negative value adds mass); the solver reports what it clamped.
"""
import numpy as np
import pytest

from spatialdtp.config import CellsConfig
from spatialdtp.model.cells import CellKinetics, Environment
from spatialdtp.numerics.cell_kinetics import _exchange, integrate_cells
from spatialdtp.numerics.transport import move_cells

CAP = 3.2
DAY = 1440.0


class WatchedNumpy:
    """NumPy, except that ``maximum(a, 0)`` first records min(a) (the value a clamp
    would hide)."""

    def __init__(self):
        self.before_clamp = []

    def __getattr__(self, name):
        return getattr(np, name)

    def maximum(self, a, b, *args, **kwargs):
        if np.isscalar(b) and b == 0.0:
            self.before_clamp.append(float(np.min(a)))
        return np.maximum(a, b, *args, **kwargs)


def environment(rng, n, drug=1.0, death=0.1):
    return Environment(growth=rng.uniform(0, 1, n), hypoxia=rng.uniform(0, 1, n),
                       env_death=rng.uniform(0, death, n), kill=drug * rng.uniform(0.5, 1, n),
                       met_signal=rng.uniform(0, 1, n), epigenetic=rng.uniform(0, 0.5, n),
                       p_kill=rng.uniform(0, death, n), recruitment=rng.uniform(0, 1e-2, n))


def fast_switching():
    c = CellsConfig()
    c.sensitive.kill, c.switching.mu = 1.0, 0.5
    c.switching.alpha0, c.switching.alpha_drug, c.switching.rho0 = 0.02, 0.05, 0.03
    return c


def test_cell_integrator_is_non_negative_before_its_final_clamp_at_day_long_steps():
    rng = np.random.default_rng(1)
    xp = WatchedNumpy()
    c = fast_switching()
    c.sensitive.kill = 1e-4                 # cells survive the step, so switching matters
    kin = CellKinetics(c, CAP, np.ones(200), xp)
    cells = [rng.uniform(0, 1, 200) for _ in range(5)]
    for _ in range(10):
        cells = integrate_cells(kin, cells, environment(rng, 200, 0.2, 1e-5), 10 * DAY)
        # the exact flows are positive; rounding in S − moved may leave a few ulp below 0
        assert min(xp.before_clamp) >= -1e-12
        assert min(n.min() for n in cells[:2]) > 0     # S and P are alive: a real test
    assert len(xp.before_clamp) >= 50                # the final clamp of every density ran


def test_exchange_conserves_S_plus_P_and_stays_between_zero_and_the_total_at_ten_days():
    """The exact S ⇄ P flow over a 10-day step at α, ρ of order 1/min: a Taylor expansion
    of its exponential (1 − kτ + (kτ)²/2 for kτ ~ 10⁴) would put S at −10⁷."""
    rng = np.random.default_rng(2)
    S, P = rng.uniform(0, 1, 100), rng.uniform(0, 1, 100)
    alpha, rho = rng.uniform(0.01, 2.0, 100), rng.uniform(0.01, 2.0, 100)
    S1, P1, *_ = _exchange([S, P, 0, 0, 0], alpha, rho, 10 * DAY, np)
    np.testing.assert_allclose(S1 + P1, S + P, rtol=1e-12)
    assert S1.min() >= 0 and P1.min() >= 0
    # kτ ≫ 1: the pair has relaxed to the S ⇄ P equilibrium ρ/(α+ρ), α/(α+ρ) of the total
    np.testing.assert_allclose(P1, alpha / (alpha + rho) * (S + P), rtol=1e-10)


def test_integrated_switching_conserves_cells_at_ten_day_steps():
    """No growth, death or kill: only S ⇄ P. A clamp that cleared a negative S would add
    cells, so conservation also shows that nothing was clamped."""
    c = fast_switching()
    c.sensitive.growth = c.persister.growth = c.sensitive.kill = c.persister.kill = 0.0
    c.sensitive.death = c.persister.death = c.switching.mu = 0.0
    kin = CellKinetics(c, CAP, np.zeros(50))
    rng = np.random.default_rng(3)
    e = environment(rng, 50)
    e = Environment(growth=e.growth * 0, hypoxia=e.hypoxia, env_death=e.env_death * 0,
                    kill=e.kill, met_signal=e.met_signal, epigenetic=e.epigenetic,
                    p_kill=e.p_kill * 0, recruitment=e.recruitment * 0)
    cells = [rng.uniform(0, 1, 50), rng.uniform(0, 1, 50)] + [np.zeros(50)] * 3
    out = integrate_cells(kin, cells, e, 10 * DAY)
    np.testing.assert_allclose(out[0] + out[1], cells[0] + cells[1], rtol=1e-12)


def test_the_fused_cell_kernel_conserves_cells_when_only_switching_at_ten_day_steps(cpu):
    """The kernel's final clamp cannot be watched: conservation at a huge step is its
    witness (a negative value cleared adds cells)."""
    from spatialdtp.api import load_config
    from spatialdtp.run.simulation import Simulation

    cfg = load_config(["experiment=quick", "backend=cpu64", "cells.sensitive.growth=0",
                       "cells.persister.growth=0", "cells.resistant.fitness_cost=0",
                       "cells.sensitive.death=0", "cells.persister.death=0",
                       "cells.sensitive.kill=0", "cells.persister.kill=0",
                       "cells.switching.mu=0", "cells.switching.alpha0=0.5",
                       "cells.switching.alpha_drug=1.0", "cells.switching.rho0=0.8",
                       "cells.environment.necrosis_rate=0", "cells.environment.starvation_rate=0",
                       "treatment=continuous"])
    sim = Simulation(cfg)
    st = sim.state
    total = sim.field("S") + sim.field("P")
    sim.ops.react_cells(st, sim.kinetics, cfg.treatment, 10 * DAY)
    after = sim.field("S") + sim.field("P")
    np.testing.assert_allclose(after, total, rtol=1e-12, atol=1e-300)
    assert sim.field("S").min() >= 0 and sim.field("P").min() >= 0


@pytest.mark.parametrize("tau", [1.0, 37.0, 600.0])
def test_transport_is_non_negative_before_its_final_clamp(tau):
    """Motility and upwind chemotaxis out of a one-voxel chemokine pit, sub-stepped to
    the positivity limit: the values reaching the clamp are already >= 0."""
    xp = WatchedNumpy()
    rng = np.random.default_rng(4)
    q = rng.uniform(0, 5, (12, 11))
    q[5, 5] = 0.0
    cells = [rng.uniform(0, 1, (12, 11)) * (rng.random((12, 11)) < 0.3) for _ in range(5)]
    # capacity 10 cells a voxel: room everywhere (≤ 5 cells), crowding-limited hops
    out = move_cells(cells, (2.0, 1.0, 1.0, 0.0, 3.0), q, 40.0, tau, 10.0, 10.0, xp)
    assert len(xp.before_clamp) == 4                 # the four moving types were clamped
    assert min(xp.before_clamp) >= 0.0
    for before, after in zip(cells, out):
        assert after.sum() == pytest.approx(before.sum(), rel=1e-12)
