"""Work–precision: error against wall time, spatialdtp's solvers beside its peers' methods.

The problem (closed form): a 1D slab with linear uptake, the transient from c = 0,

    ∂c/∂t = D ∂²c/∂x² − k c   on 0 < x < L,   c(0, t) = c₀,  ∂c/∂x(L, t) = 0,  c(x, 0) = 0

    c(x, t) = c_ss(x) − Σₙ Aₙ sin(μₙ x) exp(−(D μₙ² + k) t),
    c_ss(x) = c₀ cosh((L − x)/λ)/cosh(L/λ),  λ = √(D/k),  μₙ = (2n − 1)π/(2L),
    Aₙ = (2/L) ∫₀ᴸ c_ss sin(μₙ x) dx = (2/L) c₀ μₙ/(μₙ² + λ⁻²)

(integrating by parts twice with c_ss(0) = c₀, c_ss'(L) = 0, c_ss'' = c_ss/λ²). Every
method works on the same grid: cell centres xᵢ = (i + ½) dx, the fixed value on the face
x = 0 (a half-cell flux 2D(c₀ − c₀')/dx), no flux at L; spatialdtp's grids are 2D or 3D,
so the slab is a (3, n) grid uniform along its first axis. The error is the largest
|c − c_exact| over the cell centres at t_end, relative to c₀; it contains the spatial error
of the shared discretisation (O(dx²), the floor every method reaches) and each method's
time and solver error. Wall time: the whole integration, after one warm-up run (caches,
compilation).

Methods (one row per method, Δt and tolerance):

* ``spatialdtp multigrid`` / ``spatialdtp pcg``: the substrate solvers of
  :mod:`spatialdtp.numerics.implicit` as the run uses them (backward Euler started from the
  predictor; ``rtol`` None is the derived tolerance of the README; TR-BDF2 with PCG);
* ``LOD/Thomas``: the locally one-dimensional scheme of BioFVM/PhysiCell (Ghaffarizadeh,
  Friedman & Macklin, Bioinformatics 32:1256, 2016): the uptake step solved implicitly
  pointwise, ``c ← c/(1 + Δt k)``, then one backward-Euler diffusion solve per axis, each a
  set of tridiagonal systems solved by the Thomas algorithm (our implementation, from
  the published algorithm; the fixed face as above rather than BioFVM's Dirichlet voxels,
  so that the discretisation is the same);
* ``PyAMG``: the same backward-Euler matrix assembled with SciPy, solved each step by
  PyAMG's smoothed-aggregation AMG to ``tol`` (optional: ``pip install pyamg``);
* ``py-pde``: the same PDE and boundary conditions on py-pde's Cartesian grid (the same
  cell-centred discretisation) with its implicit solver at fixed Δt (backward Euler by
  fixed-point iteration: it does not converge at these Δt, DΔt/dx² ≥ 10, and the run
  records that) and with its SciPy BDF solver (adaptive Δt) at several tolerances
  (optional: ``pip install py-pde``).

    python -m benchmarks.work_precision [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

#: the slab (µm, min, µM): λ = √(D/k) ≈ 447 µm, slowest mode rate D μ₁² + k ≈ 0.075/min
SLAB = {"L": 1000.0, "n": 100, "D": 1.0e4, "k": 0.05, "c0": 1.0, "t_end": 30.0}
DTS = (10.0, 3.0, 1.0, 0.3, 0.1)
QUICK_DTS = (3.0, 1.0)
MODES = 400                      # series terms: exp(−D μ² t_end) of the last is < 1e-300


# --------------------------------------------------------------------------- the closed form
def slab_exact(x, t, L, D, k, c0, modes=MODES):
    lam = math.sqrt(D / k)
    ss = c0 * np.cosh((L - x) / lam) / math.cosh(L / lam)
    n = np.arange(1, modes + 1)
    mu = (2 * n - 1) * math.pi / (2 * L)
    A = (2.0 / L) * c0 * mu / (mu**2 + 1.0 / lam**2)
    decay = np.exp(-(D * mu**2 + k) * t)
    return ss - (A * decay) @ np.sin(np.outer(mu, x))


def centres(p=SLAB):
    dx = p["L"] / p["n"]
    return (np.arange(p["n"]) + 0.5) * dx, dx


# --------------------------------------------------------------------------- Thomas / LOD
def thomas(lower, diag, upper, rhs):
    """Solve tridiagonal systems along the last axis (the Thomas algorithm: forward
    elimination, back substitution); ``lower[..., 0]`` and ``upper[..., -1]`` are unused.
    Stable without pivoting for the diagonally dominant matrices of implicit diffusion."""
    n = rhs.shape[-1]
    c = np.empty_like(rhs)
    d = np.empty_like(rhs)
    c[..., 0] = upper[..., 0] / diag[..., 0]
    d[..., 0] = rhs[..., 0] / diag[..., 0]
    for i in range(1, n):
        m = diag[..., i] - lower[..., i] * c[..., i - 1]
        c[..., i] = upper[..., i] / m if i < n - 1 else 0.0
        d[..., i] = (rhs[..., i] - lower[..., i] * d[..., i - 1]) / m
    x = np.empty_like(rhs)
    x[..., -1] = d[..., -1]
    for i in range(n - 2, -1, -1):
        x[..., i] = d[..., i] - c[..., i] * x[..., i + 1]
    return x


def lod_axis_system(n, r, fixed_low):
    """(lower, diag, upper, source factor) of one axis's backward-Euler diffusion
    ``(1 + Σ r) c_i − r c_{i±1} = c_i*`` with r = DΔt/dx²; a fixed low face adds 2r to the
    first diagonal and 2r·c₀ to its right-hand side (the half-cell distance)."""
    lower = np.full(n, -r)
    upper = np.full(n, -r)
    diag = np.full(n, 1.0 + 2 * r)
    diag[0] = 1.0 + r + (2 * r if fixed_low else 0.0)
    diag[-1] = 1.0 + r
    src = np.zeros(n)
    if fixed_low:
        src[0] = 2 * r
    return lower, diag, upper, src


def run_lod(p, dt):
    x, dx = centres(p)
    c = np.zeros((3, p["n"]))
    steps = int(round(p["t_end"] / dt))
    r = p["D"] * dt / dx**2
    lo, dg, up, src = lod_axis_system(p["n"], r, True)
    lo0, dg0, up0, _ = lod_axis_system(3, r, False)       # the uniform axis: no flux
    for _ in range(steps):
        c = c / (1.0 + dt * p["k"])                         # uptake, implicit, pointwise
        c = thomas(lo, dg, up, c + src * p["c0"])           # along x
        c = thomas(lo0, dg0, up0, c.T).T                    # along the uniform axis
    return c[1], steps


# --------------------------------------------------------------------------- spatialdtp
def _boundary(p):
    from spatialdtp.model.boundary import Boundary

    return Boundary((("no_flux", "no_flux"), ("fixed", "no_flux")), p["c0"])


def run_spatialdtp(p, dt, solver, rtol, scheme="backward_euler"):
    """The slab with spatialdtp's solver: the step the run takes (backward Euler from the
    predictor, or TR-BDF2), ``rtol`` None the derived tolerance."""
    from spatialdtp.numerics.implicit import ImplicitSolver
    from spatialdtp.numerics.implicit import batched_multigrid as bmg
    from spatialdtp.numerics.implicit.mg_solver import MultigridSolver
    from spatialdtp.run.substrate_step import TR_BDF2_GAMMA, tolerances

    x, dx = centres(p)
    shape = (3, p["n"])
    bc = _boundary(p)
    c = np.zeros(shape)
    steps = int(round(p["t_end"] / dt))
    warm, cold = tolerances(rtol, scheme)
    iterations = 0
    if solver == "multigrid":
        if scheme != "backward_euler":
            raise ValueError("the work–precision run uses multigrid with backward Euler")
        mg = MultigridSolver(shape, dx, 1, np, np.float64)
        mg.prepare(bmg.Batch(dt, dx, [bc.kinds], [bc.value], [p["D"]], [p["k"]], [0.0]))
        X = c[None].copy()
        for i in range(steps):
            info = mg.solve(X, X, 1.0, [cold if i == 0 else warm],
                            predictor=None if i == 0 else 1.0)[0]
            iterations += info.iterations
        return X[0][1], steps, iterations
    pcg = ImplicitSolver(shape, dx, np, np.float64)
    opts = dict(D=p["D"], a=p["k"], b=0.0, boundary=bc, max_iter=200)
    prev = None
    for i in range(steps):
        if scheme == "backward_euler":
            x0 = None if prev is None else 2 * c - prev
            new, info = pcg.step(c, dt=dt, theta=1.0, rtol=cold if i == 0 else warm, x0=x0,
                                 **opts)
        else:
            g = TR_BDF2_GAMMA
            stage, i1 = pcg.step(c, dt=g * dt, theta=0.5, rtol=cold, **opts)
            rhs = (stage - (1 - g) ** 2 * c) / (g * (2 - g))
            new, info = pcg.step(rhs, dt=(1 - g) / (2 - g) * dt, theta=1.0, rtol=cold,
                                 x0=stage, **opts)
            info.iterations += i1.iterations
        iterations += info.iterations
        prev, c = c, new
    return c[1], steps, iterations


# --------------------------------------------------------------------------- PyAMG
def _matrix(p, dt):
    """The backward-Euler matrix of the slab (1D along x: the uniform axis drops out) and
    the fixed face's source vector."""
    import scipy.sparse as sp

    _x, dx = centres(p)
    lo, dg, up, src = lod_axis_system(p["n"], p["D"] * dt / dx**2, True)
    A = sp.diags([lo[1:], dg + dt * p["k"], up[:-1]], [-1, 0, 1], format="csr")
    return A, src * p["c0"]


def run_pyamg(p, dt, tol):
    import pyamg

    A, src = _matrix(p, dt)
    ml = pyamg.smoothed_aggregation_solver(A)
    c = np.zeros(p["n"])
    steps = int(round(p["t_end"] / dt))
    for _ in range(steps):
        c = ml.solve(c + src, x0=c, tol=tol, accel="cg")
    return c, steps


# --------------------------------------------------------------------------- py-pde
def _pypde_problem(p):
    import pde

    grid = pde.CartesianGrid([[0.0, p["L"]]], [p["n"]])
    field = pde.ScalarField(grid, 0.0)
    eq = pde.PDE({"c": f"{p['D']} * laplace(c) - {p['k']} * c"},
                 bc=[{"value": p["c0"]}, {"derivative": 0.0}])
    return field, eq


def run_pypde(p, dt):
    """py-pde's ImplicitSolver: backward Euler, its implicit equation solved by fixed-point
    iteration (which does not converge once DΔt/dx² is well above 1: recorded as such)."""
    import pde

    field, eq = _pypde_problem(p)
    controller = pde.Controller(pde.ImplicitSolver(eq, backend="numpy"),
                                t_range=p["t_end"], tracker=None)
    out = controller.run(field, dt=dt)
    return np.asarray(out.data), int(round(p["t_end"] / dt))


def run_pypde_bdf(p, rtol):
    """py-pde's ScipySolver with SciPy's BDF (adaptive order and step) to ``rtol``."""
    import pde

    field, eq = _pypde_problem(p)
    solver = pde.ScipySolver(eq, backend="numpy", method="BDF", rtol=rtol, atol=rtol * 1e-3)
    out = pde.Controller(solver, t_range=p["t_end"], tracker=None).run(field)
    return np.asarray(out.data), int(solver.info.get("steps", 0) or 0)


# --------------------------------------------------------------------------- the run
def _timed(fn, *args):
    fn(*args)                                        # warm-up: caches, compilation
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def methods(quick=False):
    """(name, label, callable(p, dt) -> (c, steps[, iterations]), optional import)."""
    rtols = (None,) if quick else (None, 1e-3, 1e-8)
    out = []
    for rtol in rtols:
        tag = "derived" if rtol is None else f"{rtol:g}"
        out.append(("spatialdtp multigrid", f"BE, rtol {tag}",
                    lambda p, dt, r=rtol: run_spatialdtp(p, dt, "multigrid", r), None))
        out.append(("spatialdtp pcg", f"BE, rtol {tag}",
                    lambda p, dt, r=rtol: run_spatialdtp(p, dt, "pcg", r), None))
    out.append(("spatialdtp pcg", "TR-BDF2, rtol derived",
                lambda p, dt: run_spatialdtp(p, dt, "pcg", None, "tr_bdf2"), None))
    out.append(("LOD/Thomas", "BioFVM's scheme", run_lod, None))
    out.append(("PyAMG", "BE, SA-AMG + CG, tol 1e-8", lambda p, dt: run_pyamg(p, dt, 1e-8),
                "pyamg"))
    out.append(("py-pde", "implicit (BE, fixed point)", run_pypde, "pde"))
    return out


#: adaptive methods: (name, label, callable(p, rtol), module); one row per tolerance
ADAPTIVE_RTOLS = (1e-2, 1e-4, 1e-6)


def adaptive_methods():
    return [("py-pde", "ScipySolver BDF (adaptive Δt)", run_pypde_bdf, "pde")]


def run(quick=False, log=print):
    import importlib.util

    p = dict(SLAB)
    x, _dx = centres(p)
    exact = slab_exact(x, p["t_end"], p["L"], p["D"], p["k"], p["c0"])
    rows, skipped = [], []
    for name, label, fn, module in methods(quick):
        if module is not None and importlib.util.find_spec(module) is None:
            skipped.append({"method": name, "reason": f"{module} is not installed "
                                                      "(pip install spatialdtp[peers])"})
            continue
        for dt in (QUICK_DTS if quick else DTS):
            try:
                wall, out = _timed(fn, p, dt)
            except Exception as err:  # noqa: BLE001  (a peer's API that changed: say so)
                skipped.append({"method": name, "label": label, "dt": dt,
                                "reason": f"{type(err).__name__}: {err}"})
                break
            c = out[0]
            err = float(np.max(np.abs(c - exact))) / p["c0"]
            row = {"method": name, "label": label, "dt_min": dt, "steps": out[1],
                   "wall_s": wall, "error": err}
            if len(out) > 2:
                row["iterations"] = out[2]
            rows.append(row)
            log(f"    {name} ({label}) dt={dt:g}: error {err:.3g}, {wall * 1e3:.1f} ms")
    for name, label, fn, module in adaptive_methods():
        if importlib.util.find_spec(module) is None:
            skipped.append({"method": name, "reason": f"{module} is not installed "
                                                      "(pip install spatialdtp[peers])"})
            continue
        for rtol in (ADAPTIVE_RTOLS[:1] if quick else ADAPTIVE_RTOLS):
            try:
                wall, out = _timed(fn, p, rtol)
            except Exception as err:  # noqa: BLE001
                skipped.append({"method": name, "label": label, "rtol": rtol,
                                "reason": f"{type(err).__name__}: {err}"})
                break
            err = float(np.max(np.abs(out[0] - exact))) / p["c0"]
            rows.append({"method": name, "label": label, "rtol": rtol, "dt_min": None,
                         "steps": out[1], "wall_s": wall, "error": err})
            log(f"    {name} ({label}) rtol={rtol:g}: error {err:.3g}, {wall * 1e3:.1f} ms")
    return {"problem": {"name": "1D slab with linear uptake (transient)", **p},
            "rows": rows, "skipped": skipped,
            "not_run": ["Krogh cylinder", "spheroid with an anoxic core"]}


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    keys = sorted({(r["method"], r["label"]) for r in result["rows"]})
    for method, label in keys:
        pts = sorted((r["wall_s"], r["error"], r["dt_min"]) for r in result["rows"]
                     if (r["method"], r["label"]) == (method, label))
        ax.loglog([q[0] for q in pts], [q[1] for q in pts], "o-", label=f"{method}: {label}")
    ax.set_xlabel("wall time of the integration (s)")
    ax.set_ylabel("max |c − c_exact| / c₀ at t_end")
    ax.set_title("Work–precision: 1D slab with linear uptake, Δt ∈ "
                 + ", ".join(f"{d:g}" for d in sorted({r['dt_min'] for r in result['rows']
                                                       if r['dt_min'] is not None}))
                 + " min", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.work_precision")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default benchmarks/results/<device>/)")
    args = ap.parse_args(argv)
    from . import machine

    out = args.out
    if out is None:
        slug = machine.describe(None).get("device_slug", "unknown")
        out = Path(__file__).resolve().parent / "results" / slug
    out.mkdir(parents=True, exist_ok=True)
    result = run(args.quick)
    result["machine"] = machine.describe(None)
    (out / "work_precision.json").write_text(json.dumps(result, indent=1, default=str))
    plot(result, out / "work_precision.png")
    print(f"wrote {out / 'work_precision.json'} and {out / 'work_precision.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
