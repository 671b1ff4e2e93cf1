"""lrcore's modules import one another one way: the import graph has no cycle (issue 20).

Every module under lrcore/ is parsed with ``ast``; every ``import``/``from ... import`` at any level
(inside functions and ``if TYPE_CHECKING`` blocks too) is an edge, relative imports resolved. ``from
pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``. Importing ``a.b.c``
also runs the ``__init__`` of each package on the way that is not a package of the importer itself
(those are already being imported), so those are edges as well.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "lrcore"


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(name: str, mods: dict) -> bool:
    return name in mods and mods[name].name == "__init__.py"


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if _is_package(name, mods) else name.rpartition(".")[0]
        targets = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for a in node.names:
                    sub = f"{source}.{a.name}"
                    targets.append(sub if sub in mods else source)
        ancestors = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
        if _is_package(name, mods):
            ancestors.add(name)
        for target in targets:
            if target not in mods:
                continue  # outside lrcore
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                step = ".".join(parts[:k])
                if step in mods and step not in ancestors and step != name:
                    graph[name].add(step)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(u):
        color[u] = GREY
        stack.append(u)
        for v in sorted(graph[u]):
            if color[v] == GREY:
                return stack[stack.index(v):] + [v]
            if color[v] == WHITE and (c := visit(v)):
                return c
        stack.pop()
        color[u] = BLACK
        return None

    for u in sorted(graph):
        if color[u] == WHITE and (c := visit(u)):
            return c
    return None


def test_graph_sees_function_local_and_relative_imports():
    graph = import_graph()
    assert "lrcore.base" in graph and "lrcore.kernels.formulas" in graph
    assert "lrcore.kernels.formulas" in graph["lrcore.program"]
    assert "lrcore.program" in graph["lrcore.kernels.cuda"]  # a function-local ``from .. import program``
    assert "lrcore.schedules" in graph["lrcore.compat.torch"]  # ``from .. import schedules as S``


def test_lrcore_import_graph_has_no_cycle():
    graph = import_graph()
    print("\nlrcore import graph:")
    for u in sorted(graph):
        print(f"  {u} -> {', '.join(sorted(graph[u])) or '(nothing in lrcore)'}")
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_base_is_at_the_bottom():
    """``lrcore.base`` (the Schedule base class, text and dict forms) imports only ``_validate``."""
    assert import_graph()["lrcore.base"] <= {"lrcore._validate"}
