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
    assert "./scripts/bootstrap --tests && .venv/bin/python -m pytest" in readme
    assert "./scripts/bootstrap --tests\n.venv/bin/python -m pytest" in ci
