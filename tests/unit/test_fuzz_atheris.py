"""The atheris fuzzer of the parser and planner, briefly: it must run clean from its seed corpus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("QCC_ATHERIS_RUNS", "8000"))  # more on demand; one fixed seed: a run is repeatable


@pytest.mark.slow
def test_atheris_finds_no_crash(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    from tests.unit.fuzz_parser import seed_corpus

    seeds = seed_corpus(tmp_path / "corpus")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.unit.fuzz_parser",
            f"-atheris_runs={RUNS}",
            "-seed=1",
            "-max_len=2048",
            f"-artifact_prefix={tmp_path}/",
            str(seeds),
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Done" in done.stderr
