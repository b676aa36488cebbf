"""The import graph of the deployables: no cycles, and nothing below the CLI imports it.

Every import counts, the lazy ones inside functions too: a function-level import that calls back into the module
that imported it is the same cycle, only hidden (issue 23 named three: config loader/models/quality,
catalog/marts/quality, adyen reports/apis run). What both sides need moves below them instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("finsight", "connectors", "tasks", "snowpark")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the first-party modules it imports anywhere in its body (package __init__s left out)."""
    known = modules()

    def owner(name: str) -> str | None:  # `from finsight import catalog` names finsight.catalog
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name if name not in PACKAGES else None

    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in map(owner, targets) if t and t != name and not name.startswith(f"{t}.")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_back_into_one_that_imports_it() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_lazy_import() -> None:
    """The check above can fail: a function-level import that closes a loop is found."""
    graph = import_graph()
    graph["finsight.catalog"].add("finsight.marts")  # what catalog.mart_vars() once did inside a function
    assert any({"finsight.catalog", "finsight.marts"} <= set(cycle) for cycle in cycles(graph))


def test_lower_layers_never_import_the_cli() -> None:
    graph = import_graph()
    offenders = {m: sorted(t for t in deps if t.startswith("finsight.cli")) for m, deps in graph.items()}
    assert {m: deps for m, deps in offenders.items() if deps and not m.startswith("finsight.cli")} == {}
