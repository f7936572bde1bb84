"""The arrays the reference problems read (run in the directory of the runs)."""
import numpy as np
np.save("zeros_3x100.npy", np.zeros((3, 100)))
np.save("zeros_201.npy", np.zeros((201, 201)))
src = np.zeros((201, 201)); src[100, 100] = 1.0; np.save("source.npy", src)
x = (np.arange(101) + 0.5) * 4.0 - 202.0
r2 = x[:, None] ** 2 + x[None, :] ** 2
np.save("pulse.npy", np.exp(-r2 / (2 * 20.0**2))); np.save("zeros_101.npy", np.zeros((101, 101)))
