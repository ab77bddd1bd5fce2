"""The package's layout holds: no import cycle between its modules, and each layer imports only
the layers below it (docs/design.md, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "connector"

# a layer -> the layers (top-level modules or packages of connector) it may import
ALLOWED = {
    "domain": {"domain", "errors", "settings"},
    "qdrant": {"qdrant", "domain", "errors", "settings", "metrics", "dev"},
    "stream": {"stream", "qdrant", "domain", "errors", "settings", "metrics", "dev", "logs", "paths"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The connector modules a module imports (also under TYPE_CHECKING and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("connector"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # from connector import metrics
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("connector"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m not in (name, "connector")}
            for name, path in modules.items()}


def test_no_import_cycle() -> None:
    edges = graph()
    # a package's __init__ re-exports its modules; an edge into a package means its modules
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            raise AssertionError(f"import cycle: {' -> '.join([*path[path.index(node):], node])}")
        if node in done:
            return
        path.append(node)
        for target in sorted(edges[node]):
            if not (node.startswith(f"{target}.")):  # a module importing its own package's __init__
                visit(target)
        path.pop()
        done.add(node)

    for module in sorted(edges):
        visit(module)


def test_each_layer_imports_only_the_layers_below() -> None:
    wrong = []
    for module, targets in graph().items():
        layer = module.split(".")[1] if module.count(".") else ""
        if layer not in ALLOWED:
            continue
        for target in targets:
            top = target.split(".")[1] if target.count(".") else ""
            if top not in ALLOWED[layer]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, wrong


def test_every_package_declares_its_public_surface() -> None:
    missing = [str(init.relative_to(PACKAGE.parent)) for init in PACKAGE.rglob("__init__.py")
               if init.parent != PACKAGE and "__all__" not in init.read_text()]
    assert not missing, missing
