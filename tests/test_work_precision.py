"""The work–precision benchmark's pieces (benchmarks/work_precision.py): the Thomas
algorithm against SciPy's banded solver, the slab's series solution against its own
equation, and backward Euler's first order in Δt seen through every BE method of the
benchmark (the spatial floor of the shared discretisation, ≈ 6e-5 at dx = 10 µm, is under
2 % of the errors compared, so their ratio at Δt 3 → 1 min is 3 × (1 ± O(Δt/τ)), τ ≈ 13
min the slowest mode's time: between 2.5 and 3.5)."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import work_precision as wp  # noqa: E402


def test_thomas_solves_tridiagonal_systems_like_scipy():
    from scipy.linalg import solve_banded

    rng = np.random.default_rng(3)
    n = 40
    lower, upper = -rng.uniform(0, 1, n), -rng.uniform(0, 1, n)
    diag = 2.5 + rng.uniform(0, 1, n)
    rhs = rng.standard_normal((3, n))
    got = wp.thomas(lower, diag, upper, rhs)
    ab = np.zeros((3, n))
    ab[0, 1:], ab[1], ab[2, :-1] = upper[:-1], diag, lower[1:]
    for row in range(3):
        np.testing.assert_allclose(got[row], solve_banded((1, 1), ab, rhs[row]), rtol=1e-12)


def test_the_series_solution_solves_the_slab():
    p = wp.SLAB
    L, D, k, c0 = p["L"], p["D"], p["k"], p["c0"]
    x = np.linspace(50.0, 950.0, 19)
    lam = math.sqrt(D / k)
    steady = c0 * np.cosh((L - x) / lam) / math.cosh(L / lam)
    np.testing.assert_allclose(wp.slab_exact(x, 1e6, L, D, k, c0), steady, rtol=1e-12)
    # c(x, 0) = 0: after 0.01 min the front has gone √(Dt) = 10 µm, so c(x ≥ 500 µm) ≈
    # erfc(500/20) ≈ 1e-273 (the series at t = 0 itself converges only as 1/modes)
    assert np.max(np.abs(wp.slab_exact(x[x >= 500], 0.01, L, D, k, c0))) < 1e-9
    # ∂c/∂t = D c'' − k c at t = 5 min, by central differences (h = 1 µm, δt = 1e-3 min)
    h, dt, t = 1.0, 1e-3, 5.0
    c = lambda xx, tt: wp.slab_exact(np.asarray(xx, float), tt, L, D, k, c0)  # noqa: E731
    dcdt = (c(x, t + dt) - c(x, t - dt)) / (2 * dt)
    lap = (c(x + h, t) - 2 * c(x, t) + c(x - h, t)) / h**2
    np.testing.assert_allclose(dcdt, D * lap - k * c(x, t), atol=1e-5)


@pytest.mark.parametrize("method", ["LOD/Thomas", "spatialdtp multigrid", "spatialdtp pcg",
                                    "PyAMG"])
def test_backward_euler_methods_are_first_order_in_dt(method):
    if method == "PyAMG":
        pytest.importorskip("pyamg")
    res = wp.run(quick=True, log=lambda *_: None, problems=("slab",))
    rows = {r["dt_min"]: r["error"] for r in res["rows"]
            if r["problem"] == "slab" and r["method"] == method
            and r["label"].startswith(("BE", "BioFVM"))}
    assert set(rows) == {3.0, 1.0}
    assert 2.5 <= rows[3.0] / rows[1.0] <= 3.5, rows
