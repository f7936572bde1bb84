"""Desmoplastic hindrance D(x) = D/(1 + h F/capacity) through the whole model path.

A 1D slab of stroma (3 × 60 voxels of 10 µm, CAFs at half the capacity everywhere, no
tumour) takes HGF from a fixed face at x = 0 (value 1 ng/mL) and loses it by decay λ
(binding to heparan sulfate off: test_hgf_binding.py checks that part); the
steady profile is c(x) = cosh((L − x)/ℓ)/cosh(L/ℓ) with ℓ = sqrt(D_eff/λ) and
D_eff = D/(1 + h F/capacity). Cell-centred finite volumes reach it at O(dx²): relative
error ≈ (dx/ℓ)²/12·(L/ℓ) < 2e-3 here (ℓ ≈ 115 µm). Dropping ``/capacity`` (F/capacity =
0.5, F = 0.2 cells) would shrink ℓ by 27 %, and the profile at 300 µm by a factor 2.
"""
import math

import numpy as np
import pytest

from spatialdtp.api import load_config
from spatialdtp.run.simulation import Simulation

SHAPE, DX, D, H, DECAY = (3, 60), 10.0, 600.0, 1.0, 0.03


@pytest.mark.parametrize("backend", ["numpy64", "cpu64"])
def test_hindered_hgf_reaches_the_cosh_profile_of_the_hindered_diffusivity(tmp_path, backend):
    cfg0 = load_config(["grid.shape=[3,60]", f"grid.dx={DX}"])
    capacity = DX**3 / cfg0.cells.cell_volume
    F = np.full(SHAPE, 0.5 * capacity)
    np.save(tmp_path / "F.npy", F)
    cfg = load_config([
        "grid.shape=[3,60]", f"grid.dx={DX}", f"backend={backend}", "treatment=none",
        f"+tissue.files.F={tmp_path / 'F.npy'}", "tissue.vessels.kind=none",
        "tissue.stroma.kind=none", "tissue.tumour.density=0", "tissue.macrophages.density=0",
        "cells.fibroblast.growth=0", "cells.fibroblast.death=0",
        f"substrates.hgf.diffusion={D}", f"substrates.hgf.hindrance={H}",
        f"substrates.hgf.decay={DECAY}", "substrates.hgf.secretion.F=0",
        "substrates.hgf.secretion.M=0", "substrates.hgf.binding=null",
        "+substrates.hgf.boundary.x-=fixed",
        "substrates.hgf.boundary_value=1.0", "run.dt=10", "numerics.rtol=1e-10"])
    sim = Simulation(cfg)
    sim.run_until(days=1.0, progress=False)
    c = sim.field("hgf")[1]
    D_eff = D / (1.0 + H * 0.5)
    ell = math.sqrt(D_eff / DECAY)
    L = SHAPE[1] * DX
    x = (np.arange(SHAPE[1]) + 0.5) * DX
    exact = np.cosh((L - x) / ell) / np.cosh(L / ell)
    assert np.abs(c - exact).max() <= 2e-3
    assert np.ptp(sim.field("F")) <= 1e-12 * F.max()   # the stroma stayed uniform
