"""`demo --events 2000`, as a user runs it: the only dead letters are the records it breaks on
purpose, and the counts of its summary are the ones its story asks for (a pure function of the
seed: tests/unit/test_demo_story.py), so every run of the seed says the same (the number of
batches follows the timing of windows and is not compared)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from connector.dev.demo import sample_story

pytestmark = pytest.mark.integration

EVENTS = 2000


def _counts(output: str) -> list[str]:
    summary = output.split("summary", 1)[-1]
    return [line.strip() for line in summary.splitlines()
            if re.match(r"\s*\d+ (records confirmed|events applied)", line)]


def test_the_demo_dead_letters_only_what_it_breaks_on_purpose(tmp_path: Path) -> None:
    story = sample_story(EVENTS)
    meant = story.meant_dead()
    total, dead = len(story.records), sum(meant.values())
    codes = ", ".join(f"{n} {code}" for code, n in sorted(meant.items()))
    result = subprocess.run([sys.executable, "-m", "connector.cli", "demo", "--events", str(EVENTS)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert _counts(output) == [f"{total} records confirmed of {total}",
                               (f"{total - dead} events applied; {dead} dead letters broken on purpose ({codes}); "
                               "0 not meant")], output[-4000:]
