"""Cell motility and TAM chemotaxis: conservative, positive, and diffusive at the right rate.

Sparse cells (capacity ≫ density, here ``math.inf``: every voxel all room) move by plain
diffusion and upwind drift; crowding is tested in ``test_transport_crowding.py``."""
import math

import numpy as np
import pytest

from spatialdtp.numerics.transport import move_cells, substeps

DX = 10.0


def blob(shape, sigma_vox):
    grids = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
    return np.exp(-sum(g**2 for g in grids) / (2 * sigma_vox**2))


def variance_along(u, axis):
    x = (np.arange(u.shape[axis]) - (u.shape[axis] - 1) / 2) * DX
    w = u.sum(axis=tuple(a for a in range(u.ndim) if a != axis))
    return float((w * x**2).sum() / w.sum())


def test_random_motility_spreads_variance_by_2Dt():
    D, t = 2.0, 600.0
    u0 = blob((81, 81), 4.0)
    zero = np.zeros_like(u0)
    out = move_cells([u0, zero, zero, zero, zero], (D, 0, 0, 0, 0), zero, 0.0, t, DX, math.inf, np)
    gained = variance_along(out[0], 1) - variance_along(u0, 1)
    assert gained == pytest.approx(2 * D * t, rel=0.02)


def test_motility_conserves_cells_in_a_closed_tissue():
    rng = np.random.default_rng(0)
    cells = [rng.uniform(0, 1, (20, 17, 9)) for _ in range(5)]
    q = rng.uniform(0, 5, (20, 17, 9))
    out = move_cells(cells, (1.0, 0.5, 0.5, 0.0, 3.0), q, 80.0, 240.0, DX, math.inf, np)
    for before, after in zip(cells, out):
        assert after.sum() == pytest.approx(before.sum(), rel=1e-12)
        assert after.min() >= 0


def test_macrophages_climb_the_chemokine_gradient():
    ny, nx = 5, 60
    q = np.tile(np.linspace(0, 6, nx), (ny, 1))          # chemokine rises with x
    M = np.zeros((ny, nx))
    M[:, 10] = 1.0
    zero = np.zeros_like(M)
    out = move_cells([zero, zero, zero, zero, M], (0, 0, 0, 0, 0.0), q, 50.0, 300.0, DX, math.inf, np)
    x = np.arange(nx) * DX
    shift = (out[4].sum(0) * x).sum() / out[4].sum() - 10 * DX
    v = 50.0 * (6 / ((nx - 1) * DX))                      # χ ∂q/∂x, µm/min
    assert shift == pytest.approx(v * 300.0, rel=0.02)


def test_substeps_respect_the_explicit_stability_limit():
    assert substeps(0.0, 0.0, 10.0, DX, 2) == 1
    m = substeps(100.0, 0.0, 10.0, DX, 3)
    assert 10.0 / m * 6 * 100.0 / DX**2 <= 0.9


def test_drift_out_of_a_chemokine_pit_neither_goes_negative_nor_creates_cells():
    """A voxel at a sharp minimum of q loses cells through all 2d faces at once."""
    q = np.ones((9, 9))
    q[4, 4] = 0.0                                   # a one-voxel pit
    M = np.zeros((9, 9))
    M[4, 4] = 1.0
    zero = np.zeros_like(M)
    chi = 25.0 * DX                                 # |v| = χ Δq/dx = 25 µm/min
    for tau in np.linspace(1.0, 10.0, 37):          # odd and even numbers of sub-steps
        out = move_cells([zero, zero, zero, zero, M], (0, 0, 0, 0, 0.0), q, chi, tau, DX, math.inf, np)
        assert out[4].sum() == pytest.approx(1.0, rel=1e-12), tau
        assert out[4].min() >= 0
