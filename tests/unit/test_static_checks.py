"""The static checks run with the tests: ruff on the whole repository, mypy (strict) on the
package. Both read their settings from pyproject.toml; a finding fails the test with the
tool's own report. A tool that is not installed skips its test (the ``test`` extra installs
both)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed: pip install -e '.[test]'")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff check:\n{result.stdout}{result.stderr}"


def test_mypy_strict_finds_nothing() -> None:
    result = _run("mypy")  # files, strictness and per-library settings: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"
