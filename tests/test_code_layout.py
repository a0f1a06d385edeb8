"""The code's shape: imports between our modules run one way, and modules stay small.

The import graph is read from the source with `ast`, so these tests import nothing they check.
An edge A -> B means running module A runs module B:

- every `import`/`from ... import` of ours anywhere in A counts, inside functions too (a
  function-level import that closes a loop is still a circle, only a later one), and so does
  `importlib.import_module("literal")`;
- imports under `if TYPE_CHECKING:` never run and do not count;
- importing `exporter.formats.h5` runs `exporter/formats/__init__.py` first, so an importer
  outside `exporter.formats` also gets an edge to the package (a module inside it does not: its
  package is already initialised when it runs);
- `from pkg import name` runs `pkg`, and `pkg.name` too when that is a module;
- the lazy tables of `exporter/__init__.py` and `serving/__init__.py` are strings looked up on
  first attribute access (PEP 562), not imports; a registry's computed module name
  (`import_module(f"exporter.formats.{...}")`) cannot be read statically and is not an edge.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GRAPH_PACKAGES = ("exporter", "serving")
SIZED_PACKAGES = ("exporter", "serving", "bench")
MAX_MODULE_LINES = 300
FACADES = ("exporter/__init__.py", "serving/__init__.py")
# What a package facade may import when it is imported: the lazy loader and the typing names.
FACADE_RUNTIME_IMPORTS = {"__future__", "typing", "exporter.lazy", "importlib", "collections.abc"}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Edge:
    target: str
    line: int
    why: str  # "import", "in a function", "package __init__"

    def describe(self, source: Module) -> str:
        where = f"{source.path.relative_to(REPO)}:{self.line}"
        return f"{source.name} -> {self.target} ({where}, {self.why})"


def find_modules(packages=GRAPH_PACKAGES) -> dict[str, Module]:
    """Every module of `packages`, by dotted name (a package by its own name)."""
    modules = {}
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules[".".join(parts)] = Module(".".join(parts), path, is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _ImportCollector(ast.NodeVisitor):
    """For every import that runs: (modules it imports, names that may be submodules too, line,
    inside a function?). `from pkg import name` imports `pkg`, and `pkg.name` if that is a module."""

    def __init__(self, module: Module):
        self.module = module
        self.found: list[tuple[list[str], list[str], int, bool]] = []
        self._depth = 0  # function nesting

    def visit_If(self, node: ast.If):
        if _is_type_checking(node.test):
            for statement in node.orelse:  # only the else branch of `if TYPE_CHECKING` runs
                self.visit(statement)
        else:
            self.generic_visit(node)

    def _function(self, node):
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, node: ast.AST, modules: list[str], maybe_modules: tuple[str, ...] = ()):
        self.found.append((modules, list(maybe_modules), node.lineno, self._depth > 0))

    def visit_Import(self, node: ast.Import):
        self._add(node, [alias.name for alias in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom):
        base = self._absolute_base(node)
        self._add(node, [base], (f"{base}.{alias.name}" for alias in node.names))

    def visit_Call(self, node: ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if (name == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            self._add(node, [node.args[0].value])
        self.generic_visit(node)

    def _absolute_base(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = self.module.name.split(".")
        if not self.module.is_package:
            package.pop()
        package = package[: len(package) - (node.level - 1)]
        return ".".join(package + ([node.module] if node.module else []))


def _known_prefix(name: str, modules: dict[str, Module]) -> str | None:
    """The longest prefix of `name` that is one of our modules (`pkg.mod.func` -> `pkg.mod`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def module_imports(module: Module, modules: dict[str, Module]) -> dict[str, Edge]:
    """Our modules that running `module` runs directly: target -> where (a module-level import
    is shown before one inside a function, as it runs on every import)."""
    collector = _ImportCollector(module)
    collector.visit(ast.parse(module.path.read_text(), str(module.path)))
    edges: dict[str, Edge] = {}

    def add(target: str, line: int, why: str):
        known = edges.get(target)
        runs_on_import = why != "in a function"
        if target != module.name and (known is None or (known.why == "in a function" and runs_on_import)):
            edges[target] = Edge(target, line, why)

    for imported, maybe_modules, line, in_function in collector.found:
        why = "in a function" if in_function else "import"
        names = imported + [name for name in maybe_modules if name in modules]
        for target in filter(None, (_known_prefix(name, modules) for name in names)):
            add(target, line, why)
            # Packages on the way run first, unless the importer is inside them (already running).
            parts = target.split(".")
            for depth in range(1, len(parts)):
                package = ".".join(parts[:depth])
                if not (module.name + ".").startswith(package + "."):
                    add(package, line, "package __init__")
    return edges


def import_graph(modules: dict[str, Module]) -> dict[str, dict[str, Edge]]:
    return {name: module_imports(module, modules) for name, module in modules.items()}


def strongly_connected(graph: dict[str, dict[str, Edge]]) -> list[list[str]]:
    """Tarjan's components with more than one module (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
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
                        components.append(sorted(component))
    return sorted(components)


def shortest_circle(graph, start: str, within: set[str]) -> list[str]:
    """The shortest chain start -> ... -> start through modules of `within` (breadth first)."""
    came_from = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in sorted(graph[node]):
            if successor == start:
                chain = [node]
                while came_from[chain[-1]] is not None:
                    chain.append(came_from[chain[-1]])
                return chain[::-1] + [start]
            if successor in within and successor not in came_from:
                came_from[successor] = node
                queue.append(successor)
    raise AssertionError(f"{start} is on no circle within {sorted(within)}")


def describe_component(graph, modules, component: list[str]) -> str:
    """Each member's shortest circle as `a -> b -> a`, then where each of their edges is."""
    chains = []
    for member in component:
        chain = shortest_circle(graph, member, set(component))
        rotations = {tuple(c) for c in chains}
        start = chain.index(min(chain[:-1]))
        canonical = chain[start:-1] + chain[:start] + [chain[start]]
        if tuple(canonical) not in rotations:
            chains.append(canonical)
    lines = ["  " + " -> ".join(chain) for chain in chains]
    edges = {(a, b) for chain in chains for a, b in pairwise(chain)}
    lines += ["      " + graph[a][b].describe(modules[a]) for a, b in sorted(edges)]
    return "\n".join(lines)


def test_imports_between_our_modules_run_one_way():
    modules = find_modules()
    graph = import_graph(modules)
    components = strongly_connected(graph)
    report = "\n".join(describe_component(graph, modules, c) for c in components)
    if components:
        pytest.fail(f"{len(components)} import circle(s) among our modules:\n{report}", pytrace=False)


def _runtime_imports(module: Module) -> set[str]:
    """Every module (ours or not) that running `module` imports, by dotted name."""
    collector = _ImportCollector(module)
    collector.visit(ast.parse(module.path.read_text()))
    return {name for imported, _, _, _ in collector.found for name in imported}


def test_package_facades_import_only_the_lazy_loader():
    """`import exporter` / `import serving` must stay cheap: the facades and their loader import
    nothing of ours but exporter.lazy, and nothing heavy."""
    by_path = {module.path: module for module in find_modules().values()}
    for facade in (*FACADES, "exporter/lazy.py"):
        extra = _runtime_imports(by_path[REPO / facade]) - FACADE_RUNTIME_IMPORTS
        assert not extra, f"{facade} imports {sorted(extra)} when it is imported; only " \
                          f"{sorted(FACADE_RUNTIME_IMPORTS)} keep `import {facade.split('/')[0]}` cheap"


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom):  # a re-export counts as defining the name
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def test_lazy_tables_name_modules_that_define_the_names():
    """Since the lazy targets are not edges of the graph above, check them here: each names a
    module of ours that defines (or re-exports) the attribute at its top level."""
    modules = find_modules()
    for facade in FACADES:
        tree = ast.parse((REPO / facade).read_text())
        table = next(ast.literal_eval(node.value) for node in tree.body
                     if isinstance(node, ast.Assign)
                     and any(getattr(t, "id", None) == "_LAZY" for t in node.targets))
        for name, home in table.items():
            assert home in modules, f"{facade}: {name!r} -> {home!r}, which is not a module of ours"
            assert name in _top_level_names(modules[home].path), \
                f"{facade}: {name!r} -> {home!r}, which does not define {name!r}"


def test_modules_stay_under_the_size_guide():
    sizes = {}
    for package in SIZED_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path.parent.name == "protos" and path.name.endswith("_pb2.py"):
                continue  # generated by grpcio-tools (make proto), not edited by hand
            sizes[path.relative_to(REPO).as_posix()] = len(path.read_text().splitlines())
    assert len(sizes) > 50, f"found only {len(sizes)} modules under {REPO}"
    over = {path: lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES}
    listing = "\n".join(f"  {path}: {lines} lines"
                        for path, lines in sorted(over.items(), key=lambda item: -item[1]))
    if over:
        pytest.fail(f"{len(over)} module(s) over {MAX_MODULE_LINES} lines:\n{listing}", pytrace=False)


def _graph_of(sources: dict[str, str], tmp_path: Path) -> dict[str, dict[str, Edge]]:
    modules = {}
    for name, text in sources.items():
        is_package = name.endswith("/__init__")
        dotted = name.removesuffix("/__init__").replace("/", ".")
        path = tmp_path / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        modules[dotted] = Module(dotted, path, is_package)
    return {name: module_imports(module, modules) for name, module in modules.items()}


def test_the_checker_sees_function_level_relative_and_package_init_edges(tmp_path):
    """The graph builder itself: each kind of edge the circle test relies on, and the imports
    it must not count."""
    graph = _graph_of({
        "pkg/__init__": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.b\n"
                        "_LAZY = {'f': 'pkg.c'}\n",
        "pkg/a": "def f():\n    from . import b\n    from .sub import x\n",
        "pkg/b": "def g():\n    import pkg.c\nimport pkg.sub.x\nfrom pkg.c import name\n",
        "pkg/c": "import importlib\nimportlib.import_module('pkg.a')\n",
        "pkg/sub/__init__": "from pkg.sub.x import y\n",
        "pkg/sub/x": "from .. import c\nfrom pkg import sub\n",
    }, tmp_path)
    assert set(graph["pkg"]) == set()  # TYPE_CHECKING and the lazy table are not imports
    assert set(graph["pkg.a"]) == {"pkg", "pkg.b", "pkg.sub", "pkg.sub.x"}
    assert graph["pkg.a"]["pkg.b"].why == "in a function"
    assert set(graph["pkg.b"]) == {"pkg.sub.x", "pkg.sub", "pkg.c"}
    assert graph["pkg.b"]["pkg.sub"].why == "package __init__"
    assert (graph["pkg.b"]["pkg.c"].line, graph["pkg.b"]["pkg.c"].why) == (4, "import")
    assert set(graph["pkg.c"]) == {"pkg.a"}
    # `from pkg import sub` runs pkg and pkg.sub by name; importing pkg.c adds no edge to
    # pkg.sub.x's own packages (they are already initialised when it runs)
    assert set(graph["pkg.sub.x"]) == {"pkg", "pkg.c", "pkg.sub"}
    assert set(graph["pkg.b"]) == {"pkg.sub.x", "pkg.sub", "pkg.c"}
    components = strongly_connected(graph)
    assert components == [["pkg.a", "pkg.b", "pkg.c", "pkg.sub", "pkg.sub.x"]]
    assert shortest_circle(graph, "pkg.c", set(components[0])) == ["pkg.c", "pkg.a", "pkg.b", "pkg.c"]
