"""The step's operator splitting is symmetric (Strang), hence second order.

``Simulation.step`` composes cells(Δt/2) [kinetics, then transport] · substrates(Δt) ·
cells(Δt/2) [transport, then kinetics]. Replacing the three parts by exact flows of three
non-commuting linear generators (acting on S and P of one voxel) makes the composition the
only error left: a symmetric product of exponentials approximates e^{T(A+B+C)} to
O(Δt²), an asymmetric one only to O(Δt) (its leading error is ½Δt[X, Y] per step). Any
reordering that breaks the mirror (both halves kinetics first, a full step of cells
before the substrates, ...) shows up as order 1.
"""
import numpy as np
import pytest
from scipy.linalg import expm

from spatialdtp.api import load_config
from spatialdtp.run.simulation import Simulation

KINETICS = np.array([[-0.02, 0.01], [0.015, -0.03]])      # 1/min, on (S, P)
TRANSPORT = np.array([[0.0, 0.02], [-0.01, -0.005]])
SUBSTRATES = np.array([[-0.01, -0.015], [0.0, 0.01]])


def run(dt, t_end, monkeypatch):
    sim = Simulation(load_config(["experiment=quick", "backend=numpy64", "treatment=none"]))
    S, P = sim.state["S"], sim.state["P"]
    S[0, 0], P[0, 0] = 1.0, 0.5

    def flow(generator):
        def apply(tau):
            v = expm(tau * generator) @ np.array([S[0, 0], P[0, 0]])
            S[0, 0], P[0, 0] = v
        return apply

    kinetics, transport, substrates = flow(KINETICS), flow(TRANSPORT), flow(SUBSTRATES)
    monkeypatch.setattr(sim.ops, "react_cells", lambda st, k, tr, tau: kinetics(tau))
    monkeypatch.setattr(sim.ops, "move_cells", lambda st, m, chi, tau, *_: transport(tau))
    monkeypatch.setattr(sim, "_substrates_step", lambda step, blood, **_: substrates(step))
    while sim.t < t_end - 1e-9:
        sim.step(dt)
    return np.array([S[0, 0], P[0, 0]])


def test_the_step_composition_is_second_order(monkeypatch):
    t_end = 600.0
    exact = expm(t_end * (KINETICS + TRANSPORT + SUBSTRATES)) @ np.array([1.0, 0.5])
    errors = [np.abs(run(dt, t_end, monkeypatch) - exact).max() for dt in (60.0, 30.0, 15.0)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 1e-3
    assert orders.min() == pytest.approx(2.0, abs=0.15), (errors, orders)
