"""The package's import graph has no circle (#23.6): every `import agebatch…` and
`from agebatch… import …` in agebatch/, at module level or inside a function, is an arrow."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of agebatch/ under root and the agebatch modules it imports."""
    modules = {}
    for path in (root / "agebatch").rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("agebatch"):
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    found.add(child if child in modules else str(node.module))
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("agebatch")}
        graph[name] = {module for module in found if module in modules and module != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or round a longer circle."""
    reach = {name: set(deps) for name, deps in graph.items()}
    changed = True
    while changed:  # the transitive closure: small enough (about 80 modules) to iterate
        changed = False
        for deps in reach.values():
            more = set().union(*(reach[d] for d in deps)) - deps if deps else set()
            if more:
                deps |= more
                changed = True
    groups = {frozenset(m for m in reach[name] if name in reach[m]) | {name} for name in reach}
    return sorted(sorted(g) for g in groups if len(g) > 1)


def test_the_import_graph_has_no_circle() -> None:
    graph = import_graph(ROOT)
    assert "agebatch.predict.model" in graph["agebatch.predict.device"]  # the arrow that stays
    assert len(graph) > 50
    assert circles(graph) == []


def test_the_check_sees_a_circle(tmp_path: Path) -> None:
    """The check can fail: two modules that import each other, one of them inside a function."""
    package = tmp_path / "agebatch"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from agebatch.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from agebatch import a\n")
    (package / "c.py").write_text("import agebatch.a\n")
    graph = import_graph(tmp_path)
    assert graph["agebatch.c"] == {"agebatch.a"}
    assert circles(graph) == [["agebatch.a", "agebatch.b"]]
