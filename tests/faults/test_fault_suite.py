"""The fault suite at CI size: the scenarios of ``tests/faults/runner.py`` against the real
broker, on Qdrant's local mode and on the real Qdrant server (REST and gRPC).

QCC_FAULT_RUNS, QCC_FAULT_EVENTS and QCC_FAULT_SEED make it bigger; the large runs are
``python -m tests.faults.runner`` (see docs/faults.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connector.embedding.embedder import Embedder
from connector.settings import Settings
from tests.faults.runner import KILL_KINDS, RunReport, markdown, run_scenario
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

RUNS = int(os.environ.get("QCC_FAULT_RUNS", "1"))
EVENTS = int(os.environ.get("QCC_FAULT_EVENTS", "3000"))
SEED = int(os.environ.get("QCC_FAULT_SEED", "1"))


def _server(qdrant: str, scenario: str, faults: int) -> object:
    return pytest.param(qdrant, scenario, faults, marks=pytest.mark.server, id=f"{scenario}-{qdrant}")


def assert_sound(report: RunReport, faults: int) -> None:
    print(markdown([report]))
    assert report.passed, report.problems
    assert len(report.faults) == faults
    assert report.lost == report.state_differences == report.mismatches == 0
    assert all(f.recovered_seconds is not None for f in report.faults)
    if report.scenario == "kills":
        assert {f.kind for f in report.faults} == set(KILL_KINDS)
        assert not any(f.note for f in report.faults), report.faults  # every failpoint was reached
        # crash-after-confirm exits after a window's verification event and before its offsets
        # are committed, and a run ends only when the group has committed every offset: the
        # window was confirmed again. (Its batch id may differ: the replay can cut other windows.)
        assert report.replayed_offsets > 0


@pytest.mark.parametrize(("scenario", "faults"), [("kills", 4), ("outage", 2), ("disk-full", 1), ("broker-restart", 2)])
async def test_scenario(kafka, model_env, model_paths, tmp_path: Path, scenario: str, faults: int) -> None:
    """On local mode."""
    embedder = Embedder(Settings(model_paths=model_paths))
    for seed in range(SEED, SEED + RUNS):
        report = await run_scenario(scenario, bootstrap=kafka.bootstrap, model_env=model_env,
                                    workdir=tmp_path / str(seed), seed=seed, events=EVENTS, faults=faults,
                                    embedder=embedder)
        assert_sound(report, faults)


async def test_hostile(kafka, model_env, model_paths, tmp_path: Path) -> None:
    """Records that break each stage (not JSON, a wrong vector size, a ~900 KB record, the
    poison-<stage> failpoints) mixed into a stream on local mode: one worker takes them all
    without exiting, each dead-lettered with its code, every offset committed."""
    embedder = Embedder(Settings(model_paths=model_paths))
    report = await run_scenario("hostile", bootstrap=kafka.bootstrap, model_env=model_env, workdir=tmp_path,
                                seed=SEED, events=int(os.environ.get("QCC_FAULT_HOSTILE_EVENTS", "2000")), faults=0,
                                embedder=embedder)
    assert_sound(report, 0)
    assert report.dead_letters_by_code["poison_record"] == 5 * (report.records // 200)  # n // 200 per stage
    assert {"invalid_json", "vector_size_mismatch"} <= set(report.dead_letters_by_code)


# Each of the server's own faults once, the two transports between them; of the worker
# scenarios, kills on gRPC (the CI budget): the other pairings, outage and broker-restart on the
# server, and kills over REST, are in the runner's moderate run (docs/faults.md).
@pytest.mark.parametrize(("server_target", "scenario", "faults"), [
    _server("grpc", "kills", 4), _server("grpc", "server-kill", 3), _server("rest", "server-pause", 3),
], indirect=["server_target"])
async def test_scenario_on_server(kafka, model_env, model_paths, tmp_path: Path, server_target: QdrantTarget,
                                  scenario: str, faults: int) -> None:
    """On the real server: the worker scenarios, and faults of the server itself (SIGKILL and
    restart on the same storage; SIGSTOP for longer than the client timeout, then SIGCONT),
    which run on a server of their own."""
    embedder = Embedder(Settings(model_paths=model_paths))
    for seed in range(SEED, SEED + RUNS):
        report = await run_scenario(scenario, bootstrap=kafka.bootstrap, model_env=model_env,
                                    workdir=tmp_path / str(seed), seed=seed, events=EVENTS, faults=faults,
                                    embedder=embedder, qdrant=server_target.name, server=server_target.server)
        assert_sound(report, faults)
        if scenario.startswith("server-"):
            assert all(f.kind == scenario for f in report.faults)
