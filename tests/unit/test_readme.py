"""The README's settings table names every setting, and its commands are the CI's."""

from __future__ import annotations

from pathlib import Path

from connector.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`QCC_{name.upper()}`" not in readme]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    in_readme = next(line for line in readme.splitlines() if line.startswith("./scripts/bootstrap --tests && "))
    command = in_readme.removeprefix("./scripts/bootstrap --tests && ")
    assert command.startswith(".venv/bin/python -m pytest")
    assert f"./scripts/bootstrap --tests\n{command}\n" in ci


def test_the_command_table_is_the_cli() -> None:
    """Every command in the README's table exists, and every command of the CLI is in the table."""
    from connector.cli import cli

    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Command line", 1)[1].split("\n\n", 2)[1]
    documented = {line.split("`")[1].split()[0] for line in table.splitlines() if line.startswith("| `")}
    commands = {command.name or command.callback.__name__ for command in cli.registered_commands
                if command.callback is not None}
    assert documented == commands


def test_the_metrics_table_is_the_registry() -> None:
    """Every metric the worker exposes is in the README's table, and the table names no other."""
    from connector.metrics import REGISTRY

    exposed = set()
    for family in REGISTRY.collect():
        exposed.add(f"{family.name}_total" if family.type == "counter" else family.name)
    table = (ROOT / "README.md").read_text().split("### Metrics (`/metrics`)", 1)[1].split("\n\n", 2)[1]
    documented = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert documented == exposed


def test_the_readme_leaves_the_benchmark_figures_to_benchmarks_md() -> None:
    """Measured ratios and rates live in BENCHMARKS.md (generated with them); the README links there."""
    import re

    readme = (ROOT / "README.md").read_text()
    figures = re.findall(r"\d[\d.,]*[-–]?[\d.,]*×|\d[\d,.]* (?:events|texts|upserts|rows|windows|points)/s", readme)
    assert figures == []
    assert "(BENCHMARKS.md#headline-ratios)" in readme
