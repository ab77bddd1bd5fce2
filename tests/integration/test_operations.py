"""Running it like production: metrics after a known stream, readiness, SIGTERM, secrets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from qdrant_client import models as qm

from connector.dev.spawn import free_port
from tests.integration.harness import (
    Stack,
    Worker,
    all_covered,
    covered_offsets,
    http_get,
    metric_samples,
    produce,
    qdrant_outage,
    read_topic,
    until_http,
)
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration


def _collection(target: QdrantTarget) -> None:
    client = target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.close()


async def test_metrics_and_readiness(kafka, model_env, tmp_path: Path, qdrant_target: QdrantTarget) -> None:
    port = free_port()
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    stack = Stack(kafka.bootstrap, tmp_path, model_env,
                  extra_env={"QCC_HTTP_PORT": str(port), "QCC_FAILPOINTS_DIR": str(failpoints)}, qdrant=qdrant_target)
    await stack.create_topics()
    _collection(qdrant_target)
    topic = stack.env["QCC_PATCH_TOPIC"]
    worker = Worker(stack)
    try:
        await until_http(port, "/livez", 200)
        await until_http(port, "/readyz", 200)
        events = [
            {"schema_version": 1, "collection": "docs", "op": "upsert", "points": [{"id": i, "vector": [1, i]}]}
            for i in range(20)
        ]
        events += [
            {"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [i], "payload": {"k": 1}}
            for i in range(10)
        ]
        records = [(f"docs/{i}".encode(), json.dumps(e).encode()) for i, e in enumerate(events)] + [
            (None, b"{oops"),
            (None, b"[]"),
        ]
        sent = await produce(kafka.bootstrap, topic, records)
        await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent), timeout=60)
        consumed = ("qdrant_connector_events_consumed_total", (("topic", topic),))
        samples = await metric_samples(port, until=lambda found: found.get(consumed) == 32)  # counted after publishing
        assert samples[("qdrant_connector_operations_total", (("op", "upsert"),))] == 20
        assert samples[("qdrant_connector_operations_total", (("op", "set_payload"),))] == 10
        assert samples[("qdrant_connector_dead_letters_total", (("reason", "invalid_json"),))] == 1
        assert samples[("qdrant_connector_dead_letters_total", (("reason", "schema_violation"),))] == 1
        assert samples[("qdrant_connector_points_touched_total", ())] >= 20
        assert samples[("qdrant_connector_window_events_count", (("topic", topic),))] >= 1
        assert ("qdrant_connector_qdrant_request_seconds_count", (("call", "batch_update_points"),)) in samples
        assert all(name.startswith("qdrant_connector_") or not name.startswith("qdrant") for name, _ in samples)

        with qdrant_outage(qdrant_target, failpoints):
            await until_http(port, "/readyz", 503, timeout=20)
            status, _ = await asyncio.to_thread(http_get, port, "/livez")
            assert status == 200  # alive, only not ready
        await until_http(port, "/readyz", 200, timeout=20)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]


# 4,000 events: the replay after SIGTERM is the same over REST and gRPC, so one server transport
@only_targets("local", "grpc")
async def test_sigterm_mid_stream_loses_nothing(kafka, model_env, tmp_path: Path, qdrant_target: QdrantTarget) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env, extra_env={"QCC_WINDOW_MAX_EVENTS": "50"}, qdrant=qdrant_target)
    await stack.create_topics()
    _collection(qdrant_target)
    events = [{"schema_version": 1, "collection": "docs", "op": "set_payload" if i >= 200 else "upsert",
               **({"ids": [i % 200], "payload": {"seq": i}} if i >= 200 else {"points": [{"id": i, "vector": [1, 1]}]})}
              for i in range(4000)]
    sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"],
                         [(f"docs/{i % 200}".encode(), json.dumps(e).encode()) for i, e in enumerate(events)])
    worker = Worker(stack)
    await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=lambda rs: len(rs) >= 5, timeout=90)
    assert worker.stop() == 0  # SIGTERM, mid-stream
    worker = Worker(stack)
    try:
        verifications = await read_topic(
            kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent), timeout=120
        )
    finally:
        assert worker.stop() == 0
    seen: dict[tuple[int, int], int] = {}
    for v in verifications:
        for partition, offsets in covered_offsets([v]).items():
            for o in offsets:
                seen[(partition, o)] = seen.get((partition, o), 0) + 1
    twice = [k for k, n in seen.items() if n > 1]
    assert len(twice) <= 50 * 2  # at most the window in flight per partition is replayed
    client = qdrant_target.client()
    try:
        payloads = {p.id: p.payload for p in client.scroll("docs", limit=500)[0]}
    finally:
        client.close()
    last = {}
    for i in range(len(events)):
        if i >= 200:
            last[i % 200] = i
    assert payloads == {pid: {"seq": seq} for pid, seq in last.items()}


async def test_secrets_never_reach_logs(kafka, model_env, tmp_path: Path) -> None:
    # No Qdrant at all: an unreachable URL makes the worker log errors. A real server that
    # refuses a wrong key is tests/security/test_qdrant_tls.py.
    secret = "s3cr3t-api-key-do-not-print"
    stack = Stack(kafka.bootstrap, tmp_path, model_env, extra_env={
        "QCC_QDRANT_URL": f"http://127.0.0.1:{free_port()}", "QCC_QDRANT_API_KEY": secret,
        "QCC_KAFKA_SASL_PASSWORD": "kafka-" + secret, "QCC_LOG_LEVEL": "debug"})
    await stack.create_topics()
    await produce(
        kafka.bootstrap,
        stack.env["QCC_PATCH_TOPIC"],
        [(b"docs/1", json.dumps({"schema_version": 1, "collection": "docs", "op": "delete", "ids": [1]}).encode())],
    )
    worker = Worker(stack)
    # it joins, takes the window, and retries against the unreachable Qdrant: the first failure
    # (a warning) and a retry after it (info) are logged, with the debug lines around them
    await worker.wait_for_line("; retry 2 in ")
    worker.stop()
    output = worker.output()
    assert "retry" in output  # the errors were logged...
    assert secret not in output  # ...without the key
