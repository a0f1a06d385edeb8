"""Our import graph, read from the source with `ast` (nothing it describes is imported).

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

REPO = Path(__file__).resolve().parents[1]
GRAPH_PACKAGES = ("exporter", "serving")


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


def runtime_imports(module: Module) -> set[str]:
    """Every module (ours or not) that running `module` imports, by dotted name."""
    collector = _ImportCollector(module)
    collector.visit(ast.parse(module.path.read_text()))
    return {name for imported, _, _, _ in collector.found for name in imported}
