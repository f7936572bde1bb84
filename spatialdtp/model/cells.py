"""Cell-state kinetics: the pointwise biology of S, P, R, F and M in one voxel.

With local oxygen O, glucose G, HGF h, chemokine q, the targeted-drug effect E, the
epigenetic-inhibitor effect E_epi, the MET blockade B and the persister-kill hazard κ_P of
OXPHOS/GPX4/FAO inhibitors (all from :mod:`spatialdtp.treatment`):

    g     = clamp((O − O_th)/(O_sat − O_th)) · G/(G + K_G)          growth permission
    hyp   = clamp((O_hyp − O)/(O_hyp − O_hyp,full))                 hypoxia signal
    δ_env = δ_nec clamp((O_on − O)/(O_on − O_max)) + δ_st clamp((G_st − G)/G_st)
    free  = max(0, 1 − (S+P+R+F+M)/capacity)   crowding (free = 1 with cells.crowding=false)
    H     = h/(h + K_hgf) · (1 − B)                                 MET signal (free HGF h)
    π     = g·free (Norton–Simon kill scales with it; constant kill uses π = 1)

    dS/dt = r_S g free S − k_S E π (1 − θ_S H) S − d_S S − δ_env S − α S + ρ P
    dP/dt = r_P g free P − k_P E π (1 − θ H) P − κ_P P − d_P P − δ_env P + α S − ρ P − μ E P
    dR/dt = r_S(1 − c_R) g free R − k_R E π R − d_R R − δ_env R + μ E P
    dF/dt = r_F max(0, 1 − F/K_F) F − d_F F                K_F = carrying_density · capacity
    dM/dt = (ψ0 + ψ q/(q + K_q)) v(x) free − d_M M         (+ motility, chemotaxis: transport)

HGF–MET protection lowers the drug-induced kill of S (θ_S) and of P (θ), and raises drug-
induced entry into P (β_H, in α). CAFs renew against their own carrying density, not the
tumour's crowding: without turnover (r_F = d_F = 0, the default) they are quiescent and F
stays put; with turnover F → K_F (1 − d_F/r_F). TAMs come from vessel voxels at a baseline
rate ψ0 plus the rate the persister chemokine q adds, and die at d_M.

    α = (α0 + α_E E (1 + β_H H)(1 + β_hyp hyp)) (1 − E_epi)         entry into the DTP state
    ρ = ρ0 (1 − E)                                                  reversion when drug is gone

Everything here is pointwise; how it is integrated in time is
:mod:`spatialdtp.numerics.cell_kinetics`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import CellsConfig


def ramp(x, xp):
    """clamp(x, 0, 1)"""
    return xp.clip(x, 0.0, 1.0)


@dataclass
class Environment:
    """What the substrates and drugs say to the cells of each voxel, frozen over a sub-step."""

    growth: object       # g(O2, glucose) in [0, 1]
    hypoxia: object      # hyp(O2) in [0, 1]
    env_death: object    # 1/min hypoxic + starvation death
    kill: object         # targeted drug effect E in [0, 1]
    met_signal: object   # H in [0, 1]
    epigenetic: object   # E_epi in [0, 1]
    p_kill: object       # 1/min persister hazard of OXPHOS/GPX4/FAO inhibitors
    recruitment: object  # cells/voxel/min TAM influx at vessel voxels (before crowding):
                         # (ψ0 + ψ q/(q + K_q)) v(x)


class CellKinetics:
    """Rates of the cell model for one parameter set (:class:`~spatialdtp.config.CellsConfig`)."""

    def __init__(self, cfg: CellsConfig, capacity: float, vessels, xp=np):
        self.cfg = cfg
        self.capacity = float(capacity)
        # the capacity that crowding divides by: infinite when crowding is off (free = 1)
        self.crowding_capacity = self.capacity if cfg.crowding else float("inf")
        self.vessels = vessels
        self.xp = xp
        self.norton_simon = cfg.kill_model == "norton_simon"
        f = cfg.fibroblast
        #: the per-capita rates of :meth:`per_capita` that are one number everywhere and at
        #: all times (index into S, P, R, F, M: value): TAM death, and CAF death when CAFs
        #: do not grow (the default, quiescent CAFs: 0 · room − d_F is −d_F exactly)
        self.fixed_rates = {4: -cfg.macrophage.death}
        if f.growth == 0:
            self.fixed_rates[3] = -f.death
        #: what the integrator derives from fixed rates, per sub-step length
        #: (:func:`spatialdtp.numerics.cell_kinetics._fixed_factors`)
        self.factor_cache = {}

    # ------------------------------------------------------------------ environment
    def environment(self, substrates: dict, effects) -> Environment:
        """Substrate- and drug-derived factors (they do not depend on the cell densities)."""
        xp, e = self.xp, self.cfg.environment
        o2, glc = substrates["oxygen"], substrates["glucose"]
        hgf, chem = substrates["hgf"], substrates["chemokine"]
        sw = self.cfg.switching
        g_o2 = ramp((o2 - e.o2_proliferation_threshold)
                    / (e.o2_proliferation_saturation - e.o2_proliferation_threshold), xp)
        g_glc = glc / (glc + e.glucose_k) if e.glucose_k > 0 else xp.ones_like(glc)
        hyp = ramp((e.o2_hypoxic - o2) / (e.o2_hypoxic - e.o2_hypoxic_full), xp)
        necro = e.necrosis_rate * ramp((e.o2_necrosis_onset - o2)
                                       / (e.o2_necrosis_onset - e.o2_necrosis_max), xp)
        starve = (e.starvation_rate * ramp((e.glucose_starvation - glc) / e.glucose_starvation, xp)
                  if e.glucose_starvation > 0 else 0.0)
        met = hgf / (hgf + sw.hgf_k) * (1.0 - effects.met_blockade)
        m = self.cfg.macrophage
        recruit = (m.baseline_recruitment + m.recruitment * chem / (chem + m.chemokine_k)) \
            * self.vessels
        return Environment(growth=g_o2 * g_glc, hypoxia=hyp, env_death=necro + starve,
                           kill=effects.kill, met_signal=met, epigenetic=effects.epigenetic,
                           p_kill=effects.p_kill, recruitment=recruit)

    # ------------------------------------------------------------------ rates
    def free(self, S, P, R, F, M):
        return self.xp.maximum(0.0, 1.0 - (S + P + R + F + M) / self.crowding_capacity)

    def per_capita(self, cells, env: Environment):
        """Net per-capita growth − death − kill rates (1/min) of S, P, R, F, M, and the TAM
        source (cells/voxel/min). Transfers between states are in :meth:`switching`."""
        c = self.cfg
        free = self.free(*cells)
        prolif = env.growth * free
        kill_scale = prolif if self.norton_simon else 1.0
        E = env.kill
        shared_death = env.env_death
        r_S = (c.sensitive.growth * prolif
               - c.sensitive.kill * E * kill_scale * (1.0 - c.switching.theta_sensitive
                                                      * env.met_signal)
               - c.sensitive.death - shared_death)
        r_P = (c.persister.growth * prolif
               - c.persister.kill * E * kill_scale * (1.0 - c.switching.theta * env.met_signal)
               - env.p_kill - c.persister.death - shared_death)
        r_R = (c.sensitive.growth * (1.0 - c.resistant.fitness_cost) * prolif
               - c.resistant.kill * E * kill_scale - c.resistant.death - shared_death)
        f = c.fibroblast
        room_F = self.xp.maximum(0.0, 1.0 - cells[3] / (f.carrying_density * self.capacity))
        r_F = f.growth * room_F - f.death
        r_M = self.xp.full_like(free, -c.macrophage.death)
        source_M = env.recruitment * free
        return (r_S, r_P, r_R, r_F, r_M), source_M

    def switching(self, env: Environment):
        """Transfer rates (1/min): S→P entry α, P→S reversion ρ, P→R acquisition μE."""
        sw = self.cfg.switching
        E = env.kill
        alpha = ((sw.alpha0 + sw.alpha_drug * E * (1.0 + sw.beta_hgf * env.met_signal)
                  * (1.0 + sw.beta_hypoxia * env.hypoxia)) * (1.0 - env.epigenetic))
        rho = sw.rho0 * (1.0 - E)
        acquire = sw.mu * E
        return alpha, rho, acquire

    def rhs(self, cells, env: Environment):
        """dS/dt, dP/dt, dR/dt, dF/dt, dM/dt (reaction part only): for checks and plots."""
        S, P, R, F, M = cells
        (rS, rP, rR, rF, rM), src = self.per_capita(cells, env)
        alpha, rho, acquire = self.switching(env)
        return (rS * S - alpha * S + rho * P,
                rP * P + alpha * S - rho * P - acquire * P,
                rR * R + acquire * P,
                rF * F,
                rM * M + src)

    def protection(self, env: Environment):
        """Fraction by which the local HGF–MET signal lowers the persister kill rate."""
        return self.cfg.switching.theta * env.met_signal

    def protection_sensitive(self, env: Environment):
        """Fraction by which the local HGF–MET signal lowers the sensitive-cell kill rate."""
        return self.cfg.switching.theta_sensitive * env.met_signal
