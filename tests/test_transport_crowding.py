"""Crowding-limited motility: cells move only into room, conservatively and positively.

The flux between face neighbours a → b is (D/dx)(n_a f_b − n_b f_a), f = 1 − N/K the room
(:mod:`spatialdtp.numerics.transport`). Its continuum limit is the volume-filling equation

    ∂n/∂t = ∂x [ D ( (1 − N/K) ∂x n + n ∂x N / K ) ],      N = n + o (o: the other cells)

checked here against closed forms where it is linear and against scipy where it is not.
"""
import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.special import erfc

from spatialdtp.numerics.transport import move_cells

K = 1.0          # capacity, cells/voxel


def move(n, obstacle, D, t, dx, capacity=K):
    """n (moving, S) next to a static obstacle (CAFs, D = 0) on a 1D row of voxels."""
    zero = np.zeros_like(n)
    out = move_cells([n, zero, zero, obstacle, zero], (D, 0.0, 0.0, 0.0, 0.0), zero, 0.0,
                     t, dx, capacity, np)
    return out[0]


def test_one_cell_type_alone_diffuses_linearly_even_at_capacity():
    """With no other cells N = n, and (1 − n/K) ∂x n + n ∂x n/K = ∂x n: the heat equation.
    A full half-space (n = K for x < 0) spreads as n = K/2 erfc(x/(2√(Dt))), and never above
    K. Discretely the flux is D(n_a − n_b)/dx exactly, so the error is the scheme's
    O(dx²): with dx = 2 µm against √(Dt) = 40 µm, well under 1 % of K."""
    D, t, dx = 1.0, 1600.0, 2.0
    x = (np.arange(400) - 199.5) * dx                 # voxel centres, the step at x = 0
    n0 = np.where(x < 0, K, 0.0)[None, :]
    got = move(n0, np.zeros_like(n0), D, t, dx)[0]
    exact = K / 2 * erfc(x / (2 * math.sqrt(D * t)))
    assert np.abs(got - exact).max() < 1e-2 * K
    assert got.max() <= K * (1 + 1e-12)


def test_cells_never_enter_a_voxel_that_is_full():
    """A voxel full of CAFs (room 0) gains no tumour cells, however long the cells press on
    it; the cells in front of it stay, conserved."""
    n = np.zeros((1, 30))
    n[0, :10] = 0.8
    cafs = np.zeros_like(n)
    cafs[0, 15:] = K                                   # a wall of full voxels from x = 15
    out = move(n, cafs, D=5.0, t=5000.0, dx=10.0)
    assert np.all(out[0, 15:] == 0.0)
    assert out.sum() == pytest.approx(n.sum(), rel=1e-12)
    assert np.all(out + cafs <= K * (1 + 1e-12))


def test_crowding_keeps_every_voxel_within_capacity():
    """Random mixtures below capacity stay below it (the bound of the module docstring)."""
    rng = np.random.default_rng(3)
    shape = (12, 13)
    total = rng.uniform(0, K, shape)
    share = rng.dirichlet(np.ones(5), shape)           # split each voxel's cells 5 ways
    cells = [total * share[..., j] for j in range(5)]
    q = rng.uniform(0, 2, shape)
    out = move_cells(cells, (3.0, 1.0, 0.5, 0.0, 2.0), q, 40.0, 300.0, 10.0, K, np)
    assert (sum(out) <= K * (1 + 1e-12)).all()
    for before, after in zip(cells, out):
        assert after.sum() == pytest.approx(before.sum(), rel=1e-12)
        assert after.min() >= 0


# --------------------------------------------------------------------------- scipy
L, D_CELL, T_END = 400.0, 1.0, 1500.0


def obstacle_at(x):
    """Static CAFs filling 0.6 of the room beyond x = 200 µm (smooth, 30 µm wide edge)."""
    return 0.6 * K * 0.5 * (1 + np.tanh((x - 200.0) / 30.0))


def initial_at(x):
    """Tumour cells at 0.35 K around x = 160 µm, pressed against the obstacle."""
    return 0.35 * K * np.exp(-((x - 160.0) / 40.0) ** 2)


def scipy_reference(nx=800):
    """The continuum equation by the method of lines on a fine grid, with a different
    (centred, face-averaged) discretisation than the module's hopping flux, integrated by
    LSODA to 1e-10."""
    h = L / nx
    x = (np.arange(nx) + 0.5) * h
    o = obstacle_at(x)

    def rhs(t, n):
        N = n + o
        nf, Nf = 0.5 * (n[1:] + n[:-1]), 0.5 * (N[1:] + N[:-1])
        J = -D_CELL * ((1 - Nf / K) * np.diff(n) / h + nf * np.diff(N) / (h * K))
        return -np.diff(np.concatenate([[0.0], J, [0.0]])) / h
    sol = solve_ivp(rhs, (0, T_END), initial_at(x), method="LSODA", rtol=1e-10, atol=1e-13)
    return x, sol.y[:, -1]


def coarse(values, factor):
    return values.reshape(-1, factor).mean(axis=1)


def test_volume_filling_matches_a_scipy_solve_at_second_order():
    """Against the continuum solution averaged onto each voxel, the error must fall as dx²
    (both space and the CFL-bound explicit time step are O(dx²)). Ignoring the obstacle
    (plain diffusion) leaves an O(0.1 K) error that does not converge; the obstacle holds
    the cells back from x > 200 µm."""
    x_ref, ref = scipy_reference()
    errors = []
    for nx in (40, 80, 160):
        dx = L / nx
        x = (np.arange(nx) + 0.5) * dx
        got = move(initial_at(x)[None, :], obstacle_at(x)[None, :], D_CELL, T_END, dx)[0]
        errors.append(np.abs(got - coarse(ref, 800 // nx)).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 1.8), (errors, orders)
    assert errors[-1] < 1e-3 * K, errors
    # the obstacle matters: plain diffusion of the same cells is far off
    dx = L / 160
    x = (np.arange(160) + 0.5) * dx
    free_space = move(initial_at(x)[None, :], np.zeros((1, 160)), D_CELL, T_END, dx)[0]
    assert np.abs(free_space - coarse(ref, 5)).max() > 20 * errors[-1]
