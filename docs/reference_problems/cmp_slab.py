"""1D slab with linear uptake: c = c0 cosh((L − x)/ℓ)/cosh(L/ℓ), ℓ = √(D/λ).

Finite volumes are second order: the error is about (dx/ℓ)²/8 = 5e-5 of c0."""
import h5py
import numpy as np
with h5py.File("ref/slab/run.h5") as f:
    c = f["fields/oxygen"][len(f["time"]) - 1][1]       # the middle row, last frame
x = (np.arange(100) + 0.5) * 2.0                        # voxel centres, µm
L, ell = 200.0, (1e5 / 10) ** 0.5                       # slab length, √(D/λ)
exact = 38 * np.cosh((L - x) / ell) / np.cosh(L / ell)
print("max |c - exact| / c0 =", abs(c - exact).max() / 38)
# the leading error of cell-centred finite volumes is about (dx/ℓ)²/8; allow twice that
assert abs(c - exact).max() / 38 < 2 * (2.0 / ell) ** 2 / 8, "slab: off its closed form"
