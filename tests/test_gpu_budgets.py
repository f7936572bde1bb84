"""What one coupled step costs the GPU: kernel launches, host synchronisations, allocations.

Counted by the CuPy device double (a real GPU has no such counters, so this test runs on
the double only) on ``experiment=bench_tissue3d`` at 16³, float32, dt = 10 min: 5
substrates (oxygen, glucose, HGF, chemokine, drug; HGF and the drug hindered by CAFs, so
their D is a map), 1 drug, 4 moving cell types, d = 3 axes, multigrid levels 16³ → 8³ →
4³ (V = 2 levels with a V-cycle step, the 4³ = 64 cells inverted densely), backward Euler,
no Picard iteration, no fixed boundary faces.

A step's cost is ``per_step + per_iteration × (PCG iterations of its five solves)``; the
ceilings below are what the code does now, counted from its code path (not measured):

per PCG iteration (solver.py ``_pcg``: one stencil, one V-cycle, four dot products)
  kernels   stencil 1 + per V-cycle level (Jacobi 1, residual 1, restrict 1, prolong 1,
            Jacobi 2) 6·V                                                     = 13
  syncs     float() of the 4 dot products p·q, r·r, q·z, r·z                  =  4
  array ops dots 4 × (product, sum) 8; α p, x +=, α q, r −= 4; p *= β, p += z 2;
            V-cycle: first sweep from 0 per level V, dense coarsest solve 1   = 17
  allocs    the 4 zero-dimensional sums                                       =  4
  (the initial V-cycle plus it − 1 in the loop make it V-cycles, and the last iteration
  skips q·z, r·z, the p update: those −2 syncs/allocs and −6 array ops per solve are in
  per_step)

per step
  kernels   2 half steps × (cell_kinetics, transport_max_jump, 4 transport sub-steps) 12,
            per substrate (coefficients, the L(c) stencil) 2 × 5 = 10, observable_sums 1
                                                                              = 23
  syncs     per solve: ‖rhs‖ and ‖r‖ (max, dot each) 4, initial r·z 1, −2 (last
            iteration) = 3 × 5 = 15; the solver's input checks min(a) × 5 and min(D) × 2
            = 7; transport max jump × 2; observables: tumour peak, the sums, the finite
            check 3                                                           = 27
  array ops per solve 115 (right-hand side 4, two norms 10, δ = 0 1, face scaling d,
            mass 3, Jacobi weights L·(2 + 4d), coarse mass and faces V·(d² + d + 1),
            coarsest dense inverse 4 + 6d, r/‖r‖ 1, PCG fixed −3, c_new 3, c_lin 2, state
            write 1) × 5 = 575; fine faces: D map 1 + 4d = 13 × 2, scalar D: d × 3 = 35;
            min(a) × 5; the drug's exposure 4; cells 2 × (max jump, 4 copies) = 10;
            observables: niche mask and tumour peak 5, ball dilation (2 copies, zeros,
            25 shifted ORs × 2) 53, sums 1, finite check 1                    = 689
  allocs    per solve 45 (L(c) 1, norms 6, min(a) 1, Jacobi diagonals L, coarse levels
            V·(d² + d), coarsest 4 + d, initial r·z 1, −2, c_new 1, c_lin 2, packed
            coefficients 1) × 5 = 225; faces: D map (min, 2 per axis) 7 × 2, scalar D
            (1 per axis) 3 × 3 = 23; drug exposure 2; transport max × 2; observables 5 +
            dilation 3 + sums 1 + finite check 1                              = 262

These are ceilings: the solver redesign (issue 12) should lower them; lower the table with
it, so that a regression fails here.
"""
import pytest

from conftest import DOUBLE

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(DOUBLE is None, reason="the counters are the device double's")]

#: counter -> (per step, per PCG iteration); derivation in the module docstring
BUDGET = {
    "kernel_launches": (23, 13),
    "host_syncs": (27, 4),
    "array_launches": (689, 17),
    "allocations": (262, 4),
}

SHAPE = (16, 16, 16)
STEPS = 3


def test_a_coupled_step_stays_within_its_launch_sync_and_allocation_budget(record_property):
    import sys

    from conftest import ROOT
    sys.path.insert(0, str(ROOT))
    from benchmarks import problems
    from spatialdtp.backends import get_backend
    from spatialdtp.run.simulation import Simulation

    sim = Simulation(problems.load("tissue3d", SHAPE), get_backend("cupy"))
    sim.step()                      # first-step allocations (buffers, packed parameters)
    assert [lev.shape for lev in sim.solver.levels] == [(16, 16, 16), (8, 8, 8), (4, 4, 4)]
    figures = []
    for _ in range(STEPS):
        DOUBLE.reset_counters()
        sim.step()
        got = DOUBLE.snapshot()
        iterations = sum(sim.solver_iterations.values())
        # what the derivation assumes of this step: one transport sub-step per moving type
        assert DOUBLE.kernel_counts["transport_substep"] == 2 * 4
        assert all(it > 0 for it in sim.solver_iterations.values())
        figures.append({"iterations": iterations, **got})
        for counter, (per_step, per_iteration) in BUDGET.items():
            ceiling = per_step + per_iteration * iterations
            assert got[counter] <= ceiling, (
                f"{counter}: {got[counter]} in one step with {iterations} PCG iterations; "
                f"the budget is {per_step} + {per_iteration} per iteration = {ceiling}")
    record_property("gpu_step_counts", figures)
    print("per-step counts on bench_tissue3d 16³:", figures)
