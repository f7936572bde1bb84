"""The package's layers point one way, and no module imports itself back (stdlib ``ast``).

The data path is config → tissue and state → stepper → observables and run file →
studies and viewer, and the folders of ``spatialdtp/`` are its layers, lowest first:

    base      spatialdtp (the version), spatialdtp.resources, spatialdtp.units
    config    spatialdtp.config       the schema and its checks
    model     spatialdtp.model        the biology on the grid: fields, cells, substrates,
                                      treatment, tissue
    numerics  spatialdtp.numerics     implicit solver, cell integrator, cell transport
    backends  spatialdtp.backends     where the hot loops run (NumPy, kernels on CPU/GPU)
    run       spatialdtp.run          simulation, observables, summary, run file
    studies   spatialdtp.studies      objective, sweeps, optimisation, experiments
    viewer    spatialdtp.viewer       napari (a peer of studies: neither imports the other)
    faces     spatialdtp.cli, .api, .summarize, .experiments, .__main__

A module may import its own layer and the layers below it, never one above. Every import
counts, including those inside functions (a lazy import is still a dependency). Hydra is
imported only by ``spatialdtp.cli``; OmegaConf only there and in ``spatialdtp.config``
(typed configs from run files); napari and Qt only in the viewer; CuPy only in the
backends.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spatialdtp"

LAYERS = ("base", "config", "model", "numerics", "backends", "run", "studies", "viewer",
          "faces")
RANK = {name: i for i, name in enumerate(LAYERS)}
PEERS = {frozenset({"studies", "viewer"})}          # same height, no imports either way
BASE = ("spatialdtp", "spatialdtp.resources", "spatialdtp.units")
FACES = ("spatialdtp.cli", "spatialdtp.api", "spatialdtp.summarize", "spatialdtp.experiments",
         "spatialdtp.__main__", "spatialdtp.help", "spatialdtp.params")
# third-party packages and the only layers (or modules) allowed to import them
CONFINED = {"hydra": ("spatialdtp.cli",),
            "omegaconf": ("spatialdtp.cli", "spatialdtp.config"),
            "napari": ("spatialdtp.viewer",), "qtpy": ("spatialdtp.viewer",),
            "cupy": ("spatialdtp.backends",)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in BASE:
        return "base"
    if module in FACES:
        return "faces"
    top = module.split(".")[1]
    if top not in RANK:
        raise AssertionError(f"{module}: not in any layer; add its folder to LAYERS "
                             f"(or its module to BASE/FACES) in {__file__}")
    return top


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) of every import in the file, relative ones resolved; for
    ``from M import x`` it is ``M.x`` when that is a module, else ``M``."""
    known = modules()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub if sub in known else target, node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    """Edges between spatialdtp modules; an import of one's own parent package does not
    count (Python has always imported the parents of a module before the module)."""
    known = modules()
    edges = {m: set() for m in known}
    for m, path in known.items():
        for target, _ in imports(m, path):
            if target in known and target != m and not m.startswith(target + "."):
                edges[m].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_cycle():
    assert cycles(graph()) == []


def test_cycle_detection_finds_a_cycle():
    """The check itself: a two-module loop and a three-module loop are both found."""
    edges = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": set()}
    assert sorted(cycles(edges)) == [["a", "b"], ["c", "d", "e"]]


def test_layers_import_only_themselves_and_lower_layers():
    wrong = []
    for m, path in modules().items():
        own = layer_of(m)
        for target, line in imports(m, path):
            if not target.startswith("spatialdtp"):
                continue
            other = layer_of(target)
            if RANK[other] > RANK[own] or frozenset({own, other}) in PEERS and own != other:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {own} imports "
                             f"{other} ({target})")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("library", sorted(CONFINED))
def test_third_party_frameworks_stay_in_their_layer(library):
    allowed = CONFINED[library]
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line}: {m} imports {target}"
             for m, path in modules().items()
             for target, line in imports(m, path)
             if target.split(".")[0] == library
             and not any(m == a or m.startswith(a + ".") for a in allowed)]
    assert wrong == [], "\n".join(wrong)


def test_every_module_belongs_to_a_layer():
    for m in modules():
        assert layer_of(m) in RANK
