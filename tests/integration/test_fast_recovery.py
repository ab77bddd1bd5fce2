"""A worker killed and restarted gets its partitions back at once (static group membership).

Without ``group.instance.id`` the restarted worker is a new member: the broker waits for the
dead member's session timeout before it rebalances, and a worker restarted faster than that
makes no progress at all. With it, the restarted worker takes the dead member's place.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic

pytestmark = pytest.mark.integration

SESSION_TIMEOUT = 30  # a restart that waited for it would show


def patches(first: int, count: int) -> list[tuple[bytes, bytes]]:
    return [(f"docs/{i % 10}".encode(), json.dumps({"schema_version": 1, "collection": "docs", "op": "set_payload",
                                                    "ids": [i % 10], "payload": {"n": i}}).encode())
            for i in range(first, first + count)]


async def test_restart_after_sigkill_recovers_before_the_session_timeout(kafka, model_env, tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.upsert("docs", [qm.PointStruct(id=i, vector=[1, 0]) for i in range(10)])
    client.close()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, extra_env={
        "QCC_GROUP_INSTANCE_ID": "worker-a", "QCC_SESSION_TIMEOUT_SECONDS": str(SESSION_TIMEOUT)})
    await stack.create_topics(partitions=2)
    topic, verifications = stack.env["QCC_PATCH_TOPIC"], stack.env["QCC_VERIFICATION_TOPIC"]
    sent = await produce(kafka.bootstrap, topic, patches(0, 50))
    worker = Worker(stack)
    await read_topic(kafka.bootstrap, verifications, until=all_covered(sent), timeout=120)
    recoveries = []
    for round_ in range(3):
        worker.kill()
        sent += await produce(kafka.bootstrap, topic, patches(100 * (round_ + 1), 50))
        restarted = time.monotonic()
        worker = Worker(stack)
        try:
            await read_topic(kafka.bootstrap, verifications, until=all_covered(sent), timeout=SESSION_TIMEOUT * 3)
        except AssertionError:
            print(worker.output()[-4000:])
            raise
        recoveries.append(time.monotonic() - restarted)
    assert worker.stop() == 0, worker.output()[-3000:]
    print(f"recovery after SIGKILL, restart to caught up: median {statistics.median(recoveries):.1f}s, "
          f"max {max(recoveries):.1f}s ({', '.join(f'{r:.1f}' for r in recoveries)})")
    # Far below the session timeout: the restarted worker did not wait for the dead member to expire.
    assert max(recoveries) < SESSION_TIMEOUT * 2 / 3, recoveries
