"""`demo --events 2000`, as a user runs it, twice: the only dead letters are the records it
breaks on purpose, and the counts of its summary are the ones its story asks for, on both runs
(the number of batches follows the timing of windows and is not compared)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from connector.dev.demo import sample_story

pytestmark = pytest.mark.integration

EVENTS = 2000


def _demo(cwd: Path) -> tuple[int, str]:
    cwd.mkdir()
    result = subprocess.run([sys.executable, "-m", "connector.cli", "demo", "--events", str(EVENTS)], cwd=cwd,
                            capture_output=True, text=True, timeout=600, check=False)
    return result.returncode, result.stdout + result.stderr


def _counts(output: str) -> list[str]:
    summary = output.split("summary", 1)[-1]
    return [line.strip() for line in summary.splitlines()
            if re.match(r"\s*\d+ (records confirmed|events applied)", line)]


def test_the_demo_dead_letters_only_what_it_breaks_on_purpose(tmp_path: Path) -> None:
    meant = sample_story(EVENTS).meant_dead()
    runs = [_demo(tmp_path / f"run-{n}") for n in (1, 2)]
    for code, output in runs:
        assert code == 0, output[-4000:]
        assert "0 not meant" in output, output[-4000:]
        assert f"{sum(meant.values())} dead letters broken on purpose" in output, output[-4000:]
        assert f"{meant['point_not_found']} point_not_found" in output
        assert "meant but not dead-lettered" not in output
    first, second = (_counts(output) for _, output in runs)
    assert len(first) == 2, runs[0][1][-2000:]
    assert first == second
