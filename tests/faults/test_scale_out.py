"""Scale-out: workers join and leave one consumer group mid-stream; nothing lost.

On the real Qdrant server the workers are separate processes (``python -m connector.cli
worker``), 1 -> 3 -> 1, run by the fault runner's ``scale-out`` scenario with its full check.
Qdrant's embedded local mode lets one process open a storage folder, so there the workers
are several real Faust apps in this process sharing one Qdrant client; each has its own
consumer in the group, so joins and leaves are real Kafka rebalances.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.embedding.embedder import Embedder
from connector.kafka.admin import ensure_topics
from connector.settings import Settings
from connector.stream.app import create_app
from tests.faults.runner import markdown, run_scenario
from tests.integration.harness import all_covered, covered_offsets, produce, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration
WINDOW = 50
EVENTS = int(os.environ.get("QCC_FAULT_EVENTS", "3000"))


def worker_log_tails(folder: Path, lines: int = 40) -> str:
    """The last lines of each worker's log, without the readiness probe's requests."""
    def tail(log: Path) -> str:
        kept = [line for line in log.read_text(errors="replace").splitlines() if "GET http" not in line]
        return "\n".join(kept[-lines:])
    return "\n".join(f"--- {log.name}, last lines\n{tail(log)}" for log in sorted(folder.rglob("worker-*.log")))


# one transport: the rebalances are the same over gRPC, and this test is one of the slower ones
@pytest.mark.parametrize("server_target", [pytest.param("rest", marks=pytest.mark.server)], indirect=True)
async def test_worker_processes_go_one_three_one_on_the_server(kafka, model_env, model_paths, tmp_path: Path,
                                                                 server_target: QdrantTarget) -> None:
    """Two worker processes join a running one mid-stream, then two leave on SIGTERM (the
    first among them): no record lost, the state equals the reference model, every offset
    confirmed and committed, and each of them did work."""
    report = await run_scenario("scale-out", bootstrap=kafka.bootstrap, model_env=model_env, workdir=tmp_path,
                                seed=int(os.environ.get("QCC_FAULT_SEED", "1")), events=EVENTS, faults=0,
                                embedder=Embedder(Settings(model_paths=model_paths)), qdrant=server_target.name,
                                server=server_target.server)
    print(markdown([report]))
    if not report.passed:  # what each worker was doing: shown with the failure
        print(worker_log_tails(tmp_path))
    assert report.passed, report.problems
    assert [f.kind for f in report.faults] == ["join", "leave"]
    assert all(f.recovered_seconds is not None for f in report.faults)
    assert report.lost == report.state_differences == report.mismatches == 0


async def test_workers_join_and_leave_mid_stream(kafka, model_paths, tmp_path: Path) -> None:
    os.environ.update(
        {
            "QCC_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "QCC_CONSUMER_GROUP": "scale-test",
            "QCC_PATCH_TOPIC": "s-patches",
            "QCC_REEMBED_TOPIC": "s-reembeds",
            "QCC_VERIFICATION_TOPIC": "s-verifications",
            "QCC_DEAD_LETTER_TOPIC": "s-dead",
            "QCC_SESSION_TIMEOUT_SECONDS": "6",
            "QCC_HTTP_PORT": "0",
            "QCC_MODEL_PATHS": json.dumps(model_paths),
            "QCC_WINDOW_MAX_EVENTS": str(WINDOW),
            "QCC_WINDOW_MAX_WAIT_SECONDS": "0.2",
        }
    )
    base = Settings()
    await ensure_topics(base, partitions=4)
    client = AsyncQdrantClient(path=str(tmp_path / "qdrant"))
    await client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    events = [{"schema_version": 1, "collection": "docs", "op": "upsert",
               "points": [{"id": i % 200, "vector": [1, i], "payload": {"seq": i}}]} for i in range(8000)]
    apps = []

    async def start_worker(n: int):
        app = create_app(base.model_copy(update={"data_dir": tmp_path / f"state-{n}"}), client=client)
        app.finalize()
        await app.start()
        apps.append(app)
        return app

    first = await start_worker(1)
    second = await start_worker(2)
    producing = asyncio.create_task(
        produce(
            kafka.bootstrap,
            base.patch_topic,
            [(f"docs/{i % 200}".encode(), json.dumps(e).encode()) for i, e in enumerate(events)],
        )
    )
    try:
        await read_topic(kafka.bootstrap, base.verification_topic, until=lambda rs: len(rs) >= 10, timeout=90)
        third = await start_worker(3)  # joins mid-stream: a rebalance
        await read_topic(kafka.bootstrap, base.verification_topic, until=lambda rs: len(rs) >= 40, timeout=90)
        await first.stop()  # leaves mid-stream: another rebalance
        apps.remove(first)
        sent = await producing
        verifications = await read_topic(kafka.bootstrap, base.verification_topic, until=all_covered(sent), timeout=180)
        assert third.consumer.assignment()
        assert second.consumer.assignment()
    finally:
        for app in apps:
            await app.stop()
    confirmations: dict[tuple[int, int], int] = {}
    for v in verifications:
        for partition, offsets in covered_offsets([v]).items():
            for offset in offsets:
                confirmations[(partition, offset)] = confirmations.get((partition, offset), 0) + 1
    twice = sum(1 for n in confirmations.values() if n > 1)
    assert twice <= 2 * 4 * WINDOW  # two rebalances, at most one replayed window per partition each
    payloads = {p.id: p.payload["seq"] for p in (await client.scroll("docs", limit=500))[0]}
    await client.close()
    assert payloads == {pid: max(i for i in range(8000) if i % 200 == pid) for pid in range(200)}
