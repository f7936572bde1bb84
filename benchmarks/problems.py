"""The reference problems: Hydra presets ``conf/experiment/bench_*.yaml``, built on a backend.

``section2d``  a 2D section, 1024² at 20 µm, all substrates and cell types, a schedule
``tissue3d``   a 3D tissue block, 64³ … 512³ at 20 µm, all substrates and cell types
``substrates3d``  diffusion–decay–uptake only, 100³ at 10 µm, 1 or 4 substrates,
               implicit steps of 0.01 and 6 min (peers' benchmark problem)

Grids larger than :data:`MAX_BUILD_VOXELS` are periodic tilings of the preset's tissue
built on a grid 2^k times smaller per axis: building a tissue (vessel network, stroma) runs
on the host in NumPy and takes minutes at 512³, while the step it feeds is what is timed.
"""
from __future__ import annotations

import math

import numpy as np

PRESETS = {"section2d": "bench_section2d", "tissue3d": "bench_tissue3d",
           "substrates3d": "bench_substrates3d"}

#: the largest grid whose tissue is built directly (4096², 256³)
MAX_BUILD_VOXELS = 2**24


def load(problem: str, shape=None, precision: str = "float32", extra=()):
    """The composed config of ``problem`` at ``shape`` and ``precision``."""
    from spatialdtp.api import load_config

    overrides = [f"experiment={PRESETS[problem]}", f"backend.precision={precision}",
                 "run.progress=false", "run.plot=false"]
    if shape is not None:
        overrides.append(f"grid.shape=[{','.join(str(int(n)) for n in shape)}]")
    return load_config(overrides + list(extra))


def tile_shape(shape, max_voxels: int = MAX_BUILD_VOXELS):
    """The grid the tissue is built on: ``shape`` halved on every axis until it fits."""
    shape = tuple(int(n) for n in shape)
    k = 0
    while math.prod(n // 2**k for n in shape) > max_voxels and \
            all(n % 2 ** (k + 1) == 0 and n // 2 ** (k + 1) >= 8 for n in shape):
        k += 1
    return tuple(n // 2**k for n in shape)


def build(cfg, backend, max_build_voxels: int = MAX_BUILD_VOXELS):
    """A :class:`~spatialdtp.run.simulation.Simulation` of ``cfg`` on ``backend``, and a note
    saying how its tissue was made (built, or tiled from a smaller build)."""
    import copy

    from spatialdtp.backends import get_backend
    from spatialdtp.run.simulation import Simulation

    shape = tuple(cfg.grid.shape)
    tile = tile_shape(shape, max_build_voxels)
    if tile == shape:
        return Simulation(cfg, backend), "built"
    small_cfg = copy.deepcopy(cfg)
    small_cfg.grid.shape = list(tile)
    small = Simulation(small_cfg, get_backend("numpy"))
    reps = tuple(n // t for n, t in zip(shape, tile))
    state = np.tile(np.asarray(small.state.data), (1,) + reps)
    vessels = np.tile(np.asarray(small.state.vessels), reps)
    info = {"treatment": small.treatment.get_state()}
    del small
    sim = Simulation(cfg, backend, restore=(0, 0.0, {"state": state, "vessels": vessels}, info))
    return sim, f"tiled {'x'.join(map(str, reps))} from {'x'.join(map(str, tile))}"
