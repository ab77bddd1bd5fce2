"""A worker started while the Kafka broker is unreachable waits for it, not ready, rather than
exiting: /livez answers at once, /readyz answers 503 naming the broker and since when; once a
broker listens it applies events; SIGTERM while it waits ends it cleanly (exit 0). A Qdrant
server that starts after the worker: not ready, naming Qdrant, then the events are applied."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.dev.broker import KafkaBroker
from connector.dev.qdrant_server import QdrantServer, server_start_script
from connector.dev.spawn import free_port
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic, until_http, upserts

pytestmark = pytest.mark.integration


def _stack(bootstrap: str, tmp_path: Path, model_env: dict[str, str], port: int) -> Stack:
    return Stack(bootstrap, tmp_path, model_env, extra_env={"QCC_HTTP_PORT": str(port), "QCC_HTTP_HOST": "127.0.0.1",
                                                            "QCC_LOG_FORMAT": "json"})


async def _not_ready_naming_the_broker(port: int, bootstrap_port: int) -> None:
    assert await until_http(port, "/livez", 200)
    reasons = json.loads(await until_http(port, "/readyz", 503))["reasons"]
    assert reasons[0].startswith("Kafka broker unreachable since "), reasons
    assert f"127.0.0.1:{bootstrap_port}" in reasons[0] or "bootstrap" in reasons[0], reasons


async def test_worker_waits_for_a_broker_that_comes_later(model_env: dict[str, str], tmp_path: Path) -> None:
    kafka_port, http_port = free_port(), free_port()
    stack = _stack(f"127.0.0.1:{kafka_port}", tmp_path, model_env, http_port)
    local = QdrantClient(path=str(tmp_path / "qdrant"))
    local.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.EUCLID))
    local.close()
    worker = Worker(stack)
    broker = None
    try:
        await _not_ready_naming_the_broker(http_port, kafka_port)
        broker = KafkaBroker(data_dir=tmp_path / "kafka", port=kafka_port).start()
        await stack.create_topics()
        sent = await produce(broker.bootstrap, stack.env["QCC_PATCH_TOPIC"], upserts(0, 50))
        await read_topic(broker.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent), timeout=180)
        await until_http(http_port, "/readyz", 200)
    finally:
        code = worker.stop()
        if broker is not None:
            broker.cleanup()
    assert code == 0, worker.output()[-3000:]
    lines = [json.loads(line) for line in worker.output().splitlines()]
    assert not any("Traceback" in line.get("exception", "") for line in lines)
    loud = [line["message"] for line in lines if line["level"] in ("warning", "error", "critical")]
    assert loud[0].startswith("Kafka broker unreachable"), loud
    assert any(line["message"].startswith("Kafka broker answers again after") for line in lines)
    assert len(loud) <= 3, loud  # the outage's warning and at most its summaries


async def test_sigterm_while_waiting_for_the_broker_exits_0(model_env: dict[str, str], tmp_path: Path) -> None:
    kafka_port, http_port = free_port(), free_port()
    worker = Worker(_stack(f"127.0.0.1:{kafka_port}", tmp_path, model_env, http_port))
    try:
        await _not_ready_naming_the_broker(http_port, kafka_port)
    finally:
        code = worker.stop(timeout=30)
    assert code == 0, worker.output()[-3000:]
    lines = [json.loads(line) for line in worker.output().splitlines()]
    assert lines[-1]["message"] == "stopped before the Kafka broker answered", lines[-3:]
    assert [line["level"] for line in lines].count("warning") == 1, lines


@pytest.mark.server
async def test_worker_waits_for_a_qdrant_server_that_comes_later(kafka, model_env: dict[str, str],
                                                                 tmp_path: Path) -> None:
    script, reason = server_start_script()
    if script is None:
        pytest.skip(reason)
    server = QdrantServer(tmp_path / "qdrant-server")  # its ports chosen, nothing listening yet
    http_port = free_port()
    stack = _stack(kafka.bootstrap, tmp_path, model_env, http_port)
    stack.extra_env["QCC_QDRANT_URL"] = server.url
    await stack.create_topics()
    sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], upserts(0, 50))
    worker = Worker(stack)
    try:
        await until_http(http_port, "/livez", 200)
        body = ""
        for _ in range(300):  # the Qdrant probe's first answer comes after the worker joined the group
            body = await until_http(http_port, "/readyz", 503)
            if "Qdrant not usable since" in body:
                break
            await asyncio.sleep(0.2)
        assert "Qdrant not usable since" in body, body
        server.start(attempts=1)  # on the ports the worker was given
        client = QdrantClient(url=server.url)
        client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.EUCLID))
        client.close()
        await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent), timeout=180)
        await until_http(http_port, "/readyz", 200)
    finally:
        code = worker.stop()
        server.cleanup()
    assert code == 0, worker.output()[-3000:]
    lines = [json.loads(line) for line in worker.output().splitlines()]  # every line JSON
    assert not [line for line in lines if line["logger"] == "httpx"]  # no line per REST request at info
    # the outage in a few lines: a warning when a call first fails, at most one each 30 s after,
    # every retry between at info, and a line when the call succeeds
    retries = [line for line in lines if line["logger"] == "connector.qdrant.retrying"]
    loud = [line["message"] for line in retries if line["level"] != "info"]
    failing = max([float(m.split("(failing for ")[1].split(" s)")[0]) for m in (r["message"] for r in retries)
                   if "(failing for " in m] or [0.0])
    calls = {m.split(" failed (")[0] for m in loud}
    assert loud, [r["message"] for r in retries]
    assert len(loud) <= len(calls) * (1 + int(failing // 30)), loud
    assert len(retries) > len(loud), "every retry is a line, at info between the warnings"
    assert any(" succeeded after " in r["message"] for r in retries), [r["message"] for r in retries]


def test_a_taken_http_port_is_one_line_and_exit_78(model_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = Worker(_stack(f"127.0.0.1:{free_port()}", tmp_path, model_env, port))
        code = worker.process.wait(timeout=120)
    assert code == 78, worker.output()[-3000:]
    last = json.loads(worker.output().splitlines()[-1])
    assert last["level"] == "critical"
    assert f"127.0.0.1:{port}" in last["message"]
    assert "QCC_HTTP_PORT" in last["message"]
