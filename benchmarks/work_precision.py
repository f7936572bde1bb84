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
        pcg = ImplicitSolver(shape, dx, np, np.float64)
        X = c[None].copy()
        fallbacks = 0
        for i in range(steps):
            start, rtol_i = X[0].copy(), cold if i == 0 else warm

            def fallback(s, reason, start=start, rtol_i=rtol_i):
                nonlocal fallbacks          # as the run does (see run_spatialdtp_radial)
                fallbacks += 1
                X[s], info = pcg.step(start, D=p["D"], a=p["k"], b=0.0, dt=dt, theta=1.0,
                                      boundary=bc, rtol=rtol_i, max_iter=200)
                return info
            info = mg.solve(X, X, 1.0, [rtol_i], predictor=None if i == 0 else 1.0,
                            fallback=fallback)[0]
            iterations += info.iterations
        return X[0][1], steps, iterations, fallbacks
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


# --------------------------------------------------------------------------- radial problems
#: Krogh cylinder (µm, min; c relative to the vessel's value c_v). D is oxygen's order
#: (2e3 µm²/s); M makes c(R_t) = c_v − ``drop`` (see :func:`krogh_uptake`).
KROGH = {"Rc": 20.0, "Rt": 100.0, "H": 120.0, "n": 60, "D": 1.0e5, "cv": 1.0, "drop": 0.8,
         "t_end": 3.0}
#: spheroid (µm, min; c relative to the medium's c_R): M = 12 D c_R/R² puts the anoxic
#: front at r_n = R/2 (see :func:`anoxic_radius`); Km ≪ c_R makes Michaelis–Menten uptake
#: zero-order wherever c ≫ Km
SPHEROID = {"R": 200.0, "H": 220.0, "n": 44, "D": 1.0e5, "cR": 1.0, "M": 30.0, "Km": 1.0e-4,
            "t_end": 3.0}
#: Δt (min) of the radial problems: from c = c_v (c_R) everywhere to the steady state (the
#: slowest mode's time R²/(j² D) is ≲ 0.1 min), the error at t_end against the steady
#: closed form; the 3D spheroid (85 k voxels) stops at 0.1 min to keep the run short
RADIAL_DTS = {"krogh": (3.0, 1.0, 0.3, 0.1, 0.03), "spheroid": (3.0, 1.0, 0.3, 0.1)}
#: per method: LOD's pointwise uptake step is accurate only for Δt M ≪ c (it can remove at
#: most what a voxel holds), so it gets shorter steps too (it is cheap); PyAMG rebuilds its
#: hierarchy every step of the spheroid (≈ 1 s each), so it stops at 0.3 min there
RADIAL_DTS_OF = {("krogh", "LOD/Thomas"): (3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003),
                 ("spheroid", "LOD/Thomas"): (3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003),
                 ("spheroid", "PyAMG"): (3.0, 1.0, 0.3)}
QUICK_RADIAL_DTS = (1.0, 0.3)


def krogh_uptake(Rc, Rt, D, drop, **_):
    """The zero-order uptake M (c_v/min) for which c(R_t) = c_v − drop:
    c(R_t) − c_v = (M R_t²/(4D)) [(1 − ρ²) − 2 ln(1/ρ)], ρ = R_c/R_t (:func:`krogh_exact`)."""
    rho = Rc / Rt
    return drop * 4.0 * D / (Rt**2 * (2.0 * math.log(1.0 / rho) - (1.0 - rho**2)))


def krogh_exact(r, Rc, Rt, D, M, cv):
    """Krogh's cylinder: the steady oxygen level around one vessel of radius R_c held at c_v,
    in tissue consuming M (zero order) out to R_t, with no flux through r = R_t.

    In the plane perpendicular to the vessel, (1/r)(r c')' = M/D on R_c < r < R_t. Once:
    r c' = M r²/(2D) + A, and c'(R_t) = 0 gives A = −M R_t²/(2D); twice, with c(R_c) = c_v:

        c(r) = c_v + (M/(4D)) (r² − R_c²) − (M R_t²/(2D)) ln(r/R_c)

    (the issue's form has the opposite signs: that is a source, not uptake). Inside the
    vessel c = c_v. Beyond R_t (the corners of the square grid): c ≡ c(R_t) — a constant
    solves ∇²c = 0 there, meets the Krogh profile with the same value and (zero) slope at
    R_t, and has no flux through the grid's faces, so on the whole grid (uptake only on
    R_c ≤ r < R_t, no flux on the faces) this is *the* steady state: Krogh's no-flux
    circle needs no boundary of its own."""
    rr = np.clip(np.asarray(r, float), Rc, Rt)
    return cv + (M / (4 * D)) * (rr**2 - Rc**2) - (M * Rt**2 / (2 * D)) * np.log(rr / Rc)


def anoxic_radius(R, D, M, cR):
    """The radius r_n of the anoxic core of a sphere of radius R at c_R on its surface,
    consuming M (zero order) where c > 0; 0 if the core is oxygenated throughout.

    (1/r²)(r² c')' = M/D on r_n < r < R with c(r_n) = c'(r_n) = 0 (the consumption stops
    where c reaches 0, and the flux is continuous there). Once: r² c' = M r³/(3D) + A,
    c'(r_n) = 0 gives A = −M r_n³/(3D); twice, c(r_n) = 0:

        c(r) = (M/(6D)) (r² + 2 r_n³/r − 3 r_n²) = (M/(6D)) (r − r_n)² (r + 2 r_n)/r

    and c(R) = c_R is the equation of r_n, f(r_n) = (M/(6D))(R − r_n)²(R + 2r_n)/R − c_R,
    decreasing on [0, R] from M R²/(6D) − c_R to −c_R: a core exists iff c_R < M R²/(6D)
    (otherwise c = c_R − (M/(6D))(R² − r²) > 0 everywhere), and brentq finds its root."""
    from scipy.optimize import brentq

    if cR >= M * R**2 / (6 * D):
        return 0.0
    return brentq(lambda rn: M * (R - rn) ** 2 * (R + 2 * rn) / (6 * D * R) - cR, 0.0, R,
                  xtol=1e-12 * R)


def spheroid_exact(r, R, D, M, cR):
    """The steady level in the spheroid (:func:`anoxic_radius`); c_R outside it."""
    r = np.asarray(r, float)
    rn = anoxic_radius(R, D, M, cR)
    if rn == 0.0:
        c = cR - (M / (6 * D)) * (R**2 - r**2)
    else:
        rr = np.maximum(r, rn)
        c = (M / (6 * D)) * (rr**2 + 2 * rn**3 / rr - 3 * rn**2)
    return np.where(r >= R, cR, c)


def radii(ndim, n, H):
    """Distance of each cell centre from the corner: the grid is one quadrant (octant) of
    the problem, its low faces the mirror planes through the axis (centre), where no flux
    is exactly the symmetry."""
    dx = H / n
    x = (np.arange(n) + 0.5) * dx
    grids = np.meshgrid(*([x] * ndim), indexing="ij")
    return np.sqrt(sum(g**2 for g in grids)), dx


class Radial:
    """One of the radial problems on the grid, as the simulator holds it.

    Fixed-value voxels (the vessel of Krogh's cylinder, the medium around the spheroid) are
    the voxels whose centre lies inside (outside) the circle: the run's fixed-value map,
    imposed as it imposes one (:meth:`Substrate._hold`: a penalty rate P in a(x), P·value
    in b(x), P = max(2·ndim·D/dx² + uptake, 1)/(u/2), and the values put back after each
    solve). The circle is staircased, so its surface moves by up to about dx/√2 with the
    grid: first order in dx at best, whatever the scheme. Uptake:

    * Krogh: zero order, M where R_c ≤ r < R_t (cell centres), as the source b = −M of the
      step's ∂c/∂t = ∇·(D∇c) − a c + b (the solver takes any b; c stays ≥ c_v − drop > 0
      here, so the consumption never needs to stop);
    * spheroid: the simulator's Michaelis–Menten law, V c/(Km + c) with V = M, linearised
      at the step's start c* as the run does (``substrate_coefficients``: a = V/(Km + c*)),
      Km = 1e-4 c_R. It is not the closed form's "M where c > 0, 0 at c = 0" exactly:
      where c ≫ Km the uptake is M(1 − Km/c), and at the front c falls to 0 over
      √(D Km/M) ≈ 0.6 µm instead of at a point; both are O(Km/c_R) of the field, below
      the staircase error of any grid here.
    """

    def __init__(self, name, p, n=None):
        self.name, self.p = name, dict(p)
        n = n or p["n"]
        self.n = n
        if name == "krogh":
            r, dx = radii(2, n, p["H"])
            self.M = krogh_uptake(**p)
            self.fixed = r < p["Rc"]
            self.value = np.where(self.fixed, p["cv"], 0.0)
            self.source = np.where(~self.fixed & (r < p["Rt"]), -self.M, 0.0)
            self.mm = None
            self.c0 = np.full(r.shape, p["cv"])
            self.exact = krogh_exact(r, p["Rc"], p["Rt"], p["D"], self.M, p["cv"])
            self.scale = p["cv"]
            rates = 4 * p["D"] / dx**2
        else:
            r, dx = radii(3, n, p["H"])
            self.M = p["M"]
            self.fixed = r >= p["R"]
            self.value = np.where(self.fixed, p["cR"], 0.0)
            self.source = np.zeros(r.shape)
            self.mm = ~self.fixed                       # where the cells take c up
            self.c0 = np.full(r.shape, p["cR"])
            self.exact = spheroid_exact(r, p["R"], p["D"], self.M, p["cR"])
            self.scale = p["cR"]
            rates = 6 * p["D"] / dx**2 + self.M / p["Km"]
        self.r, self.dx, self.D = r, dx, p["D"]
        self.shape = r.shape
        self.ndim = r.ndim
        self.P = max(rates, 1.0) / (float(np.finfo(np.float64).eps) / 2)
        self.hold_a = np.where(self.fixed, self.P, 0.0)
        self.hold_b = self.hold_a * self.value

    def uptake_rate(self, c):
        """The linearised uptake a(x) = V/(Km + c*) (1/min) at c* = ``c``, 0 elsewhere."""
        if self.mm is None:
            return np.zeros(self.shape)
        return np.where(self.mm, self.M / (self.p["Km"] + np.maximum(c, 0.0)), 0.0)

    def coefficients(self, c):
        """(a, b) of the implicit step linearised at ``c``, the fixed voxels' penalty in."""
        return self.uptake_rate(c) + self.hold_a, self.source + self.hold_b

    def put_back(self, c):
        c[self.fixed] = self.value[self.fixed]
        return c

    def error(self, c):
        return float(np.max(np.abs(c - self.exact))) / self.scale


def run_spatialdtp_radial(q, dt, solver, rtol, t_end=None):
    """A radial problem with spatialdtp's solver from c = c_v (c_R) everywhere to t_end:
    backward Euler started from the predictor (the run's ``numerics.scheme`` default),
    the coefficients linearised at each step's start (``picard_iterations: 0``), the fixed
    voxels put back after each solve, as :class:`~spatialdtp.run.substrate_step.SubstrateStep`."""
    from spatialdtp.model.boundary import Boundary
    from spatialdtp.numerics.implicit import ImplicitSolver
    from spatialdtp.numerics.implicit import batched_multigrid as bmg
    from spatialdtp.numerics.implicit.mg_solver import MultigridSolver
    from spatialdtp.run.substrate_step import tolerances

    t_end = q.p["t_end"] if t_end is None else t_end
    bc = Boundary.uniform(q.ndim, "no_flux")
    steps = max(1, int(round(t_end / dt)))
    warm, cold = tolerances(rtol, "backward_euler")
    c = q.c0.copy()
    iterations = 0
    if solver == "multigrid":
        mg = MultigridSolver(q.shape, q.dx, 1, np, np.float64)
        pcg = ImplicitSolver(q.shape, q.dx, np, np.float64)
        X = c[None].copy()
        fallbacks = 0
        for i in range(steps):
            if i == 0 or q.mm is not None:              # a(x) follows c: once per step
                a, b = q.coefficients(X[0])
                mg.prepare(bmg.Batch(dt, q.dx, [bc.kinds], [0.0], [q.D], [a], [b],
                                     held=[q.fixed]))
            start, rtol_i = X[0].copy(), cold if i == 0 else warm

            def fallback(s, reason, start=start, a=a, b=b, rtol_i=rtol_i):
                # what the run does with a multigrid solve that diverges or stalls
                # (spatialdtp.run.substrate_step._PcgFallback): PCG from the step's start
                nonlocal fallbacks
                fallbacks += 1
                X[s], info = pcg.step(start, D=q.D, a=a, b=b, dt=dt, theta=1.0,
                                      boundary=bc, rtol=rtol_i, max_iter=200)
                return info
            info = mg.solve(X, X, 1.0, [rtol_i], predictor=None if i == 0 else 1.0,
                            fallback=fallback)[0]
            q.put_back(X[0])
            iterations += info.iterations
        return X[0], steps, iterations, fallbacks
    pcg = ImplicitSolver(q.shape, q.dx, np, np.float64)
    prev = None
    for i in range(steps):
        a, b = q.coefficients(c)
        x0 = None if prev is None else 2 * c - prev
        new, info = pcg.step(c, D=q.D, a=a, b=b, dt=dt, theta=1.0, boundary=bc,
                             rtol=cold if i == 0 else warm, x0=x0, max_iter=200)
        q.put_back(new)
        iterations += info.iterations
        prev, c = c, new
    return c, steps, iterations


def run_lod_radial(q, dt, t_end=None):
    """BioFVM's LOD step on a radial problem: the uptake pointwise (zero order integrated
    exactly, c ← max(c − Δt M, 0); Michaelis–Menten linearly implicit,
    c ← c/(1 + Δt V/(Km + c)), as BioFVM's uptake step), then one backward-Euler Thomas sweep per axis, the
    Dirichlet voxels set before each sweep and after the last (``apply_dirichlet_conditions``
    in BioFVM's ``diffusion_decay_solver__constant_coefficients_LOD_2D/3D``)."""
    t_end = q.p["t_end"] if t_end is None else t_end
    steps = max(1, int(round(t_end / dt)))
    r = q.D * dt / q.dx**2
    lo, dg, up, _ = lod_axis_system(q.n, r, False)
    c = q.c0.copy()
    for _ in range(steps):
        c = np.maximum(c + dt * q.source, 0.0) if q.mm is None else c
        if q.mm is not None:
            c = c / (1.0 + dt * q.uptake_rate(c))
        for axis in range(q.ndim):
            q.put_back(c)
            c = np.moveaxis(thomas(lo, dg, up, np.moveaxis(c, axis, -1)), -1, axis)
        q.put_back(c)
    return c, steps


def _radial_matrix(q, a, dt):
    """I + Δt (K + diag(a)) of the radial problem: K the cell-centred −∇·(D∇) with no flux
    on every face (a Kronecker sum of 1D Neumann Laplacians)."""
    import scipy.sparse as sp

    n = q.n
    t = sp.diags([-np.ones(n - 1), np.r_[1.0, 2 * np.ones(n - 2), 1.0], -np.ones(n - 1)],
                 [-1, 0, 1]) * (q.D / q.dx**2)
    eye = sp.identity(n)
    K = None
    for axis in range(q.ndim):
        term = None
        for k in range(q.ndim):
            f = t if k == axis else eye
            term = f if term is None else sp.kron(term, f)
        K = term if K is None else K + term
    return (sp.identity(n**q.ndim) + dt * (K + sp.diags(a.ravel()))).tocsr()


def run_pyamg_radial(q, dt, tol, t_end=None):
    """The backward-Euler systems of :func:`run_spatialdtp_radial` (the same a and b, linearised
    at each step's start) assembled with SciPy and solved by PyAMG's SA-AMG + CG to
    ``tol``. The fixed voxels are eliminated (the free rows' system with their known values
    moved to the right-hand side: the limit the penalty approaches) rather than penalised:
    PyAMG's tolerance is relative to the whole right-hand side's norm, which P·value rows
    would make ~1e20. With a linearised uptake the matrix changes every step, and so is the
    hierarchy rebuilt."""
    import pyamg

    t_end = q.p["t_end"] if t_end is None else t_end
    steps = max(1, int(round(t_end / dt)))
    free = ~q.fixed.ravel()
    v = q.value.ravel()[~free]
    c = q.c0.copy()
    ml = None
    for _ in range(steps):
        if ml is None or q.mm is not None:
            A = _radial_matrix(q, q.uptake_rate(c), dt)
            A_ff = A[free][:, free].tocsr()
            lift = A[free][:, ~free] @ v
            ml = pyamg.smoothed_aggregation_solver(A_ff)
        rhs = (c + dt * q.source).ravel()[free] - lift
        x = c.ravel().copy()
        x[free] = ml.solve(rhs, x0=x[free], tol=tol, accel="cg")
        c = q.put_back(x.reshape(q.shape))
    return c, steps


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


PROBLEMS = ("slab", "krogh", "spheroid")
TITLES = {"slab": "1D slab with linear uptake (transient)",
          "krogh": "Krogh cylinder (2D, zero-order uptake, steady state)",
          "spheroid": "spheroid with an anoxic core (3D, Michaelis–Menten Km → 0, steady)"}


def radial_methods(quick=False):
    """(name, label, callable(q, dt) -> (c, steps[, iterations]), optional import)."""
    rtols = (None,) if quick else (None, 1e-3, 1e-8)
    out = []
    for rtol in rtols:
        tag = "derived" if rtol is None else f"{rtol:g}"
        for solver in ("multigrid", "pcg"):
            out.append((f"spatialdtp {solver}", f"BE, rtol {tag}",
                        lambda q, dt, s=solver, r=rtol: run_spatialdtp_radial(q, dt, s, r),
                        None))
    out.append(("LOD/Thomas", "BioFVM's scheme", run_lod_radial, None))
    out.append(("PyAMG", "BE, SA-AMG + CG, tol 1e-8",
                lambda q, dt: run_pyamg_radial(q, dt, 1e-8), "pyamg"))
    return out


#: py-pde on the radial problems: not run, and why
PYPDE_RADIAL = ("not run on the radial problems: its ImplicitSolver's fixed-point iteration "
                "does not converge at DΔt/dx² ≫ 1 (the slab shows it; here DΔt/dx² ≥ 750), "
                "and its ScipySolver gives SciPy's BDF no Jacobian sparsity, so BDF "
                "estimates a dense N×N Jacobian (N = 3600 in 2D, 85 184 in 3D)")


def _missing(module):
    import importlib.util

    return module is not None and importlib.util.find_spec(module) is None


def _run_slab(quick, log, rows, skipped):
    p = dict(SLAB)
    x, _dx = centres(p)
    exact = slab_exact(x, p["t_end"], p["L"], p["D"], p["k"], p["c0"])
    for name, label, fn, module in methods(quick):
        if _missing(module):
            skipped.append({"problem": "slab", "method": name,
                            "reason": f"{module} is not installed "
                                      "(pip install spatialdtp[peers])"})
            continue
        for dt in (QUICK_DTS if quick else DTS):
            try:
                wall, out = _timed(fn, p, dt)
            except Exception as err:  # noqa: BLE001  (a peer's API that changed: say so)
                skipped.append({"problem": "slab", "method": name, "label": label, "dt": dt,
                                "reason": f"{type(err).__name__}: {err}"})
                break
            c = out[0]
            err = float(np.max(np.abs(c - exact))) / p["c0"]
            row = {"problem": "slab", "method": name, "label": label, "dt_min": dt,
                   "steps": out[1], "wall_s": wall, "error": err}
            if len(out) > 2:
                row["iterations"] = out[2]
            if len(out) > 3:
                row["fallbacks"] = out[3]
            rows.append(row)
            log(f"    slab: {name} ({label}) dt={dt:g}: error {err:.3g}, {wall * 1e3:.1f} ms")
    for name, label, fn, module in adaptive_methods():
        if _missing(module):
            skipped.append({"problem": "slab", "method": name,
                            "reason": f"{module} is not installed "
                                      "(pip install spatialdtp[peers])"})
            continue
        for rtol in (ADAPTIVE_RTOLS[:1] if quick else ADAPTIVE_RTOLS):
            try:
                wall, out = _timed(fn, p, rtol)
            except Exception as err:  # noqa: BLE001
                skipped.append({"problem": "slab", "method": name, "label": label,
                                "rtol": rtol, "reason": f"{type(err).__name__}: {err}"})
                break
            err = float(np.max(np.abs(out[0] - exact))) / p["c0"]
            rows.append({"problem": "slab", "method": name, "label": label, "rtol": rtol,
                         "dt_min": None, "steps": out[1], "wall_s": wall, "error": err})
            log(f"    slab: {name} ({label}) rtol={rtol:g}: error {err:.3g}, "
                f"{wall * 1e3:.1f} ms")
    return {"name": TITLES["slab"], **p}


def _run_radial(problem, quick, log, rows, skipped, n=None):
    p = KROGH if problem == "krogh" else SPHEROID
    q = Radial(problem, p, n)
    for name, label, fn, module in radial_methods(quick):
        if _missing(module):
            skipped.append({"problem": problem, "method": name,
                            "reason": f"{module} is not installed "
                                      "(pip install spatialdtp[peers])"})
            continue
        for dt in (QUICK_RADIAL_DTS if quick else
                   RADIAL_DTS_OF.get((problem, name), RADIAL_DTS[problem])):
            try:
                wall, out = _timed(fn, q, dt)
            except Exception as err:  # noqa: BLE001
                skipped.append({"problem": problem, "method": name, "label": label,
                                "dt": dt, "reason": f"{type(err).__name__}: {err}"})
                break
            err = q.error(out[0])
            row = {"problem": problem, "method": name, "label": label, "dt_min": dt,
                   "steps": out[1], "wall_s": wall, "error": err}
            if len(out) > 2:
                row["iterations"] = out[2]
            if len(out) > 3:          # multigrid solves the run would have handed to PCG
                row["fallbacks"] = out[3]
            rows.append(row)
            log(f"    {problem}: {name} ({label}) dt={dt:g}: error {err:.3g}, "
                f"{wall * 1e3:.1f} ms")
    skipped.append({"problem": problem, "method": "py-pde", "reason": PYPDE_RADIAL})
    info = {"name": TITLES[problem], **p, "n": q.n, "dx": q.dx, "M": q.M,
            "grid": list(q.shape), "fixed_voxels": int(q.fixed.sum())}
    if problem == "spheroid":
        info["r_n"] = anoxic_radius(p["R"], p["D"], q.M, p["cR"])
    return info


def run(quick=False, log=print, problems=PROBLEMS, n=None):
    """Every method on every problem of ``problems``; ``n`` overrides the radial grids'
    size (the tests' small grids)."""
    rows, skipped, info = [], [], {}
    for problem in problems:
        if problem == "slab":
            info[problem] = _run_slab(quick, log, rows, skipped)
        else:
            info[problem] = _run_radial(problem, quick, log, rows, skipped, n)
    return {"problem": info.get("slab"), "problems": info, "rows": rows, "skipped": skipped}


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = [p for p in PROBLEMS if p in result["problems"]]
    fig, axes = plt.subplots(1, len(problems), figsize=(6.5 * len(problems), 5.5),
                             squeeze=False)
    ylabels = {"slab": "max |c − c_exact| / c₀ at t_end",
               "krogh": "max |c − c_exact| / c_v at t_end (steady closed form)",
               "spheroid": "max |c − c_exact| / c_R at t_end (steady closed form)"}
    for ax, problem in zip(axes[0], problems):
        rows = [r for r in result["rows"] if r.get("problem", "slab") == problem]
        keys = sorted({(r["method"], r["label"]) for r in rows})
        for method, label in keys:
            # joined in order of Δt (the adaptive methods, without one, by wall time)
            mine = sorted((r for r in rows if (r["method"], r["label"]) == (method, label)),
                          key=lambda r: (-(r["dt_min"] or 0.0), r["wall_s"]))
            ax.loglog([r["wall_s"] for r in mine], [r["error"] for r in mine], "o-",
                      label=f"{method}: {label}")
        handed = [r for r in rows if r.get("fallbacks")]
        if handed:     # a multigrid solve that diverged or stalled and went to PCG
            ax.loglog([r["wall_s"] for r in handed], [r["error"] for r in handed], "o",
                      mfc="none", mec="k", ms=11,
                      label="multigrid handed solves to PCG (as the run does)")
        info = result["problems"][problem]
        dts = sorted({r["dt_min"] for r in rows if r["dt_min"] is not None})
        grid = "×".join(str(g) for g in info.get("grid", [3, info.get("n")]))
        ax.set_title(f"{info['name']}\ngrid {grid}, Δt ∈ "
                     + ", ".join(f"{d:g}" for d in dts) + " min", fontsize=9)
        ax.set_xlabel("wall time of the integration (s)")
        ax.set_ylabel(ylabels[problem])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle("Work–precision (error against wall time)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
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
