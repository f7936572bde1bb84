"""spatialdtp's benchmark suite: ``python -m benchmarks`` (see benchmarks/README.md).

Modules: :mod:`.problems` (the reference problems, Hydra presets ``bench_*``),
:mod:`.coupled` (whole coupled steps: throughput, phases, hot operations, output writing),
:mod:`.substrate_only` (implicit diffusion–decay–uptake, peers' benchmark),
:mod:`.traffic` (the bytes each operation must move), :mod:`.measure` (clocks, copy
bandwidth, peak memory, the backends compared), :mod:`.suite` (the plan and its run),
:mod:`.report` (JSON, Markdown, PNG, README), :mod:`.machine` (machine, versions, commit).
"""
