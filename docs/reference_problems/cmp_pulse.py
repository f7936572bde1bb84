"""Gaussian pulse in 2D: variance σ0² + 2Dt per axis, peak σ0²/σ²; second order in
dx (dx/σ0 = 0.2) and, with Crank–Nicolson, in Δt."""
import h5py
import numpy as np
with h5py.File("ref/pulse/run.h5") as f:
    n = len(f["time"])
    t, c = f["time"][n - 1], f["fields/chemokine"][n - 1]
D, s0, dx = 10.0, 20.0, 4.0
var = s0**2 + 2 * D * t                                 # σ² = σ0² + 2Dt
x = (np.arange(101) + 0.5) * dx - 202.0
r2 = x[:, None] ** 2 + x[None, :] ** 2
exact = s0**2 / var * np.exp(-r2 / (2 * var))          # 2D: the peak falls as σ0²/σ²
err = np.abs(c - exact).max() / exact.max()
print(f"t = {t:g} min, max |c - exact| / peak =", err)
m0, m2 = c.sum(), (c * r2).sum()
print("variance per axis", m2 / m0 / 2, "exact", var)
# second order in dx: (dx/σ0)²/24 = 1.7e-3 at the start, less as the pulse widens; the
# discrete Laplacian grows the second moment by exactly 2Dt (the sampled start is σ0² to
# 1e-6 at dx = σ0/5), so the variance must agree to 1e-4
assert err < (dx / s0) ** 2 / 24, "pulse: off its closed form"
assert abs(m2 / m0 / 2 - var) < 1e-4 * var, "pulse: variance is not σ0² + 2Dt"
