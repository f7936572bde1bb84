"""HGF bound to heparan sulfate: the effective transport of fast, linear binding
(:mod:`spatialdtp.model.substrate_coefficients`) through the implicit solver.

Free c and bound b = κ c (κ = B_T/K_D) obey (1 + κ) ∂c/∂t = D∇²c − (λ + κ λ_b) c + sources.
Every expected value below is derived from that equation by hand (the modified Bessel
function K0 of a point source, the exponential approach of a uniform source), never taken
from the module under test.
"""
import math

import numpy as np
import pytest
from scipy.special import k0

from spatialdtp.config import BindingConfig, SpatialDTPConfig, SubstrateConfig
from spatialdtp.model.boundary import Boundary
from spatialdtp.model.grid import Grid
from spatialdtp.model.substrate_coefficients import Substrate
from spatialdtp.numerics.implicit import ImplicitSolver

V_CELL = 2494.0
D, LAM, S = 600.0, 0.027, 1.4                  # µm²/min, 1/min, ng/mL/min (the HGF values)
SITES, KD, LAM_B = 750.0, 6.7, 2.7e-3
KAPPA = SITES / KD
NO_FLUX = Boundary((("no_flux", "no_flux"),) * 2)


def hgf(binding=True):
    return SubstrateConfig(diffusion=D, decay=LAM, secretion={"F": S},
                           binding=BindingConfig(SITES, KD, LAM_B) if binding else None)


def solve(cfg, F, dx, c0=None, dt=1e13, steps=1):
    """``steps`` backward-Euler steps of the substrate with CAFs F. One step of 1e13 min
    reaches the discrete steady state (the fixed point of backward Euler) to a relative
    1/(1 + dt Λ/(1 + κ)) < 1e-10."""
    grid = Grid(F.shape, dx)
    sub = Substrate("hgf", cfg, grid, dx**3 / V_CELL, V_CELL, np.zeros(F.shape), np)
    cells = {c: np.zeros(F.shape) for c in "SPRM"}
    cells["F"] = F
    Dx = sub.diffusivity(cells)
    a, b = sub.sink_and_source(np.zeros(F.shape), cells, 0.0)
    solver = ImplicitSolver(F.shape, dx, np, np.float64)
    c = np.zeros(F.shape) if c0 is None else c0
    for _ in range(steps):
        c, info = solver.step(c, D=Dx, a=a, b=b, dt=dt, boundary=NO_FLUX, rtol=1e-12,
                              max_iter=500)
        assert info.converged
    return c


def point_source_profile(dx, n):
    """Steady free HGF along a row from one CAF in the centre voxel of an n×n box."""
    F = np.zeros((n, n))
    F[n // 2, n // 2] = 1.0
    c = solve(hgf(), F, dx)
    return (np.arange(1, n - n // 2) * dx), c[n // 2, n // 2 + 1:]


def k0_with_images(r, ell, box):
    """The point source's steady solution in a no-flux box of side ``box`` centred on it:
    Q/(2πD) Σ K0(|x − x_img|/ℓ) over the mirror images at (i box, j box). Q/(2πD) is
    left out (the caller scales)."""
    total = np.zeros_like(r)
    for i in range(-3, 4):
        for j in range(-3, 4):
            total += k0(np.hypot(r - i * box, j * box) / ell)
    return total


def test_a_point_source_of_bound_hgf_falls_off_as_k0_over_tens_of_microns():
    """2D steady state: D∇²c − (λ + κλ_b) c + Q δ = 0 gives c = Q/(2πD) K0(r/ℓ) with
    ℓ = √(D/(λ + κλ_b)) = 42.7 µm (tens of µm, against √(D/λ) = 149 µm unbound). The
    retardation 1 + κ divides D and the source alike and cancels at steady state. One CAF
    in a voxel of a one-voxel-thick section secretes Q = s V_cell/dx per µm² of section
    (φ = V_cell/dx³ over dx²). The 5-point Laplacian's error is O(dx²/r²): under 1 % from
    r = 5 dx at dx = 2 µm, and second order between dx = 4 and 2 µm."""
    ell = math.sqrt(D / (LAM + KAPPA * LAM_B))
    assert 40.0 < ell < 45.0
    errors = {}
    for dx, n in ((4.0, 81), (2.0, 161)):
        r, got = point_source_profile(dx, n)
        Q = S * V_CELL / dx
        exact = Q / (2 * math.pi * D) * k0_with_images(r, ell, n * dx)
        errors[dx] = {rr: abs(got[int(round(rr / dx)) - 1] / exact[int(round(rr / dx)) - 1] - 1)
                      for rr in (20.0, 40.0, 80.0, 120.0)}
    assert max(errors[2.0].values()) < 1e-2, errors
    for rr in (20.0, 40.0, 80.0):
        assert errors[4.0][rr] / errors[2.0][rr] > 2.5, errors     # ≈ 4: second order


def test_binding_without_loss_of_bound_hgf_keeps_the_unbound_range():
    """λ_b = 0: steady state D∇²c − λ c + Q δ = 0, the same as without binding — binding
    alone only slows the approach (Vempati et al. 2011 for VEGF)."""
    F = np.zeros((81, 81))
    F[40, 40] = 1.0
    cfg = hgf()
    cfg.binding.bound_decay = 0.0
    np.testing.assert_allclose(solve(cfg, F, 4.0), solve(hgf(binding=False), F, 4.0),
                               rtol=1e-9, atol=1e-12)


def test_retardation_slows_the_approach_to_steady_state_by_one_plus_kappa():
    """Uniform CAFs in a no-flux box: c is uniform and obeys (1 + κ) dc/dt = φ s F − Λ c,
    Λ = λ + κ λ_b, so c(t) = (φ s F/Λ)(1 − e^{−Λ t/(1 + κ)}): a time constant of
    (1 + κ)/Λ = 343 min instead of 1/λ = 37 min. Backward Euler with dt = 2 min over 300
    min is within its first-order error, Λ dt/(2(1 + κ)) ≈ 0.3 % of the change; the
    steady level does not depend on κ."""
    dx, F = 20.0, np.full((6, 6), 0.5)
    phi = V_CELL / dx**3
    lam_total = LAM + KAPPA * LAM_B
    tau = (1 + KAPPA) / lam_total
    assert tau == pytest.approx(343.0, rel=1e-2)
    c = solve(hgf(), F, dx, dt=2.0, steps=150)
    exact = phi * S * 0.5 / lam_total * (1 - math.exp(-300.0 / tau))
    np.testing.assert_allclose(c, exact, rtol=5e-3)
    steady = solve(hgf(), F, dx)
    np.testing.assert_allclose(steady, phi * S * 0.5 / lam_total, rtol=1e-9)


def test_default_hgf_range_and_retardation_by_hand():
    sub = Substrate("hgf", SpatialDTPConfig().substrates["hgf"], Grid((4, 4), 20.0),
                    8000.0 / V_CELL, V_CELL, np.zeros((4, 4)), np)
    b = SpatialDTPConfig().substrates["hgf"].binding
    kappa = b.sites / b.kd
    assert sub.retardation == pytest.approx(1 + kappa)
    assert sub.range == pytest.approx(math.sqrt(600.0 / (0.027 + kappa * b.bound_decay)))
    assert 20.0 < sub.range < 60.0                   # "tens of µm"
    oxygen = Substrate("oxygen", SpatialDTPConfig().substrates["oxygen"], Grid((4, 4), 20.0),
                       8000.0 / V_CELL, V_CELL, np.zeros((4, 4)), np)
    assert oxygen.retardation == 1.0 and oxygen.decay == 0.1    # unbound: unchanged
