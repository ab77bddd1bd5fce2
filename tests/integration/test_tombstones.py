"""Tombstones on a real broker and worker: a record without a value keyed collection/point-id
deletes that point, verified like any delete; one whose key names no point is dead-lettered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qdrant_client import models as qm

from tests.integration.harness import Stack, read_topic, stream_through, upserts
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration


@only_targets("local", "grpc")
async def test_a_tombstone_deletes_its_point_and_is_verified(kafka, model_env, tmp_path: Path,
                                                              qdrant_target: QdrantTarget) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target)
    await stack.create_topics(partitions=1)
    client = qdrant_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.close()
    records: list[tuple[bytes | None, bytes | None]] = [*upserts(0, 6), (b"docs/2", None), (b"docs/99", None),
                                                        (b"not a point", None), (b"docs/4", None)]
    verifications, _ = await stream_through(stack, records)
    dead = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=3)
    assert [(d["error"]["code"], d["source"]["offset"]) for d in dead] == [("empty_record", 8)]
    assert "collection/point-id" in dead[0]["error"]["message"]
    applied = [v for v in verifications if v["applied_event_count"]]  # the dead letter's batch applies nothing
    assert all(v["verification"]["status"] == "verified" for v in applied), json.dumps(verifications)[:3000]
    assert sum(v["operations"].get("delete", 0) for v in verifications) == 3  # docs/99 is a delete of nothing
    client = qdrant_target.client()
    try:
        assert sorted(p.id for p in client.scroll("docs", limit=100)[0]) == [0, 1, 3, 5]
    finally:
        client.close()
