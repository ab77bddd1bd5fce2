"""``audit`` on a real broker and a real worker: a clean run with a dead letter, a replay after a
crash, a read-back mismatch (failpoint write-behind), and a verification record lost (a gap);
what it cannot prove (a topic nobody consumed, a group name with a typo, ``--since`` after the
last commit, a missing topic), and ``--wait`` with the lag gauge while a worker catches up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from qdrant_client import models as qm

from connector.dev.spawn import free_port
from tests.integration.harness import Samples, Stack, Worker, all_covered, metric_samples, produce, read_topic, upserts
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration


def audit(stack: Stack, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "connector.cli", "audit", "--json", "--to", "end", *args],
                            env={**os.environ, **stack.env, **(env or {})}, capture_output=True, timeout=120,
                            check=False)
    assert result.returncode in (0, 1), result.stderr.decode()[-3000:]
    return result.returncode, json.loads(result.stdout)


def audit_as_is(stack: Stack, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """``audit --json`` with only ``args``: by default up to the group's commits."""
    result = subprocess.run([sys.executable, "-m", "connector.cli", "audit", "--json", *args],
                            env={**os.environ, **stack.env, **(env or {})}, capture_output=True, timeout=120,
                            check=False)
    assert result.returncode in (0, 1), result.stderr.decode()[-3000:]
    return result.returncode, json.loads(result.stdout)


def audit_line(stack: Stack, *args: str) -> tuple[int, str]:
    """``audit`` as a person runs it: its exit code and what it said on stderr."""
    result = subprocess.run([sys.executable, "-m", "connector.cli", "audit", *args],
                            env={**os.environ, **stack.env}, capture_output=True, timeout=120, check=False)
    return result.returncode, result.stderr.decode()


def reasons(report: dict[str, Any], topic: str) -> list[str]:
    return [reason for p in report["partitions"] if p["topic"] == topic for reason in p["reasons"]]


async def topic_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def lag(samples: Samples, topic: str) -> float | None:
    """The sum of the consumer-lag gauge over ``topic``'s partitions; None when it has no series."""
    found = [value for (name, labels), value in samples.items()
             if name == "qdrant_connector_consumer_lag" and ("topic", topic) in labels]
    return sum(found) if found else None


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


async def test_audit_of_what_nobody_consumed_or_of_a_missing_topic_proves_nothing(kafka, model_env,
                                                                                 tmp_path: Path) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env)
    await stack.create_topics(partitions=2)
    topic, group = stack.env["QCC_PATCH_TOPIC"], stack.env["QCC_CONSUMER_GROUP"]
    await produce(kafka.bootstrap, topic, upserts(0, 15))

    code, report = audit_as_is(stack)  # no worker ran: the group committed nothing
    assert code == 1, report
    assert not report["complete"]
    assert "INCOMPLETE" in report["verdict"]
    assert reasons(report, topic) == [f"no commits by group {group}"] * 2
    assert report["behind"] == 15

    missing = f"no.such.{stack.name}"
    code, stderr = audit_line(stack, "--topic", missing)
    assert code == 66, stderr
    assert f"no topic {missing} (--topic) on the Kafka broker" in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert missing not in await topic_names(kafka.bootstrap)


async def test_audit_wait_proves_what_a_worker_caught_up_on_and_the_lag_shows_it(kafka, model_env,
                                                                                tmp_path: Path) -> None:
    failpoints, port = tmp_path / "failpoints", free_port()
    failpoints.mkdir()
    target = QdrantTarget("local", path=tmp_path / "qdrant")
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=target,
                  extra_env={"QCC_HTTP_PORT": str(port), "QCC_FAILPOINTS_DIR": str(failpoints)})
    await stack.create_topics(partitions=2)
    client = target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.close()
    topic, group = stack.env["QCC_PATCH_TOPIC"], stack.env["QCC_CONSUMER_GROUP"]
    await produce(kafka.bootstrap, topic, upserts(0, 15))

    # no window can finish (Qdrant unreachable): the lag is there from the assignment on
    (failpoints / "qdrant-unavailable").touch()
    worker = Worker(stack)
    try:
        samples = await metric_samples(port, until=lambda s: lag(s, topic) == 15, timeout=60)
        assert not any(name == "qdrant_connector_batches_applied_total" for name, _ in samples), samples
        (failpoints / "qdrant-unavailable").unlink()

        code, report = audit_as_is(stack, "--wait", "90")  # what a pipeline runs after producing
        assert code == 0, problems(report) or report["partitions"]
        assert report["verdict"].startswith("trail complete: every offset up to the log end")
        assert totals(report, "applied") == 15
        assert report["behind"] == 0
        await metric_samples(port, until=lambda s: lag(s, topic) == 0, timeout=30)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]

    code, report = audit_as_is(stack, env={"QCC_CONSUMER_GROUP": f"{group}-typo"})
    assert code == 1, report
    assert reasons(report, topic) == [f"no commits by group {group}-typo"] * 2

    # produced after the worker stopped: the commits prove what came before, and say what is behind
    since = datetime.now(timezone.utc).isoformat()
    await produce(kafka.bootstrap, topic, upserts(15, 5))
    code, report = audit_as_is(stack)
    assert code == 0, problems(report)
    assert report["behind"] == 5
    assert report["verdict"].startswith(f"trail complete up to the commits of group {group}")
    code, report = audit_as_is(stack, "--since", since)  # nothing from then on is committed
    assert code == 1, report
    said = reasons(report, topic)
    assert said, report
    assert all("committed nothing from offset" in r for r in said), said
    code, report = audit_as_is(stack, "--wait", "1")  # nobody applies them: the wait ends, and says so
    assert code == 1, report
    said = reasons(report, topic)
    assert said, report
    assert all("after waiting" in r for r in said), said
