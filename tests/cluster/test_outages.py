"""A replicated collection (6 shards x 2 replicas) on a three-node cluster while two of the nodes
are down: the cluster has lost its quorum and some shards every replica, so writes cannot be
applied. The worker holds its windows (nothing dead-lettered, nothing committed as applied), and
once the nodes are back it applies them: exact final state, every offset verified."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.dev.qdrant_cluster import QdrantCluster
from tests.integration.harness import Stack, Worker, all_covered, covered_offsets, produce, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = [pytest.mark.integration, pytest.mark.server]

POINTS = 60


def patch(op: str, **fields: Any) -> tuple[bytes, bytes]:
    ids = fields.get("ids") or [p["id"] for p in fields["points"]]
    body = {"schema_version": 1, "kind": "patch", "collection": "docs", "op": op, **fields}
    return f"docs/{ids[0]}".encode(), json.dumps(body).encode()


async def test_two_nodes_down_hold_the_stream_until_they_are_back(kafka, model_env, tmp_path: Path,
                                                                  qdrant_cluster: QdrantCluster) -> None:
    target = QdrantTarget("grpc", server=qdrant_cluster.nodes[0])
    target.wipe()
    client = target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT),
                             shard_number=6, replication_factor=2)
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=target)
    await stack.create_topics(partitions=2)
    verifications_topic = stack.env["QCC_VERIFICATION_TOPIC"]
    before = [patch("upsert", points=[{"id": i, "vector": [1.0, float(i)], "payload": {"n": i}}])
              for i in range(POINTS)]
    during = [patch("set_payload", ids=[i], payload={"during": True}) for i in range(POINTS)]
    during += [patch("delete", ids=[i]) for i in range(0, POINTS, 10)]
    worker = Worker(stack)
    try:
        sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], before)
        await read_topic(kafka.bootstrap, verifications_topic, until=all_covered(sent), timeout=120)
        qdrant_cluster.kill(1)
        qdrant_cluster.kill(2)
        held = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], during)
        await worker.wait_for_line("retry", timeout=60)  # the worker met the outage and retries
        await asyncio.sleep(5)  # the outage lasts: nothing of the held events may be confirmed meanwhile
        meanwhile = covered_offsets(await read_topic(kafka.bootstrap, verifications_topic, timeout=10))
        assert all(offset in meanwhile[part] for part, offset in sent)  # all there is, read
        assert not any(offset in meanwhile.get(part, set()) for part, offset in held)
        qdrant_cluster.restart(1)
        qdrant_cluster.restart(2)
        verifications = await read_topic(kafka.bootstrap, verifications_topic, until=all_covered(sent + held),
                                         timeout=240)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    assert all(v["verification"]["status"] == "verified" for v in verifications if v["applied_event_count"])
    assert await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=3) == []
    points, _ = client.scroll("docs", limit=POINTS * 2)
    expected = {i: {"n": i, "during": True} for i in range(POINTS) if i % 10}
    assert {int(p.id): p.payload for p in points} == expected
    client.close()
