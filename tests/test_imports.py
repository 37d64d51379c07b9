"""geovision's import graph: no cycles, and dependencies that point one way.

The graph is built from the source (every ``import`` statement, at module level, in
functions and under ``TYPE_CHECKING``), so a cycle is caught even where Python would only
hit it on a rare code path.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "geovision"

# Stages, bottom to top: a stage may import the ones listed before it, never those after.
LAYERS = [
    {"errors", "formats", "lazy", "atomic", "progress", "yamlfile", "failures", "ownership",
     "locks"},
    {"tasks", "device"},
    {"options"},
    {"geo", "cluster", "synthetic"},
    {"tiling", "data", "models"},
    {"engine", "inference", "evaluation"},
    {"demo", "jobs"},
    {"cli", "__main__"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """``(module, line)`` of every geovision module ``path`` imports."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "geovision":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "geovision":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield (sub if sub in known else node.module), node.lineno


def graph() -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` over geovision's modules."""
    found = modules()
    known = set(found)
    return {name: {dep: line for dep, line in imports(path, known) if dep in known}
            for name, path in found.items()}


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
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
            if len(component) > 1 or v in edges.get(v, {}):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_module_of_geovision_imports_itself_back():
    edges = graph()
    found = cycles(edges)
    detail = "; ".join(
        " <-> ".join(c) + " (" + ", ".join(f"{a}:{edges[a][b]} imports {b}" for a in c
                                             for b in edges[a] if b in c) + ")"
        for c in found)
    assert not found, f"import cycles: {detail}"


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: not in a layer of tests/test_imports.py (add it)")


def test_stages_depend_one_way():
    wrong = [f"{a}:{line} imports {b}" for a, deps in graph().items() for b, line in deps.items()
             if a != "geovision" and b != "geovision" and _layer(b) > _layer(a)]
    assert not wrong, "imports that point up the stages: " + "; ".join(wrong)


@pytest.mark.parametrize(("package", "heavy"), [
    ("geo", "torch"), ("options", "torch"), ("tasks", "torch"), ("formats", "torch"),
    ("device", "torch"),
])
def test_light_modules_do_not_import_heavy_libraries_at_import_time(package, heavy):
    for name, path in modules().items():
        if name != f"geovision.{package}" and not name.startswith(f"geovision.{package}."):
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: lazy imports in functions are fine
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == heavy for n in names), (
                f"{name}:{node.lineno} imports {heavy}")


def test_click_lives_in_the_command_line_only():
    for name, path in modules().items():
        if name.startswith("geovision.cli"):
            continue
        assert "import click" not in path.read_text(), name


BENCHMARKS = PACKAGE.parent / "benchmarks"


def benchmark_imports() -> Iterator[tuple[str, str, str]]:
    """``(script:line, module, name)`` of every geovision name the benchmarks import."""
    for path in sorted(BENCHMARKS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.split(".")[0] == "geovision":
                for alias in node.names:
                    yield f"{path.name}:{node.lineno}", node.module, alias.name


def test_benchmarks_import_names_that_exist():
    """`make bench` imports lazily inside functions: a moved name only fails there, late."""
    import importlib

    found = list(benchmark_imports())
    assert len(found) > 10
    missing = [f"{where}: {module}.{name}" for where, module, name in found
               if not hasattr(importlib.import_module(module), name)
               and importlib.util.find_spec(f"{module}.{name}") is None]
    assert missing == []
