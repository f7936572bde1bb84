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

from ..config import CELL_TYPES
from ..model.cells import CellKinetics, Environment
from ..model.treatment import drug_effects


def phi1(x, xp):
    """(e^x − 1)/x, exact at x = 0 (the integral of e^{xs} over s in [0, 1])."""
    small = xp.abs(x) < 1e-6
    safe = xp.where(small, 1.0, x)
    return xp.where(small, 1.0 + 0.5 * x, xp.expm1(safe) / safe)


def _growth(kin: CellKinetics, cells, env: Environment, tau):
    xp = kin.xp

    def advance(rates, source, h):
        out = [n * xp.exp(r * h) for n, r in zip(cells, rates)]
        out[4] = out[4] + source * h * phi1(rates[4] * h, xp)
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
    lost = -P * xp.expm1(-acquire * tau)
    return [S, P - lost, R + lost, F, M]


def integrate_cells(kin: CellKinetics, cells, env: Environment, tau):
    """Advance (S, P, R, F, M) by τ minutes with the substrates frozen. Returns a list."""
    xp = kin.xp
    alpha, rho, acquire = kin.switching(env)
    cells = _growth(kin, list(cells), env, 0.5 * tau)
    cells = _exchange(cells, alpha, rho, 0.5 * tau, xp)
    cells = _acquisition(cells, acquire, tau, xp)
    cells = _exchange(cells, alpha, rho, 0.5 * tau, xp)
    cells = _growth(kin, cells, env, 0.5 * tau)
    # Exact flows are positive in exact arithmetic; rounding in S − moved can leave −1e-8.
    return [xp.maximum(n, 0.0) for n in cells]


def react_state(state, kinetics: CellKinetics, treatment_cfg, tau):
    """Advance the cell fields of ``state`` by τ minutes in place, substrates frozen.

    The reference of the fused kernel ``kernels/cell_kinetics.cu``: drug effects from the
    local concentrations, the environment from the substrates, then :func:`integrate_cells`.
    """
    xp = kinetics.xp
    subs = {name: state[name] for name in state.layout.substrates}
    effects = drug_effects(treatment_cfg, {d: subs[d] for d in state.layout.drugs}, xp)
    env = kinetics.environment(subs, effects)
    cells = integrate_cells(kinetics, [state[n] for n in CELL_TYPES], env, tau)
    for name, n in zip(CELL_TYPES, cells):
        state[name] = n
