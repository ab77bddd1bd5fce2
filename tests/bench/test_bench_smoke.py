"""The benchmark runner at a toy size, so that it cannot rot. Nothing here looks at speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.profile import STAGES
from bench.run import SECTIONS

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[2]


def test_runner_writes_results_report_and_plots(kafka, model_paths, tmp_path: Path) -> None:
    out, report = tmp_path / "results" / "latest.json", tmp_path / "BENCHMARKS.md"
    subprocess.run([sys.executable, "-m", "bench.run", "--size", "tiny", "--bootstrap", kafka.bootstrap,
                    "--out", str(out), "--report", str(report)], cwd=PROJECT, check=True, timeout=900,
                   env={**os.environ, "PYTHONPATH": str(PROJECT)})
    results = json.loads(out.read_text())
    assert set(results["sections"]) == set(SECTIONS)
    assert results["machine"]["cores"] == os.cpu_count()
    patches = results["sections"]["patches"]["modes"]
    assert set(patches) == {"memory", "disk"} and set(patches["memory"]) == {"identical", "distinct", "mixed"}
    assert all(r["connector"]["median"] > 0 and r["connector_vs_naive"]["n"] == 1 for r in patches["memory"].values())
    known = set(STAGES.values()) | {"other (connector and asyncio)"}
    for run in results["sections"]["profile"].values():
        if isinstance(run, dict):  # which stages get samples at this size is chance; what they are is not
            assert run["microseconds_per_event"] and set(run["microseconds_per_event"]) <= known
    text = report.read_text()
    assert "## Headline ratios" in text and "vs naive consumer" in text and "Where the time goes" in text
    for plot in ("patches", "windows", "pages", "backlog"):
        image = tmp_path / "results" / "plots" / f"{plot}.png"
        assert image.read_bytes()[:4] == b"\x89PNG"
        assert f"](results/plots/{plot}.png)" in text
