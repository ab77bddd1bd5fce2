"""``audit`` on a real broker and a real worker: a clean run with a dead letter, a replay after a
crash, a read-back mismatch (failpoint write-behind), and a verification record lost (a gap)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from qdrant_client import models as qm

from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic, upserts
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration


def audit(stack: Stack, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "connector.cli", "audit", "--json", "--to", "end", *args],
                            env={**os.environ, **stack.env, **(env or {})}, capture_output=True, timeout=120,
                            check=False)
    assert result.returncode in (0, 1), result.stderr.decode()[-3000:]
    return result.returncode, json.loads(result.stdout)


def problems(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The partitions that are not proven, with only what is wrong with them (assertion messages)."""
    keys = ("gaps", "mismatches", "missing_dead_letters", "unverified", "replays_not_verified")
    return [{"topic": p["topic"], "partition": p["partition"], "range": (p["from_offset"], p["to_offset"]),
             **{k: p[k] for k in keys if p.get(k)}} for p in report["partitions"] if any(p.get(k) for k in keys)]


def totals(report: dict[str, Any], key: str) -> int:
    return sum(p[key] if isinstance(p[key], int) else len(p[key]) for p in report["partitions"]
               if p["topic"].startswith("patches-"))


async def copy_topic_without(bootstrap: str, source: str, target: str, dropped: int) -> dict[str, Any]:
    """Copy ``source`` into ``target`` leaving out its record number ``dropped``; returns that record."""
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    messages = []
    try:
        while batch := await consumer.getmany(timeout_ms=2000):
            messages += [m for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i, message in enumerate(messages):
            if i != dropped:
                await producer.send_and_wait(target, message.value, key=message.key)
    finally:
        await producer.stop()
    return dict(json.loads(messages[dropped].value))


async def test_audit_proves_the_trail_and_names_what_breaks_it(kafka, model_env, tmp_path: Path) -> None:
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    target = QdrantTarget("local", path=tmp_path / "qdrant")
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=target,
                  extra_env={"QCC_WINDOW_MAX_EVENTS": "20", "QCC_FAILPOINTS_DIR": str(failpoints)})
    await stack.create_topics(partitions=2)
    client = target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.close()
    topic, verifications = stack.env["QCC_PATCH_TOPIC"], stack.env["QCC_VERIFICATION_TOPIC"]

    # a clean run, one record dead-lettered: complete
    worker = Worker(stack)
    try:
        sent = await produce(kafka.bootstrap, topic, [*upserts(0, 40), (b"docs/1", b"not json")])
        await read_topic(kafka.bootstrap, verifications, until=all_covered(sent), timeout=120)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    code, report = audit(stack)
    assert code == 0, problems(report)
    assert totals(report, "applied") == 40
    assert sum(p["dead_lettered"].get("invalid_json", 0) for p in report["partitions"]) == 1

    # a crash after the verification event, before the commit: the restart replays, still complete
    (failpoints / "crash-after-confirm").touch()
    crashing = Worker(stack)
    more = await produce(kafka.bootstrap, topic, upserts(40, 20))
    assert crashing.process.wait(timeout=120) == 137, crashing.output()[-3000:]
    (failpoints / "crash-after-confirm").unlink()
    worker = Worker(stack)
    try:
        await read_topic(kafka.bootstrap, verifications, until=all_covered(sent + more), timeout=120)
        await worker.wait_for_line(" applied: docs", timeout=120)  # the replayed window, applied again
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    code, report = audit(stack)
    assert code == 0, problems(report)
    assert totals(report, "replayed") > 0, report

    # another writer between a batch and its read-back: a mismatch, named
    (failpoints / "write-behind").touch()
    worker = Worker(stack)
    try:
        tampered = await produce(kafka.bootstrap, topic, upserts(100, 5))
        await read_topic(kafka.bootstrap, verifications, until=all_covered(tampered), timeout=120)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
        (failpoints / "write-behind").unlink()
    code, report = audit(stack)
    assert code == 1, report
    assert {(p, o) for p, o in tampered} & {(p["partition"], o) for p in report["partitions"]
                                             for a, b in p["mismatches"] for o in range(a, b + 1)}

    # a verification record lost: the audit of a copy of the topic without it names the gap
    copy = f"{verifications}-copy"
    lost = await copy_topic_without(kafka.bootstrap, verifications, copy, dropped=0)
    code, report = audit(stack, env={"QCC_VERIFICATION_TOPIC": copy})
    assert code == 1
    gaps = {(p["partition"], o) for p in report["partitions"] for a, b in p["gaps"] for o in range(a, b + 1)}
    lost_offsets = {(r["partition"], o) for r in lost["ranges"] for o in range(r["first_offset"], r["last_offset"] + 1)}
    assert lost_offsets <= gaps, (lost_offsets, gaps)
