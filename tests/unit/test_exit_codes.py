"""One table of exit codes (connector/exit_codes.py), the one docs/errors.md documents: no other
module of connector/ spells an exit code as a number or keeps a table of its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from connector import exit_codes

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "connector"
TABLE = PACKAGE / "exit_codes.py"

# the calls that end a process or a command with a code: typer.Exit(n), sys.exit(n), os._exit(n), ...
EXITS = {"Exit", "exit", "_exit", "SystemExit"}


def _is_number(node: ast.expr | None) -> bool:
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int


def spelt_codes(source: str, where: str) -> list[str]:
    """Exit codes written as numbers in ``source``, and names of a table beside the one."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            given = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "code")]
            if name in EXITS and any(_is_number(arg) for arg in given):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Assign) and _is_number(node.value):
            tables = [t.id for t in node.targets if isinstance(t, ast.Name) and re.match(r"EXIT?_", t.id)]
            found += [(node.lineno, f"{name} = {ast.unparse(node.value)}") for name in tables]
    return [f"{where}:{line}: {text}" for line, text in sorted(found)]


def test_no_module_spells_an_exit_code_as_a_number() -> None:
    found = [line for path in sorted(PACKAGE.rglob("*.py")) if path != TABLE
             for line in spelt_codes(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == [], found


def test_the_check_finds_a_code_spelt_as_a_number() -> None:
    planted = ("raise typer.Exit(64)\nsys.exit(code=1)\nos._exit(-9)\nEXIT_BUG = 70\n"
               "raise typer.Exit(EX_USAGE)\nsys.exit(f'a message')\nlimit = 70\n")
    assert [line.split(": ", 1)[1] for line in spelt_codes(planted, "x.py")] == [
        "typer.Exit(64)", "sys.exit(code=1)", "os._exit(-9)", "EXIT_BUG = 70"]


def documented_codes() -> set[int]:
    """The codes of docs/errors.md's table of codes (its first table)."""
    text = (ROOT / "docs" / "errors.md").read_text()
    table = text.split("| code | meaning |", 1)[1].split("\n\n", 1)[0]
    return {int(row.split("|")[1]) for row in table.splitlines() if re.match(r"\| \d+ \|", row)}


def test_the_table_is_the_documented_one() -> None:
    table = {getattr(exit_codes, name) for name in exit_codes.__all__}
    assert table == documented_codes()
    assert len(table) == len(exit_codes.__all__), "two names for one code"
