"""The package's import graph has no cycles, deferred imports included.

Every ``import`` statement of every module of conformance/, derivations/ and reference/ is an
edge, wherever it stands: at module level or inside a function (a deferred import is still a
dependency, only a hidden one). Only ``if TYPE_CHECKING:`` blocks are left out: they never run.
A strongly connected component of more than one module, or a module importing itself, fails the
test with its cycles printed (``conformance.golden → conformance.closed_loop → …``).

Also: the pytest plugin imports nothing from derivations/ (goldens are data), and nothing in
conformance/ imports SymPy or mpmath.

Every check takes the folder that holds the three packages, so that another tree can be checked
from a script: ``assert_acyclic(Path("/some/checkout"))``, ``print(describe(Path(...)))``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGES = ("conformance", "derivations", "reference")
DIST = "optimizer_conformance"  # the installed name: optimizer_conformance.conformance.golden, ...
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # "conformance/golden.py:251"
    deferred: bool  # inside a function (or class body), not at module level


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name (``conformance.golden``; a package is its ``__init__``) → file."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """(node, deferred) for every import statement, skipping ``if TYPE_CHECKING:`` bodies."""

    def walk(node: ast.AST, deferred: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, deferred
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    yield from walk_stmt(stmt, deferred)
            else:
                inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda, ast.ClassDef))
                yield from walk(child, inner)

    def walk_stmt(stmt: ast.AST, deferred: bool):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield stmt, deferred
        else:
            yield from walk(stmt, deferred)

    yield from walk(tree, False)


def _local(name: str) -> str | None:
    """An absolute module name → the graph's name, or None when it is outside the package."""
    if name == DIST or name.startswith(DIST + "."):
        return name[len(DIST) + 1:] or None
    return None


def _resolve(modules: dict[str, Path], name: str | None) -> str | None:
    """The deepest module of the graph that ``name`` (a dotted graph name) names or lies in."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_names(source: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    """The names of the graph's modules an import statement of module ``source`` imports."""
    out = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            local = _local(alias.name)
            out.append(_resolve(modules, local))
        return [m for m in out if m]
    if node.level:
        is_pkg = modules[source].name == "__init__.py"
        base = source.split(".") if is_pkg else source.split(".")[:-1]
        if node.level > 1:
            base = base[: len(base) - (node.level - 1)]
        parent = ".".join(base + ([node.module] if node.module else []))
    else:
        parent = _local(node.module or "")
        if parent is None and node.module == DIST:
            parent = ""
        if parent is None:
            return []
    for alias in node.names:
        sub = f"{parent}.{alias.name}" if parent else alias.name
        out.append(sub if sub in modules else _resolve(modules, parent))  # a submodule, or a name of parent
    return [m for m in out if m]


def import_edges(root: Path) -> list[Edge]:
    """Every intra-package import of the tree under ``root``, module level and deferred."""
    modules = module_files(root)
    edges = []
    for source, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, deferred in _imports(tree):
            where = f"{path.relative_to(root).as_posix()}:{node.lineno}"
            for target in dict.fromkeys(imported_names(source, node, modules)):  # once per statement
                edges.append(Edge(source, target, where, deferred))
    return edges


def import_graph(root: Path) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in module_files(root)}
    for e in import_edges(root):
        graph[e.source].add(e.target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (each sorted), in a deterministic order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """start → … → start, a shortest path back inside the component (breadth first)."""
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & within):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """For every component with a cycle (or a self-import): a shortest cycle through each of its
    modules, rotations of one another dropped."""
    out: list[list[str]] = []
    for comp in strongly_connected(graph):
        if len(comp) == 1 and comp[0] not in graph[comp[0]]:
            continue
        seen: set[frozenset[tuple[str, str]]] = set()
        for start in comp:
            cyc = _shortest_cycle(graph, start, set(comp))
            key = frozenset(zip(cyc, cyc[1:], strict=False))
            if cyc and key not in seen:
                seen.add(key)
                out.append(cyc)
    return out


def describe(root: Path) -> str:
    """The cycles of the tree under ``root``, one per line with where each edge is written."""
    graph = import_graph(root)
    where: dict[tuple[str, str], list[str]] = {}
    for e in import_edges(root):
        where.setdefault((e.source, e.target), []).append(e.where + (" (deferred)" if e.deferred else ""))
    lines = []
    for comp in strongly_connected(graph):
        if len(comp) > 1 or comp[0] in graph[comp[0]]:
            lines.append(f"component of {len(comp)}: {', '.join(comp)}")
    for cyc in cycles(graph):
        lines.append("  " + " → ".join(cyc))
        for a, b in zip(cyc, cyc[1:], strict=False):
            lines.append(f"      {a} → {b}: {'; '.join(where[a, b])}")
    return "\n".join(lines)


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        v = todo.pop()
        for w in graph[v]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


# -- the tests -----------------------------------------------------------------------------------


def test_the_walk_sees_the_package():
    """Sanity: the graph has the modules and the edges it must have (a walk that sees nothing
    would pass the cycle test vacuously); deferred imports count, TYPE_CHECKING ones do not."""
    edges = import_edges(ROOT)
    graph = import_graph(ROOT)
    assert {"conformance.plugin", "conformance.golden", "derivations", "derivations.golden",
            "reference", "reference.adam"} <= set(graph)
    assert "conformance.tolerance" in graph["conformance.golden"]
    assert "reference.adam" in graph["reference.adamw"]
    assert "conformance.tolerance" in graph["derivations.golden"]  # absolute import
    assert any(e.source == "conformance.plugin" and e.deferred for e in edges)
    # plugin.py imports .candidates, .golden and .report under TYPE_CHECKING only at module level
    assert not any(e.source == "conformance.plugin" and not e.deferred for e in edges)


def test_the_checks_fail_where_they_must(tmp_path):
    """On a small made-up tree: a cycle through a deferred import, a self-import, a plugin that
    reaches derivations/ through another module, a deferred SymPy import; a TYPE_CHECKING import
    is no edge."""
    files = {
        "conformance/__init__.py": "",
        "conformance/a.py": "from .b import x\n",
        "conformance/b.py": "def f():\n    from . import a\n",
        "conformance/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import y\n",
        "conformance/d.py": "from .c import z\n",
        "conformance/s.py": "from . import s\n",
        "conformance/plugin.py": "def f():\n    from .d import z\n",
        "conformance/e.py": "class K:\n    def f(self):\n        import mpmath.libmp\n",
        "derivations/__init__.py": "",
        "derivations/g.py": "from optimizer_conformance.conformance import a\n",
        "reference/__init__.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["conformance.c"] == set() and graph["derivations.g"] == {"conformance.a"}
    assert cycles(graph) == [["conformance.a", "conformance.b", "conformance.a"], ["conformance.s", "conformance.s"]]
    with pytest.raises(AssertionError, match="conformance.a → conformance.b → conformance.a"):
        assert_acyclic(tmp_path)
    assert_plugin_free_of_derivations(tmp_path)
    (tmp_path / "conformance/d.py").write_text("from optimizer_conformance.derivations.g import w\n")
    with pytest.raises(AssertionError, match="through other modules"):
        assert_plugin_free_of_derivations(tmp_path)
    with pytest.raises(AssertionError, match=r"conformance/e.py:3 imports mpmath.libmp"):
        assert_conformance_free_of_sympy(tmp_path)


def assert_acyclic(root: Path) -> None:
    """No cycle in the import graph of the tree under ``root`` (the message prints them)."""
    assert not cycles(import_graph(root)), "import cycles (deferred imports included):\n" + describe(root)


def assert_plugin_free_of_derivations(root: Path) -> None:
    graph = import_graph(root)
    direct = sorted(m for m in graph["conformance.plugin"] if m.split(".")[0] == "derivations")
    assert not direct, f"conformance/plugin.py imports {direct}"
    indirect = sorted(m for m in reachable(graph, "conformance.plugin") if m.split(".")[0] == "derivations")
    assert not indirect, f"conformance/plugin.py imports, through other modules, {indirect}"


def assert_conformance_free_of_sympy(root: Path) -> None:
    bad = []
    for name, path in module_files(root).items():
        if name.split(".")[0] != "conformance":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, _ in _imports(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if not node.level else []
            for n in names:
                if n.split(".")[0] in ("sympy", "mpmath"):
                    bad.append(f"{path.relative_to(root).as_posix()}:{node.lineno} imports {n}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    assert_acyclic(ROOT)


def test_the_plugin_imports_nothing_from_derivations():
    assert_plugin_free_of_derivations(ROOT)


def test_conformance_never_imports_sympy_or_mpmath():
    assert_conformance_free_of_sympy(ROOT)
