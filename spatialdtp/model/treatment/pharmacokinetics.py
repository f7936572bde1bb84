"""Pharmacokinetics: the plasma level ``c_blood(t)`` (µM) of one drug, advanced exactly.

    constant   c = level while on, 0 off (in-vitro-like constant exposure)
    bolus      each dose raises c by ``amount`` at once; dc/dt = −ke c
    oral       one compartment with first-order absorption from the gut g:
               dg/dt = −ka g, dc/dt = ka g − ke c; each dose adds ``amount`` to g
    infusion   dc/dt = R − ke c with R = rate (µM/min) while on

Each interval between doses and switches is advanced with closed-form exponentials, and
its exact time integral is kept, so a step's average level is exact however long the step.
Time is in minutes.
"""
from __future__ import annotations

import math

IMPULSE_PK = ("bolus", "oral")  # PK models whose doses are instantaneous


def _f1(x: float) -> float:
    """``(1 − e^{−x})/x`` (=1 at x = 0), accurate for every x: the mean of e^{−xu} on [0, 1]."""
    if x == 0.0:
        return 1.0
    return -math.expm1(-x) / x


def _moments(m: float, n: int) -> list[float]:
    """``M_k(m) = ∫₀¹ uᵏ e^{−mu} du`` for k = 0..n, m >= 0.

    Small m: the power series (little cancellation for m <= 1). Larger m: the forward
    recursion ``M_k = (k M_{k−1} − e^{−m})/m``, whose error growth k!/mᵏ is harmless for
    the terms :func:`_psi` uses them in.
    """
    if m <= 1.0:
        out = []
        for k in range(n + 1):
            total, term = 0.0, 1.0          # term = (−m)^j / j!
            for j in range(30):
                total += term / (k + j + 1)
                term *= -m / (j + 1)
            out.append(total)
        return out
    e = math.exp(-m)
    out = [_f1(m)]
    for k in range(1, n + 1):
        out.append((k * out[-1] - e) / m)
    return out


def _psi(a: float, b: float) -> float:
    """``Ψ(a, b) = ∫₀¹ ∫₀^σ e^{−a v − b (σ − v)} dv dσ`` for a, b >= 0 (symmetric).

    It is the divided difference ``(f1(b) − f1(a))/(a − b)``, with the limit ``−f1'(a)`` at
    a = b. It gives the time integral of a first-order response to a first-order input
    (oral absorption: a = ka·h, b = ke·h) and, with b = 0, the integral of an infusion
    build-up. Far from a = b the divided difference is exact to round-off; near it a
    Taylor series in δ = |a − b| about m = min(a, b) avoids the cancellation:
    ``Ψ = Σ_k (−δ)ᵏ/(k+1)! · M_{k+1}(m)``.
    """
    m, d = min(a, b), abs(a - b)
    if d > max(1.0, 0.25 * m):
        return (_f1(m) - _f1(m + d)) / d
    n_terms = 30
    mom = _moments(m, n_terms)
    total, coef = 0.0, 1.0                 # coef = (−δ)^k / (k+1)!
    for k in range(n_terms):
        total += coef * mom[k + 1]
        coef *= -d / (k + 2)
    return total


# =========================================================================== pharmacokinetics
class Pharmacokinetics:
    """One drug's plasma (and gut) compartment, advanced exactly between events."""

    def __init__(self, model: str, elimination: float, absorption: float):
        self.model = model
        self.ke = float(elimination)
        self.ka = float(absorption)
        self.gut = 0.0      # µM-equivalent waiting in the gut (oral)
        self.plasma = 0.0   # µM

    def give(self, amount: float) -> None:
        """An instantaneous dose (bolus: into plasma; oral: into the gut)."""
        if self.model == "bolus":
            self.plasma += amount
        elif self.model == "oral":
            self.gut += amount

    def run(self, h: float, u: float) -> float:
        """Advance ``h`` minutes with no event inside, input ``u`` (the level of the
        on-windows: plasma level for constant, rate for infusion); return ``∫ c dt``.

        With b = ke·h, a = ka·h:
        infusion/bolus (R = u or 0): ``c(h) = c0 e^{−b} + R h f1(b)``,
        ``∫c = h (c0 f1(b) + R h Ψ(b, 0))``;
        oral: ``g(h) = g0 e^{−a}``, ``c(h) = c0 e^{−b} + g0 a (e^{−b} − e^{−a})/(a − b)``,
        ``∫c = h (c0 f1(b) + g0 a Ψ(a, b))`` (the ka = ke limit included).
        """
        if self.model == "constant":
            self.plasma = u
            return u * h
        c0, b = self.plasma, self.ke * h
        if self.model == "oral":
            g0, a = self.gut, self.ka * h
            integral = h * (c0 * _f1(b) + g0 * a * _psi(a, b))
            # (e^{−b} − e^{−a})/(a − b) = e^{−min(a,b)} f1(|a − b|): no overflow, no 0/0.
            self.plasma = c0 * math.exp(-b) + g0 * a * math.exp(-min(a, b)) * _f1(abs(a - b))
            self.gut = g0 * math.exp(-a)
            return integral
        rate = u if self.model == "infusion" else 0.0
        integral = h * (c0 * _f1(b) + rate * h * _psi(b, 0.0))
        self.plasma = c0 * math.exp(-b) + rate * h * _f1(b)
        return integral

