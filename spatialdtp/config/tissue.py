"""The schema of the initial tissue: generated vessels, tumour nest, CAF stroma and TAMs,
or label images and arrays from files (:mod:`spatialdtp.model.tissue` builds it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .checks import choice, fail, fraction, integer_in, is_number, nonneg, positive


@dataclass
class VesselConfig:
    kind: str = "network"              # network | points | none
    spacing: float = 200.0             # µm, mean distance between vessels
    radius: float = 10.0               # µm
    margin: float = 0.0                # µm kept free of vessels around the tumour centre


@dataclass
class TumourConfig:
    center: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])  # fraction of extent
    radius: float = 400.0              # µm
    density: float = 0.3               # fraction of capacity
    persister_fraction: float = 0.003  # pre-existing DTPs among tumour cells
    resistant_fraction: float = 1.0e-4


@dataclass
class StromaConfig:
    kind: str = "clusters"             # clusters | bands | none
    caf_density: float = 0.5           # fraction of capacity inside a CAF patch
    n_clusters: int = 6
    cluster_radius: float = 120.0      # µm
    band_width: float = 100.0          # µm
    band_spacing: float = 400.0        # µm


@dataclass
class MacrophageSeedConfig:
    density: float = 0.05              # fraction of capacity, near vessels/CAFs
    near: str = "stroma"               # stroma | vessels | uniform


@dataclass
class LabelImageConfig:
    path: Optional[str] = None         # .npy or .tif label image with the grid's shape
    # label value -> one of vessel | tumour | caf | tam | background
    mapping: Dict[str, str] = field(default_factory=dict)


@dataclass
class WellMixedConfig:
    # The share of the well-mixed tissue that exchanges with blood (or medium) like a vessel
    # voxel: substrates obey dc/dt = p·v·(c_blood − c) − uptake + secretion − decay.
    vessel_fraction: float = 1.0


#: where the initial tissue comes from: the generators (or a label image), files alone
#: (arrays and/or a label image, nothing generated), or one well-mixed compartment (0-D)
TISSUE_KINDS = ("generated", "files", "well_mixed")


@dataclass
class TissueConfig:
    name: str = "default"
    kind: str = "generated"            # generated | files | well_mixed
    vessels: VesselConfig = field(default_factory=VesselConfig)
    tumour: TumourConfig = field(default_factory=TumourConfig)
    stroma: StromaConfig = field(default_factory=StromaConfig)
    macrophages: MacrophageSeedConfig = field(default_factory=MacrophageSeedConfig)
    labels: LabelImageConfig = field(default_factory=LabelImageConfig)
    # field name (a substrate, S/P/R/F/M, or "vessels") -> .npy/.tif array of initial values
    files: Dict[str, str] = field(default_factory=dict)
    well_mixed: WellMixedConfig = field(default_factory=WellMixedConfig)


def validate_tissue(t: TissueConfig, ndim: int, loadable) -> None:
    """``loadable``: the field names a ``tissue.files`` entry may set."""
    choice("tissue.kind", t.kind, TISSUE_KINDS)
    fraction("tissue.well_mixed.vessel_fraction", t.well_mixed.vessel_fraction)
    if t.kind == "well_mixed":
        for key, value in (("tissue.files", t.files), ("tissue.labels.path", t.labels.path)):
            if value:
                fail(key, value, "a well-mixed tissue (tissue.kind=well_mixed) has no maps; "
                     "its initial values are the densities and substrates' initial levels")
    if t.kind == "files" and not (t.labels.path or t.files):
        fail("tissue.files", dict(t.files), "tissue.kind=files builds the tissue from files "
             "alone: give tissue.labels.path or at least one tissue.files entry")
    choice("tissue.vessels.kind", t.vessels.kind, ("network", "points", "none"))
    positive("tissue.vessels.spacing", t.vessels.spacing)
    positive("tissue.vessels.radius", t.vessels.radius)
    choice("tissue.stroma.kind", t.stroma.kind, ("clusters", "bands", "none"))
    positive("tissue.stroma.band_spacing", t.stroma.band_spacing)
    positive("tissue.stroma.band_width", t.stroma.band_width)
    positive("tissue.stroma.cluster_radius", t.stroma.cluster_radius)
    integer_in("tissue.stroma.n_clusters", t.stroma.n_clusters, 0)
    choice("tissue.macrophages.near", t.macrophages.near, ("stroma", "vessels", "uniform"))
    fraction("tissue.tumour.density", t.tumour.density)
    fraction("tissue.tumour.persister_fraction", t.tumour.persister_fraction)
    fraction("tissue.tumour.resistant_fraction", t.tumour.resistant_fraction)
    if t.tumour.persister_fraction + t.tumour.resistant_fraction > 1:
        fail("tissue.tumour.persister_fraction", t.tumour.persister_fraction,
             "persister_fraction + resistant_fraction must not exceed 1")
    fraction("tissue.stroma.caf_density", t.stroma.caf_density)
    fraction("tissue.macrophages.density", t.macrophages.density)
    if len(t.tumour.center) < ndim or not all(
            is_number(v) and 0 <= v <= 1 for v in t.tumour.center[:ndim]):
        fail("tissue.tumour.center", list(t.tumour.center),
             f"needs {ndim} fractions of the grid's extent, each in [0, 1]")
    nonneg("tissue.tumour.radius", t.tumour.radius)
    nonneg("tissue.vessels.margin", t.vessels.margin)
    known = set(loadable)
    for name, path in t.files.items():
        if name not in known:
            fail(f"tissue.files.{name}", path, f"fields that can be loaded are {sorted(known)}")
        if not isinstance(path, str) or not path.strip():
            fail(f"tissue.files.{name}", path, "must be the path of a .npy, .tif or .tiff file")
    if t.labels.path is not None and (not isinstance(t.labels.path, str)
                                      or not t.labels.path.strip()):
        fail("tissue.labels.path", t.labels.path,
             "must be null or the path of a .npy, .tif or .tiff label image")
    roles = ("vessel", "tumour", "caf", "tam", "background")
    for label, role in t.labels.mapping.items():
        if str(label).lstrip("-").isdigit() is False:
            fail(f"tissue.labels.mapping.{label}", role, "keys are integer label values")
        choice(f"tissue.labels.mapping.{label}", role, roles)
    if t.kind == "generated" and t.labels.mapping and not t.labels.path:
        fail("tissue.labels.path", t.labels.path, "a label mapping needs a label image: "
             "tissue.labels.path=<labels .npy, .tif or .tiff>")
