"""The smallest end-to-end check: a real worker applies patches from the real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qdrant_client import models as qm

from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration


async def test_patches_are_applied_and_confirmed(kafka, model_env, tmp_path: Path, qdrant_target: QdrantTarget) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target)
    await stack.create_topics()
    client = qdrant_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT))
    client.close()
    events = [
        {
            "schema_version": 1,
            "collection": "docs",
            "op": "upsert",
            "points": [{"id": i, "vector": [1, 0, 0, float(i)], "payload": {"n": i}}],
        }
        for i in range(20)
    ] + [
        {"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [i], "payload": {"seen": True}}
        for i in range(20)
    ]
    sent = await produce(
        kafka.bootstrap,
        stack.env["QCC_PATCH_TOPIC"],
        [
            (f"docs/{e.get('ids', [None])[0] if 'ids' in e else e['points'][0]['id']}".encode(), json.dumps(e).encode())
            for e in events
        ],
    )
    worker = Worker(stack)
    try:
        verifications = await read_topic(
            kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent), timeout=90
        )
    except AssertionError:
        print(worker.output()[-5000:])
        raise
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    assert all(v["verification"]["status"] == "verified" for v in verifications)
    client = qdrant_target.client()
    points = {p.id: p.payload for p in client.scroll("docs", limit=100)[0]}
    client.close()
    assert points == {i: {"n": i, "seen": True} for i in range(20)}
