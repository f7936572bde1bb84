"""The schema of the substrates: what diffuses, decays, leaks from vessels, is taken up and
secreted (oxygen mmHg, glucose mM, HGF ng/mL, chemokine nM; the drugs, in µM, through
their ``transport`` section). The equations are in
:mod:`spatialdtp.model.substrate_coefficients`; every default's source is in
``docs/parameters.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from .cells import CELL_TYPES
from .checks import choice, fail, nonneg, positive

BOUNDARY_KINDS = ("no_flux", "fixed", "periodic")
BASE_SUBSTRATES = ("oxygen", "glucose", "hgf", "chemokine")


@dataclass
class BindingConfig:
    """Fast, linear binding to immobile sites (heparan sulfate for HGF): bound = (sites/kd)
    × free, bound does not diffuse and is lost at ``bound_decay``. The field is the free
    level; the equation it obeys is in :mod:`spatialdtp.model.substrate_coefficients`."""
    sites: float = 750.0               # nM of binding sites in the tissue
    kd: float = 6.7                    # nM dissociation constant (same unit as sites)
    bound_decay: float = 2.7e-3        # 1/min loss of the bound form


@dataclass
class CoefficientMapsConfig:
    """Per-voxel coefficients from .npy/.tif arrays of the grid's shape (null: none), for a
    vessel wall, a tissue/medium interface or a measured map: finite and >= 0, like every
    array the tissue loads (``fixed``: NaN marks the free voxels)."""
    diffusion: Optional[str] = None    # µm²/min, D(x): replaces `diffusion` (hindrance, binding act)
    uptake: Optional[str] = None       # 1/min, a first-order sink added in each voxel (linear)
    secretion: Optional[str] = None    # units/min, a source added in each voxel
    # the substrate's units: the value held in each voxel (Dirichlet voxels inside the
    # tissue, e.g. a perfused vessel wall or a medium reservoir); NaN where the field is free
    fixed: Optional[str] = None


#: the coefficients a map can give
MAP_KINDS = ("diffusion", "uptake", "secretion", "fixed")


@dataclass
class SubstrateConfig:
    units: str = "a.u."
    diffusion: float = 1000.0          # µm²/min
    decay: float = 0.0                 # 1/min
    blood: float = 0.0                 # level in blood (drugs: set by pharmacokinetics)
    permeability: float = 0.0          # 1/min, exchange rate through a vessel voxel
    initial: float = 0.0               # initial value everywhere (tissue files may override)
    # Uptake by each cell type: first-order rate per cell (1/min, PhysiCell's convention,
    # scaled by cell volume / voxel volume). With uptake_km set, uptake saturates:
    # rate = u·K·c/(K + c) (Michaelis–Menten with Vmax = u·K); with null it stays linear u·c.
    uptake: Dict[str, float] = field(default_factory=dict)
    uptake_km: Optional[float] = None
    # Secretion by each cell type: units/min raised in the cell's own volume (PhysiCell's
    # convention), scaled by cell volume / voxel volume.
    secretion: Dict[str, float] = field(default_factory=dict)
    # Desmoplastic hindrance: D(x) = D / (1 + hindrance · F(x)/capacity).
    hindrance: float = 0.0
    # Boundary per face: keys "default" or a face such as "x-", "x+", "y-", "z+".
    boundary: Dict[str, str] = field(default_factory=lambda: {"default": "no_flux"})
    boundary_value: Optional[float] = None  # for "fixed" faces; null means the blood level
    # Binding to immobile matrix sites (null: none): slows diffusion and adds the loss of
    # the bound form, see BindingConfig.
    binding: Optional[BindingConfig] = None
    # Per-voxel coefficient maps from files (see CoefficientMapsConfig).
    maps: CoefficientMapsConfig = field(default_factory=CoefficientMapsConfig)


def _oxygen():
    return SubstrateConfig(units="mmHg", diffusion=1.0e5, decay=0.1, blood=38.0,
                           permeability=1000.0, initial=38.0,
                           uptake={"S": 10.0, "P": 10.0, "R": 10.0, "F": 10.0, "M": 10.0})


def _glucose():
    return SubstrateConfig(units="mM", diffusion=2340.0, decay=0.0, blood=5.0,
                           permeability=1.0, initial=5.0,
                           uptake={"S": 1.3, "P": 0.65, "R": 1.3, "F": 0.65, "M": 0.65},
                           uptake_km=2.0)


def _hgf():
    return SubstrateConfig(units="ng/mL", diffusion=600.0, decay=0.027, blood=0.0,
                           permeability=0.0, initial=0.0,
                           uptake={"S": 0.005, "P": 0.005, "R": 0.005},
                           secretion={"F": 0.45, "M": 0.225}, hindrance=1.0,
                           binding=BindingConfig())


def _chemokine():
    return SubstrateConfig(units="nM", diffusion=1000.0, decay=0.016, blood=0.0,
                           permeability=0.0, initial=0.0, secretion={"P": 0.1})


def default_substrates():
    return {"oxygen": _oxygen(), "glucose": _glucose(), "hgf": _hgf(),
            "chemokine": _chemokine()}


def validate_substrate(key: str, s: SubstrateConfig, ndim: int):
    for attr in ("diffusion", "decay", "blood", "permeability", "initial", "hindrance"):
        nonneg(f"{key}.{attr}", getattr(s, attr))
    if s.uptake_km is not None:
        positive(f"{key}.uptake_km", s.uptake_km)
    for kind in ("uptake", "secretion"):
        for cell, rate in getattr(s, kind).items():
            if cell not in CELL_TYPES:
                fail(f"{key}.{kind}.{cell}", rate, f"cell types are {list(CELL_TYPES)}")
            nonneg(f"{key}.{kind}.{cell}", rate)
    axes = ("z", "y", "x")[3 - ndim:]
    faces = [a + s_ for a in axes for s_ in "-+"]
    for face, kind in s.boundary.items():
        if face != "default" and face not in faces:
            fail(f"{key}.boundary.{face}", kind, f"faces of a {ndim}D grid are {['default'] + faces}")
        choice(f"{key}.boundary.{face}", kind, BOUNDARY_KINDS)
    for ax in axes:
        lo, hi = boundary_of(s, ax + "-"), boundary_of(s, ax + "+")
        if (lo == "periodic") != (hi == "periodic"):
            fail(f"{key}.boundary.{ax}", [lo, hi], "periodic must be set on both faces of an axis")
    if s.boundary_value is not None:
        nonneg(f"{key}.boundary_value", s.boundary_value)
    for kind in MAP_KINDS:
        path = getattr(s.maps, kind)
        if path is not None and not (isinstance(path, str) and path):
            fail(f"{key}.maps.{kind}", path, "must be null or the path of a .npy/.tif array")
    if s.binding is not None:
        nonneg(f"{key}.binding.sites", s.binding.sites)
        positive(f"{key}.binding.kd", s.binding.kd)
        nonneg(f"{key}.binding.bound_decay", s.binding.bound_decay)


def boundary_of(s: SubstrateConfig, face: str) -> str:
    return s.boundary.get(face, s.boundary.get("default", "no_flux"))

