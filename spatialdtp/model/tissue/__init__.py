"""The initial tissue: generators, files and label images, assembled by :func:`build_tissue`."""
from .build import build_tissue, check_files
from .files import load_array, load_coefficient_maps
from .generators import TAM_REACH

__all__ = ["TAM_REACH", "build_tissue", "check_files", "load_array", "load_coefficient_maps"]
