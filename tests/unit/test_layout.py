"""The package's layout holds: no import cycle between its modules, each layer imports only the
layers below it, the domain imports no wire format and no network client, and each way of
speaking to Qdrant is one module of connector/qdrant/wires/ (docs/design.md, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "connector"

# The layers of the package, bottom first: a module imports only its own package and the layers
# below its own (README, "Layout"); every package and top-level module is in one.
TIERS: list[set[str]] = [
    {"errors", "exit_codes", "stages", "paths", "console", "heap", "versions"},
    {"settings", "failpoints"},
    {"domain", "logs", "setting_warnings"},
    {"metrics"},
    {"qdrant", "embedding", "kafka"},
    {"stream", "audit"},
    {"bulk", "schemas", "failures", "producer"},  # producer: the SDK's old name, kept for its users
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


def external_imports(path: Path) -> set[str]:
    """What a module imports from outside the package, by full name: ``from qdrant_client import
    grpc`` is ``qdrant_client.grpc`` (also under TYPE_CHECKING and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and not node.module.startswith("connector"):
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if not alias.name.startswith("connector"))
    return found


# Qdrant's wire formats and the network clients: the wires (connector/qdrant/wires/) decode what
# they read, the domain only compares it. qdrant_client.models stays allowed: its models are data
# (a collection's configuration, a filter). orjson decodes the connector's own input, the events,
# in json_decode alone: no Qdrant wire, no IO.
NOT_IN_THE_DOMAIN = ("qdrant_client.grpc", "grpc", "simdjson", "httpx", "orjson", "aiokafka", "faust",
                     "qdrant_client.AsyncQdrantClient", "qdrant_client.QdrantClient", "qdrant_client.http",
                     "qdrant_client.conversions")
DOMAIN_MAY = {"connector.domain.json_decode": {"orjson"}}


def wire_imports(modules: dict[str, set[str]]) -> list[str]:
    """Imports of a domain module that name a wire format or a network client."""
    return [f"{module} imports {name}" for module, names in sorted(modules.items()) for name in sorted(names)
            if any(name == banned or name.startswith(f"{banned}.") for banned in NOT_IN_THE_DOMAIN)
            and not any(name == allowed or name.startswith(f"{allowed}.") for allowed in DOMAIN_MAY.get(module, ()))]


def domain_imports() -> dict[str, set[str]]:
    return {module_name(path): external_imports(path) for path in (PACKAGE / "domain").rglob("*.py")}


def test_the_domain_imports_no_wire_format_and_no_network_client() -> None:
    assert not wire_imports(domain_imports()), wire_imports(domain_imports())


def test_the_wire_format_check_finds_a_wrong_import() -> None:
    modules = domain_imports()
    planted = {**modules, "connector.domain.verifier": modules["connector.domain.verifier"] | {"simdjson"},
               "connector.domain.schema": modules["connector.domain.schema"] | {"qdrant_client.grpc"},
               "connector.domain.changes": modules["connector.domain.changes"] | {"orjson"}}
    assert wire_imports(planted) == ["connector.domain.changes imports orjson",
                                     "connector.domain.schema imports qdrant_client.grpc",
                                     "connector.domain.verifier imports simdjson"]


def test_each_wire_is_a_module_of_one_package_doing_its_four_jobs() -> None:
    """Models, REST and gRPC: each a module of connector/qdrant/wires/ whose wire encodes, sends,
    retrieves and decodes itself (the REST and gRPC ones hand the models what they cannot write)."""
    from connector.qdrant.wires import WIRES
    from connector.qdrant.wires.base import Wire

    jobs = {"encode", "send", "retrieve", "decode"}
    assert {wire.__module__: wire.name for wire in WIRES} == {
        "connector.qdrant.wires.models": "models", "connector.qdrant.wires.rest": "rest",
        "connector.qdrant.wires.grpc": "grpc"}
    assert Wire.__abstractmethods__ == jobs
    for wire in WIRES:
        assert jobs <= set(vars(wire)), f"{wire.__name__} leaves {jobs - set(vars(wire))} to another"


def names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return ({node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
            | {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for alias in node.names})


def test_the_wire_is_chosen_in_one_place() -> None:
    """Only the wires package names the REST and gRPC wires: the client's factory asks it for one
    (``wire_for``), and the applier and the reads call the interface without asking which it is."""
    wires = PACKAGE / "qdrant" / "wires"
    naming = sorted(str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py")
                    if wires not in path.parents and names_used(path) & {"RestWire", "GrpcWire"})
    assert naming == [], naming
