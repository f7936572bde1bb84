"""Positivity-preserving, second-order integration of the pointwise cell kinetics.

Over a sub-step τ the substrates are frozen, so the cell model splits into three flows
that are each solved exactly or to second order and never make a density negative:

* ``growth``: dn_i/dt = r_i(n) n_i (+ a non-negative TAM source), with r_i depending on
  crowding. Exponential midpoint: rates at the start give a half-step prediction, rates
  at the prediction give n_i ← n_i e^{r_i τ} (+ source · τ φ1(r_i τ)). Second order, and
  positive because exponentials are.
* ``exchange``: S ⇄ P at rates α, ρ (linear, total conserved): exact,
  P ← P + (αS − ρP)(1 − e^{−(α+ρ)τ})/(α+ρ).
* ``acquisition``: P → R at rate μE: exact, P ← P e^{−μEτ}, R gains what P lost.

They are composed symmetrically (Strang): growth(τ/2) exchange(τ/2) acquisition(τ)
exchange(τ/2) growth(τ/2), which keeps the whole sub-step second order in τ.
"""
from __future__ import annotations

import numpy as np

from ..config import CELL_TYPES
from ..model.cells import CellKinetics, Environment
from ..model.treatment import drug_effects


def _expm1(x, xp):
    """e^x − 1 of a plane, or of a Python float (a rate uniform in space: no drug) as a
    Python float. NumPy's answer for a float is a float64 scalar, which would promote
    every float32 plane it multiplies to float64 (and the rest of the step with it)."""
    return float(np.expm1(x)) if isinstance(x, float) else xp.expm1(x)


def phi1(x, xp):
    """(e^x − 1)/x, exact at x = 0 (the integral of e^{xs} over s in [0, 1]).

    A Python float (a rate uniform in space) gives a Python float: see :func:`_expm1`."""
    if isinstance(x, float):
        return float(phi1(np.asarray(x), np))
    small = xp.abs(x) < 1e-6
    safe = xp.where(small, 1.0, x)
    return xp.where(small, 1.0 + 0.5 * x, xp.expm1(safe) / safe)


#: sub-step lengths whose fixed-rate factors are kept (a run has two; a step cut at drug
#: switches adds its pieces)
_KEPT_LENGTHS = 8


def _fixed_factors(kin: CellKinetics, like, h):
    """The factors e^{r_i h} of the rates that :attr:`CellKinetics.fixed_rates` knows are
    one constant everywhere (TAM death always), and φ1(r_M h) of the TAM source, made once
    per sub-step length (a step needs them eight times). Each is one voxel of ``like``'s
    dtype that broadcasts: an elementwise function of one value is that value's, for any
    grid, so the products are the same bit for bit as with whole planes of the rate."""
    key = (h, like.ndim, like.dtype)
    cache = kin.factor_cache
    if key not in cache:
        if len(cache) >= _KEPT_LENGTHS:
            cache.clear()
        xp = kin.xp
        rate = {i: xp.full((1,) * like.ndim, r, dtype=like.dtype) * h
                for i, r in kin.fixed_rates.items()}
        cache[key] = {i: xp.exp(x) for i, x in rate.items()}, phi1(rate[4], xp)
    return cache[key]


def _growth(kin: CellKinetics, cells, env: Environment, tau):
    xp = kin.xp

    def advance(rates, source, h):
        fixed, phi_M = _fixed_factors(kin, cells[0], h)
        out = []
        for i, (n, r) in enumerate(zip(cells, rates)):
            if i not in fixed:
                out.append(n * xp.exp(r * h))
            elif kin.fixed_rates[i] == 0:    # e^0 = 1: n · 1 is n
                out.append(n)
            else:
                out.append(n * fixed[i])
        out[4] = out[4] + source * h * phi_M
        return out

    rates0, src0 = kin.per_capita(cells, env)
    half = advance(rates0, src0, 0.5 * tau)
    rates_mid, src_mid = kin.per_capita(half, env)
    return advance(rates_mid, src_mid, tau)


def _exchange(cells, alpha, rho, tau, xp):
    S, P, R, F, M = cells
    k = alpha + rho
    moved = (alpha * S - rho * P) * tau * phi1(-k * tau, xp)
    return [S - moved, P + moved, R, F, M]


def _acquisition(cells, acquire, tau, xp):
    S, P, R, F, M = cells
    lost = -P * _expm1(-acquire * tau, xp)
    return [S, P - lost, R + lost, F, M]


def integrate_cells(kin: CellKinetics, cells, env: Environment, tau, out=None):
    """Advance (S, P, R, F, M) by τ minutes with the substrates frozen. Returns a list, or
    with ``out`` (five planes, which may be ``cells``) writes the result there."""
    xp = kin.xp
    alpha, rho, acquire = kin.switching(env)
    cells = _growth(kin, list(cells), env, 0.5 * tau)
    cells = _exchange(cells, alpha, rho, 0.5 * tau, xp)
    cells = _acquisition(cells, acquire, tau, xp)
    cells = _exchange(cells, alpha, rho, 0.5 * tau, xp)
    cells = _growth(kin, cells, env, 0.5 * tau)
    # Exact flows are positive in exact arithmetic; rounding in S − moved can leave −1e-8.
    if out is None:
        return [xp.maximum(n, 0.0) for n in cells]
    for n, o in zip(cells, out):
        xp.maximum(n, 0.0, out=o)
    return list(out)


def react_state(state, kinetics: CellKinetics, treatment_cfg, tau):
    """Advance the cell fields of ``state`` by τ minutes in place, substrates frozen.

    The reference of the fused kernel ``kernels/cell_kinetics.cu``: drug effects from the
    local concentrations, the environment from the substrates, then :func:`integrate_cells`.
    """
    xp = kinetics.xp
    subs = {name: state[name] for name in state.layout.substrates}
    effects = drug_effects(treatment_cfg, {d: subs[d] for d in state.layout.drugs}, xp)
    env = kinetics.environment(subs, effects)
    planes = [state[n] for n in CELL_TYPES]
    integrate_cells(kinetics, planes, env, tau, out=planes)
