"""The project's import graph, read from source: every import, at module level or inside a
function (a cycle hidden by a function-level import is still a cycle), except those under
`if TYPE_CHECKING:`, which never run."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PACKAGES = ("flows", "tasks", "deployments", "infra", "bench")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(root, path)] = path
    return found


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name `path` imports at run time (`from a import b` gives `a` and `a.b`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """Project module -> the project modules it imports (packages' __init__ included)."""
    modules = project_modules(root, packages)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        graph[module] = {
            name for name in imported_names(path, module) if name in modules and name != module
        }
    return graph


def external_imports(root: Path, module: str) -> set[str]:
    """Top-level names of what `module` imports from outside the project."""
    path = project_modules(root)[module]
    return {name.split(".")[0] for name in imported_names(path, module)} - set(PACKAGES)


def _is_test_module(module: str) -> bool:
    name = module.rpartition(".")[2]
    return name.startswith("test_") or name.endswith("_test")


def imports_of_test_modules(
    root: Path, packages: Iterable[str] = (*PACKAGES, "tests")
) -> list[str]:
    """Each import of a test module (test_*.py, *_test.py) or of a conftest, anywhere in the
    project or its tests, as "importer imports imported". Whatever two test modules share
    belongs in tests/support/; a conftest holds fixtures and hooks, which pytest finds by itself.
    A bare `import test_flows` (pytest puts test folders on sys.path) counts too."""
    modules = project_modules(root, packages)
    test_names = {module.rpartition(".")[2] for module in modules if _is_test_module(module)}
    found: set[str] = set()
    for module, path in modules.items():
        for name in imported_names(path, module):
            parts = name.split(".")
            for end, part in enumerate(parts, start=1):
                if part == "conftest" or part in test_names:
                    found.add(f"{module} imports {'.'.join(parts[:end])}")
                    break
    return sorted(found)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found
