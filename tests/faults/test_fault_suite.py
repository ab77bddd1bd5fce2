"""The fault suite at CI size: every scenario of ``tests/faults/runner.py`` against the real broker.

QCC_FAULT_RUNS, QCC_FAULT_EVENTS and QCC_FAULT_SEED make it bigger; the large run is
``python -m tests.faults.runner`` (see docs/faults.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connector.embedder import Embedder
from connector.settings import Settings
from tests.faults.runner import KILL_KINDS, markdown, run_scenario

pytestmark = pytest.mark.integration

RUNS = int(os.environ.get("QCC_FAULT_RUNS", "1"))
EVENTS = int(os.environ.get("QCC_FAULT_EVENTS", "3000"))
SEED = int(os.environ.get("QCC_FAULT_SEED", "1"))


@pytest.mark.parametrize(("scenario", "faults"), [("kills", 4), ("outage", 2), ("disk-full", 1), ("broker-restart", 2)])
async def test_scenario(kafka, model_env, model_paths, tmp_path: Path, scenario: str, faults: int) -> None:
    embedder = Embedder(Settings(model_paths=model_paths))
    for seed in range(SEED, SEED + RUNS):
        report = await run_scenario(scenario, bootstrap=kafka.bootstrap, model_env=model_env,
                                    workdir=tmp_path / str(seed), seed=seed, events=EVENTS, faults=faults,
                                    embedder=embedder)
        print(markdown([report]))
        assert report.passed, report.problems
        assert len(report.faults) == faults
        assert report.lost == report.state_differences == report.mismatches == 0
        assert all(f.recovered_seconds is not None for f in report.faults)
        if scenario == "kills":
            assert {f.kind for f in report.faults} == set(KILL_KINDS)
            assert not any(f.note for f in report.faults), report.faults  # every failpoint was reached
            assert report.replayed_batches > 0  # the crash after confirming replays a window, same batch id
