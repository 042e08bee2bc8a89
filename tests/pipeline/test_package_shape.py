"""routing/pipeline reads top to bottom: no import cycle, no dead machinery."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from routing.pipeline import RoutingContext, RoutingIntent
from routing.pipeline.intent import Constraints

PACKAGE = Path(__file__).resolve().parents[2] / "routing" / "pipeline"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[_module(path)] = {m for m in found if m.startswith("routing.pipeline")}
    return graph


def test_no_module_of_the_package_imports_itself_back() -> None:
    graph = _imports()
    graph.pop("routing.pipeline")  # the package's re-exports
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        assert module not in visiting, " -> ".join([*visiting, module])
        if module in done or module not in graph:
            return
        visiting.append(module)
        for target in sorted(graph[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_memo_step_machinery_and_dead_code_are_gone() -> None:
    names = {p.stem for p in PACKAGE.rglob("*.py")}
    assert "scoring" not in names and "bench" not in names and "routing" not in names
    assert not hasattr(RoutingIntent, "apply_step")
    assert not hasattr(RoutingIntent, "step_origin")
    assert not hasattr(Constraints, "allows_zone")
    assert "today" not in {f.name for f in dataclasses.fields(RoutingContext)}
    for path in (PACKAGE / "reconcilers").glob("*.py"):
        text = path.read_text()
        assert ".memo(" not in text, path.name
