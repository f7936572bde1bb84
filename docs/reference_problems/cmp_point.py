"""Point source in 2D with decay: c = Q/(2πD) K0(r/ℓ), Q = s dx² (the voxel's source),
with the mirror images of the four no-flux faces. Beyond three voxels the error is
the point source's discretisation, O((dx/r)²): under 1 %."""
import h5py
import numpy as np
from scipy.special import k0
with h5py.File("ref/point/run.h5") as f:
    c = f["fields/chemokine"][len(f["time"]) - 1]
dx, D, lam, s, W = 4.0, 1000.0, 0.1, 1.0, 402.0       # W: source to each no-flux face, µm
ell = (D / lam) ** 0.5
y, x = np.indices(c.shape)
Y, X = dx * (y - 100), dx * (x - 100)                   # µm from the source voxel
exact = sum(k0(np.hypot(Y - 2 * W * j, X - 2 * W * i) / ell)   # the source and its mirror
            for i in (-1, 0, 1) for j in (-1, 0, 1))           # images in the four faces
exact *= s * dx**2 / (2 * np.pi * D)
r = np.hypot(Y, X)
# near: the lattice Green's function's 1/(24π r²) correction, (dx/r)²/(12 K0(r/ℓ)) = 0.4 %
# at r = 3dx; far: only the (dx/ℓ)² = 0.16 % truncation is left. Bounds 1 % and 0.1 %.
for lo, hi, bound in ((3 * dx, 2 * ell, 1e-2), (2 * ell, 3 * ell, 1e-3)):
    ring = (r >= lo) & (r <= hi)
    err = np.abs(c[ring] / exact[ring] - 1).max()
    print(f"{lo:g} <= r <= {hi:g} µm: max relative error", err)
    assert err < bound, "point source: off its closed form"
