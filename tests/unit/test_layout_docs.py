"""The layout prose cannot drift from the tiers: docs/design.md's "Layout" list and README's
layout table name every module of connector/, each where it is, in the tier tests/unit/test_layout.py
holds it to, and no module that does not exist."""

from __future__ import annotations

import re

from tests.unit.test_layout import PACKAGE, TIER

ROOT = PACKAGE.parent
# A module or package as the prose names it: `planner`, `wires/`. Other code words in backticks
# (`ConnectorError`, `QCC_FAILPOINTS_DIR`, `wait=true`, `qdrant_client.grpc`) are not names of modules.
NAME = re.compile(r"[a-z][a-z0-9_]*/?")
TOKEN = re.compile(r"`([^`]+)`|([()])")


def modules() -> set[str]:
    """Every module and package of connector/, as a path without suffix: qdrant/wires/rest, qdrant/wires."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        if parts:
            found.add("/".join(parts))
    return found


def named(text: str, package: str = "") -> list[str]:
    """The modules a stretch of prose names, as paths: a name inside the parentheses after a
    package (`wires/` (`rest`, ...)) is that package's; any other, the enclosing one's."""
    names: list[str] = []
    stack = [package]
    opened_by = package  # the package the next "(" belongs to
    for match in TOKEN.finditer(text):
        word, paren = match.groups()
        if paren == "(":
            stack.append(opened_by)
        elif paren == ")":
            if len(stack) > 1:
                stack.pop()
            opened_by = stack[-1]
        elif word is not None and NAME.fullmatch(word):
            path = "/".join(part for part in (stack[-1], word.rstrip("/")) if part)
            names.append(path)
            opened_by = path if word.endswith("/") else stack[-1]
        else:
            opened_by = stack[-1]
    return names


def design_tiers() -> dict[int, list[str]]:
    """docs/design.md's Layout list: tier number -> the modules its item names."""
    text = (ROOT / "docs" / "design.md").read_text()
    layout = text.split("**Layout.**", 1)[1].split("\n\n", 1)[1].split("\n\n", 1)[0]
    items = re.split(r"(?m)^(\d+)\. ", layout)[1:]
    return {int(number): named(item) for number, item in zip(items[::2], items[1::2], strict=True)}


def readme_tiers() -> dict[int, list[str]]:
    """README's layout table: tier number -> the modules its rows name (a package row names itself)."""
    text = (ROOT / "README.md").read_text()
    table = text.split("| tier | package | job |", 1)[1].split("\n\n", 1)[0]
    tiers: dict[int, list[str]] = {}
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].isdigit():
            continue
        package = cells[1].strip("`").removeprefix("connector/").removesuffix("*.py").rstrip("/")
        tiers.setdefault(int(cells[0]), []).extend(([package] if package else []) + named(cells[2], package))
    return tiers


def drift(tiers: dict[int, list[str]], known: set[str]) -> list[str]:
    """What a layout text says that is not so, and the modules it leaves out."""
    wrong = []
    for number, names in sorted(tiers.items()):
        for name in names:
            layer = name.split("/")[0]
            if name not in known:
                wrong.append(f"tier {number} names {name}, which is no module of connector/")
            elif TIER.get(layer, -1) + 1 != number:
                wrong.append(f"tier {number} names {name}, which is in tier {TIER.get(layer, -1) + 1}")
    said = {name for names in tiers.values() for name in names}
    wrong += [f"{name} is named in no tier" for name in sorted(known - said)]
    return wrong


def test_design_md_names_every_module_in_its_tier() -> None:
    assert drift(design_tiers(), modules()) == []


def test_the_readme_table_names_every_module_in_its_tier() -> None:
    assert drift(readme_tiers(), modules()) == []


def test_the_check_finds_a_module_left_out_misplaced_or_made_up() -> None:
    tiers = design_tiers()
    planted = {**tiers, 1: [*tiers[1], "settings"], 2: [], 5: [*tiers[5], "qdrant/wires/soap"]}
    assert drift(planted, modules()) == [
        "tier 1 names settings, which is in tier 2",
        "tier 5 names qdrant/wires/soap, which is no module of connector/",
        "failpoints is named in no tier",
    ]


def test_the_reading_of_the_prose_follows_the_packages() -> None:
    text = "`qdrant/` (`errors`, `wires/` (`base`, `models` (local mode), `rest`), `reads`), `metrics`, `QCC_X`"
    assert named(text) == ["qdrant", "qdrant/errors", "qdrant/wires", "qdrant/wires/base", "qdrant/wires/models",
                           "qdrant/wires/rest", "qdrant/reads", "metrics"]
