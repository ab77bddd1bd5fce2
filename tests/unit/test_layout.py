"""The package's layout holds: no import cycle between its modules, and each layer imports only
the layers below it (docs/design.md, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "connector"

# The layers of the package, bottom first: a module imports only its own package and the layers
# below its own (README, "Layout"); every package and top-level module is in one.
TIERS: list[set[str]] = [
    {"errors", "paths", "failpoints", "console", "heap"},
    {"settings"},
    {"domain", "logs", "setting_warnings"},
    {"metrics"},
    {"qdrant", "embedding", "kafka"},
    {"stream", "audit"},
    {"bulk", "schemas", "exit_codes", "producer"},  # producer: the SDK's old name, kept for its users
    {"dev"},  # development tools: only the command line (the demo) imports them
    {"cli"},
]
TIER = {layer: rank for rank, layer in enumerate(TIERS) for layer in TIERS[rank]}


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


def layer_of(module: str) -> str:
    """connector.stream.window.items -> stream; connector.cli -> cli."""
    return module.split(".")[1]


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Imports that go sideways or up the tiers, and modules in no tier."""
    wrong = []
    for module, targets in edges.items():
        if module == "connector":  # the package's __init__: its version only
            continue
        layer = layer_of(module)
        if layer not in TIER:
            wrong.append(f"{module} is in no tier of TIERS")
            continue
        wrong += [f"{module} imports {target}" for target in targets
                  if layer_of(target) != layer and TIER.get(layer_of(target), len(TIERS)) >= TIER[layer]]
    return wrong


def test_each_layer_imports_only_the_layers_below() -> None:
    assert not violations(graph()), violations(graph())


def test_the_layering_check_finds_a_wrong_import() -> None:
    edges = graph()
    assert violations({**edges, "connector.qdrant.apply": {"connector.dev.spawn"}}) == [
        "connector.qdrant.apply imports connector.dev.spawn"]
    assert violations({**edges, "connector.kafka.admin": {"connector.qdrant.errors"}})  # a sibling of its tier
    assert violations({**edges, "connector.newlayer": set()}) == ["connector.newlayer is in no tier of TIERS"]


def test_only_the_command_line_imports_the_dev_tools() -> None:
    importers = {layer_of(m) for m, targets in graph().items() for t in targets
                 if layer_of(t) == "dev" and layer_of(m) != "dev"}
    assert importers <= {"cli"}, importers


def test_every_package_declares_its_public_surface() -> None:
    missing = [str(init.relative_to(PACKAGE.parent)) for init in PACKAGE.rglob("__init__.py")
               if init.parent != PACKAGE and "__all__" not in init.read_text()]
    assert not missing, missing


def test_the_sdks_former_name_still_imports() -> None:
    import importlib
    import sys

    import pytest

    from connector.kafka.producer import ChangeProducer

    sys.modules.pop("connector.producer", None)
    with pytest.warns(DeprecationWarning, match="connector.kafka.producer"):
        former = importlib.import_module("connector.producer")
    assert former.ChangeProducer is ChangeProducer
