"""kernels/README.md's per-kernel table is what ``benchmarks/kernel_table.py`` prints, and
the script's figures follow its stated models (sm_90 occupancy, benchmarks/traffic.py)."""
import math
import re
import shutil

import pytest

from benchmarks import kernel_table, traffic
from spatialdtp.backends.kernels import block_threads, module_source, parse_signatures


def test_occupancy_follows_the_sm90_register_and_thread_limits():
    # registers are allocated per warp in units of 256 (a multiple of 8 per thread)
    assert kernel_table.occupancy(32, 256) == 1.0
    assert kernel_table.occupancy(33, 256) == 0.75          # 40: 6 blocks of 256
    assert kernel_table.occupancy(45, 256) == 0.625
    assert kernel_table.occupancy(60, 256) == 0.5
    assert kernel_table.occupancy(79, 256) == 0.375
    assert kernel_table.occupancy(128, 256) == 0.25
    assert kernel_table.occupancy(154, 256) == 0.125
    assert kernel_table.occupancy(255, 256) == 0.125
    assert kernel_table.occupancy(16, 64) == 1.0            # 32 blocks of 64 threads
    assert kernel_table.occupancy(16, 32) == 0.5            # the 32-block limit binds


def test_the_latency_bound_fraction_is_littles_law():
    d = kernel_table.DEVICE
    needed = d["bandwidth"] * d["latency"] / d["sms"]
    assert kernel_table.latency_bound_fraction(1.0, needed / 2048) == pytest.approx(1.0)
    assert kernel_table.latency_bound_fraction(0.25, needed / 2048) == pytest.approx(0.25)
    assert kernel_table.latency_bound_fraction(1.0, 100 * needed) == 1.0


def test_every_kernel_has_a_traffic_count_and_a_stated_block_count():
    source = module_source()
    kernels = set(parse_signatures(source))
    assert set(kernel_table.TRAFFIC) == kernels
    assert set(kernel_table.min_blocks(source)) == kernels
    threads = block_threads(source)
    for name, (f32, f64) in kernel_table.min_blocks(source).items():
        for blocks in (f32, f64):       # the bounds leave each thread at least 32 registers
            assert 1 <= blocks <= 65536 // (32 * threads), name


def test_traffic_counts_agree_with_benchmarks_traffic_where_it_models_the_kernel():
    """The per-voxel counts of the table for the reference workload (3D, no-flux, one drug,
    every coefficient a map) are benchmarks/traffic.py's, per voxel."""
    T = kernel_table.TRAFFIC

    def total(name):
        reads, writes, mask, _note = T[name]
        return reads + writes, mask

    shape, kinds = (64, 64, 64), [("no_flux", "no_flux")] * 3
    n = math.prod(shape)
    # neighbours' faces: 3 (n−1)/n per voxel; the table counts 3
    assert total("stencil_apply")[0] == pytest.approx(traffic.stencil_elems(shape, kinds) / n,
                                                      rel=0.01)
    assert total("jacobi_sweep")[0] == pytest.approx(traffic.jacobi_elems(shape, kinds) / n,
                                                     rel=0.01)
    # four substrates and one drug
    assert total("cell_kinetics") == (traffic.reaction_bytes(n, 1, 5) / n, 0)
    per_substep = (traffic.pressure_bytes(n, 1, 4) - traffic.pressure_bytes(n, 1, 2)) / 2 / n
    assert total("transport_pressure_substep")[0] == per_substep
    reads, writes, mask, _ = T["observable_sums"]
    assert (reads + writes) * 8 + mask == traffic.observables_bytes(n, 8, 11, 1) / n
    # the level-0 part of a batched V-cycle: smooth, residual-restrict, prolong-smooth
    flags = {"a_map": True, "D_map": True, "b_map": True}
    coarse = (32, 32, 32)
    m = math.prod(coarse)
    level0 = traffic.vcycle_batched_elems([shape, coarse], kinds, flags) - (m * m + 2 * m)
    assert sum(total(k)[0] for k in ("bmg_smooth", "bmg_residual_restrict",
                                     "bmg_prolong_smooth")) == level0 / n
    assert total("bmg_coarsen")[0] == pytest.approx(
        traffic.multigrid_setup_elems([shape, coarse], kinds, flags) / n - 2 * m * m / n,
        rel=0.01)


def _nvcc_or_skip():
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not on this machine")
    return kernel_table.nvcc_version()


def test_the_readme_table_is_what_the_script_prints():
    """Regenerate with ``python -m benchmarks.kernel_table --write`` after changing a
    kernel, its launch bounds, SDTP_BLOCK_THREADS or the traffic counts."""
    version = _nvcc_or_skip()
    recorded = kernel_table.readme_table()
    assert recorded is not None, "kernels/README.md has no kernel-table markers"
    m = re.search(r"`nvcc (\S+) --resource-usage", recorded)
    assert m, "the table's heading names the nvcc that made it"
    if m.group(1) != version:
        pytest.skip(f"the table was made with nvcc {m.group(1)}, this machine has {version}")
    assert recorded == kernel_table.table(), (
        "kernels/README.md's kernel table is stale: run python -m benchmarks.kernel_table "
        "--write")


def test_no_kernel_spills_at_its_launch_bounds():
    """The stated minimum blocks were chosen so that ptxas does not spill (nvcc; NVRTC's
    ceilings are tests/test_backends.py's)."""
    _nvcc_or_skip()
    for real in ("float", "double"):
        for name, f in kernel_table.resource_usage(real).items():
            assert f["spill_stores"] == f["spill_loads"] == 0, (real, name, f)
