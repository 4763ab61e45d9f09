"""The layer rules of ARCHITECTURE.md as data, and a checker that applies them to any source tree.

The checker reads imports with `ast` (never by importing the code), so it sees every import: at
module level, inside functions, under `if TYPE_CHECKING:`, absolute and relative. An import
`from a.b import c` counts as an import of the module `a.b.c` when that module exists, else of `a.b`.

Rules are written about layer *names* and module *prefixes*, not about the modules that exist
today: a rule about a package that does not exist yet (say `service/data/`) holds vacuously and
applies as soon as the package appears. Every module must belong to a layer, so a new loose module
has to be placed in the table before it can be merged.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Layer -> the module prefixes that form it (a prefix covers itself and its submodules; a name
# ending in ":" covers that module only). The longest matching prefix wins.
LAYERS: dict[str, tuple[str, ...]] = {
    "entry": ("service:", "service.app", "service.cli", "service.serving"),  # wiring and console scripts
    "runtime": ("service.runtime",),  # what a running service holds, handed to web/
    "web": ("service.web",),  # the only Flask code; domain errors -> HTTP in one table
    "workbench": ("service.workbench",),  # dry runs, scenario checks and content checks for informaticians
    "hooks": ("service.hooks",),  # CDS Hooks protocol, no Flask
    "operations": ("service.operations",),  # FHIR $apply operations, no Flask
    "data": ("service.data",),  # prefetch and FHIR-server data for hooks and $apply
    "cards": ("cards",),  # CDS cards from the engine's result model
    # content IO beside the engine; `content_source` and `publish` are its modules before the move
    "content": ("service.content",),
    "guidance": ("service.guidance",),  # rule pages gathered from the content
    "engine": ("service.engine",),  # pure $apply
    "auth": ("service.auth",),  # trusted clients and their JWTs
    "feedback": ("service.feedback",),  # feedback store
    "fhir": ("service.fhir",),  # the only `requests` code
    "base": ("service.config", "service.errors", "service.logtext", "service.logcontext", "service.metrics",
             "service.jsonlimits"),
}

# Layer -> the layers it may import (besides itself). Read as "depends on": every arrow points
# down, which `layer_cycles(MAY_IMPORT)` checks, so an allowed import never goes up.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "entry": frozenset(LAYERS) - {"entry"},
    "runtime": frozenset({"hooks", "operations", "data", "content", "engine", "auth", "feedback", "fhir", "base"}),
    "web": frozenset({"runtime", "workbench", "hooks", "operations", "guidance", "auth", "feedback", "fhir", "base"}),
    "workbench": frozenset({"hooks", "operations", "data", "cards", "content", "guidance", "engine", "fhir", "base"}),
    "hooks": frozenset({"data", "cards", "engine", "feedback", "fhir", "base"}),
    "operations": frozenset({"data", "cards", "engine", "fhir", "base"}),
    "data": frozenset({"engine", "fhir", "base"}),
    "cards": frozenset({"engine", "guidance"}),  # the engine's model, and rule page paths
    "content": frozenset({"engine", "fhir", "base"}),
    "guidance": frozenset({"engine", "base"}),
    "engine": frozenset({"base"}),  # nothing of web/hooks/operations/data/cards/fhir/content
    "auth": frozenset({"fhir", "base"}),
    "feedback": frozenset({"base"}),
    "fhir": frozenset({"base"}),
    "base": frozenset(),
}

# Packages whose insides are private: a module outside one imports only the package itself (its
# `__init__`, the public face), never `package.submodule`.
PUBLIC_FACES: tuple[str, ...] = ("service.engine",)


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} (line {self.line})"


def modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the given top-level packages under root."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_package(name: str, path: Path) -> bool:
    return path.name == "__init__.py"


def _bound_names(path: Path) -> set[str]:
    """Names a package's `__init__` binds at top level (so `from package import name` means them,
    not a submodule of the same name)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def imports(name: str, path: Path, known: Mapping[str, Path]) -> list[Edge]:
    """The imports of one module that land in `known` modules, resolved to the module imported."""
    package = name if _is_package(name, path) else name.rpartition(".")[0]
    edges: list[Edge] = []
    seen: set[str] = set()

    def _bound(package_name: str) -> set[str]:
        path = known[package_name]
        return _bound_names(path) if path.name == "__init__.py" else set()

    def target(module: str) -> str | None:
        # The module itself, or the nearest enclosing known package (`from service import x` where
        # x is a name, not a module, imports `service`).
        while module:
            if module in known:
                return module
            module = module.rpartition(".")[0]
        return None

    def add(module: str, line: int) -> None:
        resolved = target(module)
        if resolved is not None and resolved != name and resolved not in seen:
            seen.add(resolved)
            edges.append(Edge(name, resolved, line))

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)), key=lambda n: n.lineno
    ):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                submodule = candidate in known and not (module in known and alias.name in _bound(module))
                add(candidate if submodule else module, node.lineno)
    return edges


def graph(root: Path, packages: Iterable[str]) -> list[Edge]:
    known = modules(root, packages)
    return [edge for name, path in known.items() for edge in imports(name, path, known)]


def layer_of(module: str) -> str | None:
    best, length = None, -1
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            exact = prefix.endswith(":")
            prefix = prefix.rstrip(":")
            covers = module == prefix or (not exact and module.startswith(prefix + "."))
            if covers and len(prefix) > length:
                best, length = layer, len(prefix)
    return best


def unplaced(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if layer_of(n) is None)


def layer_violations(edges: Iterable[Edge]) -> list[Edge]:
    """Imports from a layer to one it may not import (up, or sideways between peers)."""
    bad = []
    for edge in edges:
        src, dst = layer_of(edge.importer), layer_of(edge.imported)
        if src is None or dst is None or src == dst:
            continue
        if dst not in MAY_IMPORT[src]:
            bad.append(edge)
    return bad


def private_imports(edges: Iterable[Edge]) -> list[Edge]:
    """Imports of a package's insides from outside it (callers use its `__init__`)."""
    bad = []
    for edge in edges:
        for face in PUBLIC_FACES:
            inside = edge.importer == face or edge.importer.startswith(face + ".")
            if not inside and edge.imported.startswith(face + "."):
                bad.append(edge)
    return bad


def cycles(adjacency: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import loops of a directed graph: every strongly connected component with more than one
    node, or a node importing itself (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    nodes = set(adjacency) | {m for targets in adjacency.values() for m in targets}
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(adjacency.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adjacency.get(child, ())))))
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
                if len(component) > 1 or node in set(adjacency.get(node, ())):
                    found.append(sorted(component))
    return sorted(found)


def module_cycles(edges: Iterable[Edge]) -> list[list[str]]:
    adjacency: dict[str, set[str]] = {}
    for edge in edges:
        adjacency.setdefault(edge.importer, set()).add(edge.imported)
    return cycles(adjacency)


def check(root: Path, packages: Iterable[str] = ("service", "cards")) -> dict[str, list]:
    """Every finding of the layer rules on the tree under root, by kind (empty lists: clean)."""
    packages = tuple(packages)
    edges = graph(root, packages)
    return {
        "unplaced modules": unplaced(modules(root, packages)),
        "imports across layers": [str(e) for e in layer_violations(edges)],
        "imports of a package's insides": [str(e) for e in private_imports(edges)],
        "import loops": module_cycles(edges),
    }
