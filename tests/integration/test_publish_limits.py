"""A record the connector cannot apply never stops the stream because its dead letter is large.

The report: one record of ~900 KB (under QCC_MAX_EVENT_BYTES) was dead-lettered as a JSON
envelope with the original in base64, ~1.2 MB, larger than the producer accepts; publishing
failed, the worker exited, and every restart replayed the same window: a crash loop.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.kafka.publishing import read_dead_letter
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic

pytestmark = pytest.mark.integration


async def test_oversized_records_are_dead_lettered_and_the_stream_goes_on(kafka, model_env, tmp_path: Path) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env)
    await stack.create_topics(partitions=1)
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.upsert("docs", [qm.PointStruct(id=1, vector=[1, 0])])
    client.close()
    broken = (
        b'{"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [1], "payload": {"x": "'
        + b"a" * 900_000
    )
    too_big = b"\xff" * 1_040_000  # over QCC_MAX_EVENT_BYTES and over what the connector may publish
    valid = json.dumps({"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [1],
                        "payload": {"after": True}}).encode()
    sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"],
                         [(b"docs/1", broken), (b"docs/1", too_big), (b"docs/1", valid)])
    worker = Worker(stack)
    try:
        verifications = await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent),
                                         timeout=120)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    consumer = AIOKafkaConsumer(stack.env["QCC_DEAD_LETTER_TOPIC"], bootstrap_servers=kafka.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
        letters = [read_dead_letter(m.value, m.headers) for messages in batch.values() for m in messages]
    finally:
        await consumer.stop()
    assert [(e["source"]["offset"], e["original_form"]) for e, _ in letters] == [(0, "record_value"), (1, "omitted")]
    assert letters[0][1] == broken  # the original, byte for byte, not grown
    assert letters[1][0]["original_value_bytes"] == len(too_big)
    assert letters[1][1] is None
    assert sum(v["applied_event_count"] for v in verifications) == 1
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    assert client.retrieve("docs", [1])[0].payload == {"after": True}
    client.close()
