"""Michaelis–Menten uptake at long steps: exact at steady state, reached per step.

Zero-order slab: cells consume oxygen at Q = φ n u K (mmHg/min; Michaelis–Menten with
K ≪ c), oxygen is c0 on the face x = 0 and the slab is deeper than the penetration
depth δ = √(2 D c0/Q). The steady field is c0 (1 − x/δ)² for x < δ and 0 beyond (the
anoxic core). Each step linearises the uptake at the start of the step, so with Δt much
longer than oxygen's relaxation time (L²/D ≈ 2 min here) one step is one Picard sweep
of the nonlinearity: the field converges per step, not per unit of time, and its fixed
point is the exact discrete steady state (README, Numerics).
"""
import math

import numpy as np
from test_coefficient_maps import EMPTY

from spatialdtp.api import load_config
from spatialdtp.run.simulation import Simulation

N, DX, C0, D, K, Q = 80, 5.0, 38.0, 1.0e5, 0.01, 190.0
DELTA = math.sqrt(2 * D * C0 / Q)                    # 200 µm
X = (np.arange(N) + 0.5) * DX
EXACT = np.where(X < DELTA, C0 * (1 - X / DELTA) ** 2, 0.0)


def zero_order_slab(tmp_path, dt):
    """A full voxel of cells that neither grow nor die, nothing else consuming oxygen."""
    capacity = DX**3 / 2494.0
    phi_n = 2494.0 / DX**3 * capacity                # = 1: cells fill the voxels
    np.save(tmp_path / "S.npy", np.full((3, N), capacity))
    np.save(tmp_path / "v.npy", np.zeros((3, N)))
    return Simulation(load_config(EMPTY + [
        f"grid.shape=[3,{N}]", f"grid.dx={DX}", f"+tissue.files.S={tmp_path / 'S.npy'}",
        f"+tissue.files.vessels={tmp_path / 'v.npy'}", "cells.sensitive.growth=0",
        "cells.sensitive.death=0", "cells.switching.alpha0=0",
        "cells.environment.necrosis_rate=0", "cells.environment.starvation_rate=0",
        "substrates.oxygen.decay=0", f"substrates.oxygen.uptake={{S:{Q / (phi_n * K)}}}",
        f"substrates.oxygen.uptake_km={K}", "+substrates.oxygen.boundary.x-=fixed",
        f"substrates.oxygen.boundary_value={C0}", f"substrates.oxygen.initial={C0}",
        f"run.dt={dt}"]))


def error_after(sim, steps):
    for _ in range(steps):
        sim.step()
    return float(np.abs(sim.field("oxygen")[1] - EXACT).max())


def test_day_long_steps_reach_the_zero_order_steady_state(tmp_path):
    """The fixed point is the discrete steady state: the error left is the grid's at the
    front, where c'' jumps from 2c0/δ² to 0 — O(c0 (dx/δ)²) = 0.024 mmHg — plus the
    Michaelis–Menten tail √(D K/Q) = 2.3 µm < dx. Asserted: under 3 c0 (dx/δ)²."""
    err = error_after(zero_order_slab(tmp_path, 1440.0), 100)
    assert err < 3 * C0 * (DX / DELTA) ** 2, err


def test_the_approach_is_per_step_not_per_unit_time(tmp_path):
    """After one day-long step the field is far off (the first sweep linearises at c0
    everywhere: no anoxic core at all), and ten steps of 144 or of 1440 minutes leave the
    same error, ten times the converged one: the steps count, not the time."""
    converged = 3 * C0 * (DX / DELTA) ** 2
    assert error_after(zero_order_slab(tmp_path, 1440.0), 1) > 100 * converged
    long_steps = error_after(zero_order_slab(tmp_path, 1440.0), 10)
    short_steps = error_after(zero_order_slab(tmp_path, 144.0), 10)
    assert long_steps > 2 * converged
    assert abs(long_steps - short_steps) < 0.01 * long_steps, (long_steps, short_steps)
