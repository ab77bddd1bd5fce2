"""Windows are applied one at a time, in order, while the agent collects and parses the next
(connector/stream/pipeline.py): a window taken ahead is never committed before it is applied
and confirmed, however long the window before it waits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from qdrant_client import models as qm

from connector.dev.spawn import free_port
from tests.integration.harness import (
    Stack,
    Worker,
    all_covered,
    covered_offsets,
    metric_samples,
    produce,
    read_topic,
    upserts,
)
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

WINDOW = 20


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offset of partition 0 (-1: none yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    found = offsets.get(TopicPartition(topic, 0))
    return found.offset if found is not None else -1


async def committed_reaches(bootstrap: str, group: str, topic: str, offset: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (now := await committed(bootstrap, group, topic)) < offset:
        assert time.monotonic() < deadline, f"committed {now}, expected {offset}"
        await asyncio.sleep(0.3)



async def test_windows_taken_ahead_wait_uncommitted_behind_a_stalled_window(kafka, model_env, tmp_path: Path) -> None:
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    target = QdrantTarget("local", path=tmp_path / "qdrant")
    port = free_port()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=target, extra_env={
        "QCC_WINDOW_MAX_EVENTS": str(WINDOW), "QCC_WINDOW_MAX_WAIT_SECONDS": "0.2",
        "QCC_FAILPOINTS_DIR": str(failpoints), "QCC_HTTP_PORT": str(port), "QCC_HTTP_HOST": "127.0.0.1"})
    await stack.create_topics(partitions=1)
    client = target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.close()
    topic, group = stack.env["QCC_PATCH_TOPIC"], stack.env["QCC_CONSUMER_GROUP"]
    verifications = stack.env["QCC_VERIFICATION_TOPIC"]
    worker = Worker(stack)
    try:
        first = await produce(kafka.bootstrap, topic, upserts(0, WINDOW))
        await read_topic(kafka.bootstrap, verifications, until=all_covered(first), timeout=90)
        await committed_reaches(kafka.bootstrap, group, topic, WINDOW)

        (failpoints / "qdrant-unavailable").touch()  # the next window retries until it is removed
        rest = await produce(kafka.bootstrap, topic, upserts(WINDOW, 5 * WINDOW))
        # The agent has taken the stalled window and parsed the next one behind it, and the stalled
        # one has been retried for longer than Faust's commit interval (QCC_COMMIT_INTERVAL_SECONDS,
        # 0.5 s here: it commits whatever it sees acknowledged).
        queued = ("qdrant_connector_windows_queued", (("topic", topic),))
        await metric_samples(port, until=lambda found: found.get(queued) == 1, timeout=90)
        await worker.wait_for_line("; retry 4 in", timeout=60)  # 0.2 + 0.4 + 0.8 + 1.6 s of retries
        assert await committed(kafka.bootstrap, group, topic) == WINDOW, worker.output()[-3000:]

        (failpoints / "qdrant-unavailable").unlink()
        published = await read_topic(kafka.bootstrap, verifications, until=all_covered(first + rest), timeout=90)
        await committed_reaches(kafka.bootstrap, group, topic, 6 * WINDOW)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    # Applied and confirmed one window after another, in offset order.
    starts = [min(covered_offsets([v])[0]) for v in published if covered_offsets([v]).get(0)]
    assert starts == sorted(starts)
    client = target.client()
    try:
        points = client.retrieve("docs", list(range(6 * WINDOW)), with_vectors=True)
    finally:
        client.close()
    assert sorted(p.id for p in points) == list(range(6 * WINDOW))
