"""The import graph of the two packages: no circle, and no arrow running back up a run's path.

Read from the source with :mod:`ast`, function-level imports included (a circle hidden inside a
function is still a circle: it only fails later). Imports under ``if TYPE_CHECKING:`` are for the
type checker and never run, so they are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: The harness's stages, lowest first: a module may import its own stage and the ones before it.
#: ``segmodels`` is below all of them and never imports ``bench``.
LAYERS = (
    ("segmodels",),
    ("bench.clock", "bench.data"),
    ("bench.config",),
    ("bench.evidence",),
    ("bench.store",),
    ("bench.plan", "bench.measure"),
    ("bench.execute",),
    ("bench.report",),
    ("bench.arguments", "bench.cli", "bench.gpu_check", "bench.__main__"),
)


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("bench", "segmodels"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(module: str, path: Path) -> set[str]:
    """The project modules ``module`` imports (a ``from pkg import sub`` names the submodule)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {t for t in targets if t in MODULES and t != module}


GRAPH = {module: _imported(module, path) for module, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _layer(module: str) -> int:
    if module == "bench":  # the package itself is empty: importing it (for its path) pulls in nothing
        return 1
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{module} is in no layer of LAYERS: add its package there")


def test_the_graph_is_read_from_every_module():
    # A reader that found nothing would pass every check below.
    assert len(MODULES) > 60
    assert "bench.store.results" in GRAPH["bench.execute.sweep"]
    assert "segmodels.registry" in GRAPH["segmodels.architectures.unet"]


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_circles():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_arrow_runs_back_up_the_path_of_a_run(module: str):
    upward = sorted(t for t in GRAPH[module] if _layer(t) > _layer(module))
    assert upward == [], f"{module} imports a later stage: {upward}"


def test_no_two_modules_share_a_name() -> None:
    """A module's name says its job, so two modules of one name would be two jobs under one name
    (``report/classical.py`` beside ``segmodels/classical.py`` was one)."""
    by_name: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        if path.name not in {"__init__.py", "__main__.py"}:
            by_name.setdefault(path.stem, []).append(module)
    assert {name: found for name, found in by_name.items() if len(found) > 1} == {}
