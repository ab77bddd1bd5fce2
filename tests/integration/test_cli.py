"""The command line on the real broker: produce validates and publishes, tail shows the results."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from qdrant_client import models as qm

from tests.integration.harness import Stack, Worker, all_covered, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration


async def test_produce_worker_tail(kafka, model_env, tmp_path: Path, qdrant_target: QdrantTarget) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target)
    await stack.create_topics()
    client = qdrant_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.close()
    lines = [
        {"collection": "docs", "op": "upsert", "points": [{"id": 1, "vector": [1, 2], "payload": {"a": 1}}]},
        {"collection": "docs", "op": "set_payload", "ids": [1], "payload": {"b": 2}},
        {"collection": "docs", "op": "no_such_op", "ids": [1]},
        {"collection": "docs", "op": "set_payload", "ids": [404], "payload": {"c": 3}},
    ]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    env = {**os.environ, **stack.env}
    refused = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "connector.cli", "produce", str(source)],
                                      env=env, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 65, refused.stderr  # EX_DATAERR: two lines are not events, so none is sent
    assert "line 3: not sent" in refused.stderr
    assert "line 5, column 1: not sent: not JSON" in refused.stderr
    assert "nothing sent: 2 lines of" in refused.stderr
    assert await records_in(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"]) == 0, "a refused file was sent in part"
    source.write_text("\n".join(json.dumps(line) for line in lines if line["op"] != "no_such_op") + "\n")
    produced = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "connector.cli", "produce", str(source)],
                                       env=env, capture_output=True, text=True, timeout=60, check=False)
    assert produced.returncode == 0, produced.stderr
    sent = [
        tuple(int(x) for x in line.split("[", 1)[1].replace("]@", " ").split())
        for line in produced.stderr.splitlines()
        if "@" in line and "not sent" not in line
    ]
    assert len(sent) == 3
    worker = Worker(stack)
    try:
        verifications = await read_topic(
            kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent), timeout=90
        )
    finally:
        worker.stop()
    dead = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=3)
    assert [d["error"]["code"] for d in dead] == ["point_not_found"]
    client = qdrant_target.client()
    try:
        assert [p.payload for p in client.retrieve("docs", [1, 404])] == [{"a": 1, "b": 2}]
    finally:
        client.close()
    count = str(len(verifications) + len(dead))
    tail = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "connector.cli", "tail", "--from-beginning", "--count", count], env=env,
        capture_output=True, text=True, timeout=60, check=False)
    assert tail.returncode == 0, tail.stderr
    assert "verified" in tail.stdout
    assert "point_not_found" in tail.stdout
    assert "DEAD" in tail.stdout


async def records_in(bootstrap: str, topic: str) -> int:
    """How many records a topic holds (the sum of its partitions' end offsets)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def test_an_event_the_broker_refuses_is_named_by_its_line(kafka, tmp_path: Path) -> None:
    """An event within QCC_MAX_EVENT_BYTES that the topic's max.message.bytes (1 MiB) refuses:
    the line and the two limits, exit 78; it is not blamed on the broker being away (69)."""
    stack = Stack(kafka.bootstrap, tmp_path, {})
    await stack.create_topics()
    source = tmp_path / "big.jsonl"
    source.write_text(json.dumps({"collection": "docs", "op": "set_payload", "ids": [1],
                                  "payload": {"blob": "x" * 2_000_000}}) + "\n")
    env = {**os.environ, **stack.env, "QCC_MAX_EVENT_BYTES": "4000000"}
    result = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "connector.cli", "produce", str(source)],
                                     env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 78, result.stderr
    assert "line 1: the broker refused the event as too large" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
