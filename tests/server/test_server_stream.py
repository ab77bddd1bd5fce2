"""A worker process on the real broker and the real Qdrant server, where only a server refuses:
the body limit, a read-only or wrong API key, the write rate limit. Every valid event must be
applied and confirmed in the end, none dead-lettered, and nothing committed past a refusal.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.dev.spawn import free_port
from tests.conftest import API_KEY, READ_ONLY_API_KEY, _server_or_skip
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

DIM = 384


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())
    except OSError:
        return 0, {}


def set_payload(pid: int, value: Any) -> tuple[bytes, bytes]:
    event = {"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [pid], "payload": {"v": value}}
    return f"docs/{pid}".encode(), json.dumps(event).encode()


async def confirmed(kafka: Any, stack: Stack, sent: list[tuple[int, int]], worker: Worker,
                    timeout: float = 180) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    try:
        verifications = await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"],
                                         until=all_covered(sent), timeout=timeout)
    except AssertionError:
        print(worker.output()[-6000:])
        raise
    dead = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=3)
    return verifications, dead


async def applied_by_a_worker(kafka: Any, stack: Stack, sent: list[tuple[int, int]]
                              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Start a worker, wait until ``sent`` is confirmed, stop it (exit 0): what it published."""
    worker = Worker(stack)
    try:
        return await confirmed(kafka, stack, sent, worker)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]


@pytest.fixture(scope="module")
def small_body_server() -> Iterator[Any]:
    yield from _server_or_skip(env={"QDRANT__SERVICE__MAX_REQUEST_SIZE_MB": "1"})


async def test_a_window_over_the_body_limit_is_applied_whole(kafka, model_env, tmp_path: Path,
                                                             small_body_server: Any) -> None:
    """The report that opened this: upserts of 20 points of 384 floats each stopped the stream for
    good once a window's body passed the server's limit (here 1 MiB, 32 MiB by default)."""
    target = QdrantTarget("rest", server=small_body_server)
    target.wipe()
    client = target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=DIM, distance=qm.Distance.COSINE))
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=target,
                  extra_env={"QCC_QDRANT_MAX_REQUEST_BYTES": str(64 * 1024 * 1024)})  # only the server's answer splits
    await stack.create_topics(partitions=1)
    events = []
    for e in range(40):  # ~4 MB of vectors in one window of 100
        points = [
            {"id": e * 20 + i, "vector": [round(0.001 * (e + i), 6)] * DIM, "payload": {"e": e}} for i in range(20)
        ]
        events.append((f"docs/{e}".encode(), json.dumps({"schema_version": 1, "collection": "docs", "op": "upsert",
                                                         "points": points}).encode()))
    sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], events)
    verifications, dead = await applied_by_a_worker(kafka, stack, sent)
    assert dead == []
    assert sum(v["applied_event_count"] for v in verifications) == 40
    assert all(v["verification"]["status"] == "verified" for v in verifications)
    assert client.count("docs").count == 800
    client.close()


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
async def test_a_key_that_may_not_write_holds_the_stream_not_ready(kafka, model_env, tmp_path: Path,
                                                                   qdrant_server_with_keys: Any, protocol: str) -> None:
    """A read-only or wrong key is a misconfiguration: the worker waits not-ready, publishes and
    commits nothing; restarted with a key that may write, it applies every event."""
    admin = QdrantTarget(protocol, server=qdrant_server_with_keys, api_key=API_KEY)
    admin.wipe()
    client = admin.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT))
    client.upsert("docs", [qm.PointStruct(id=i, vector=[1.0, 0, 0, 0]) for i in range(50)])
    port = free_port()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, extra_env={"QCC_HTTP_PORT": str(port)},
                  qdrant=QdrantTarget(protocol, server=qdrant_server_with_keys, api_key=READ_ONLY_API_KEY))
    await stack.create_topics(partitions=1)
    sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], [set_payload(i, i) for i in range(50)])
    for key in (READ_ONLY_API_KEY, "not-a-key"):
        stack.qdrant = QdrantTarget(protocol, server=qdrant_server_with_keys, api_key=key)
        worker = Worker(stack)
        try:
            deadline, status, body = time.monotonic() + 60, 0, {}
            while time.monotonic() < deadline:  # the worker tries, is refused, and says why
                status, body = readyz(port)
                if status == 503 and any("QCC_QDRANT_API_KEY" in r for r in body.get("reasons", [])):
                    break
                await asyncio.sleep(0.5)
            assert status == 503, (body, worker.output()[-3000:])
            assert any("QCC_QDRANT_API_KEY" in r for r in body["reasons"]), (body, worker.output()[-3000:])
        finally:
            assert worker.stop() == 0, worker.output()[-3000:]
        assert await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], timeout=3) == []
        assert await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=3) == []
    assert (
        client.count(
            "docs", count_filter=qm.Filter(must=[qm.IsEmptyCondition(is_empty=qm.PayloadField(key="v"))])
        ).count
        == 50
    )
    # Fixed: every event is still there to apply (nothing was committed past the refusals).
    stack.qdrant = admin
    verifications, dead = await applied_by_a_worker(kafka, stack, sent)
    assert dead == []
    assert sum(v["applied_event_count"] for v in verifications) == 50
    assert [p.payload["v"] for p in sorted(client.scroll("docs", limit=100)[0], key=lambda p: p.id)] == list(range(50))
    client.close()


async def test_write_rate_limit_slows_the_stream_and_loses_nothing(kafka, model_env, tmp_path: Path,
                                                                   server_target: QdrantTarget) -> None:
    """The report: 300 valid set_payload events were all dead-lettered (429) under strict mode's
    write rate limit. Now the worker waits as the server says, and applies them all. Qdrant
    charges a batch op by op and stops at the first op it cannot pay, so a window re-sent whole
    would spend each refill on its applied prefix again: it must be cut to make progress."""
    client = server_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT))
    client.upsert("docs", [qm.PointStruct(id=i, vector=[1.0, 0, 0, 0]) for i in range(300)])
    # a bucket of 1,200 tokens, 20 a second: the first 1,200 events pass, the last 300 wait ~15 s
    client.update_collection("docs", strict_mode_config=qm.StrictModeConfig(enabled=True, write_rate_limit=1200))
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=server_target)
    await stack.create_topics(partitions=1)
    sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], [set_payload(i % 300, i) for i in range(1500)])
    worker = Worker(stack)
    try:
        verifications, dead = await confirmed(kafka, stack, sent, worker, timeout=240)
    finally:
        assert worker.stop() == 0
        output = worker.output()
    assert dead == []
    assert sum(v["applied_event_count"] for v in verifications) == 1500
    assert "rate limit" in output  # it was limited, and waited
    assert [p.payload["v"] for p in sorted(client.scroll("docs", limit=300)[0], key=lambda p: p.id)] == list(
        range(1200, 1500)
    )
    client.close()
