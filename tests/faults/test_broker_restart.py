"""The broker stops and comes back under load: the worker waits, then catches up; nothing lost."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.devbroker import KafkaBroker
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic

pytestmark = pytest.mark.integration


async def test_broker_restart_under_load(model_env, tmp_path: Path) -> None:
    broker = KafkaBroker(data_dir=tmp_path / "kafka").start()
    try:
        stack = Stack(broker.bootstrap, tmp_path, model_env, extra_env={"QCC_WINDOW_MAX_EVENTS": "50"})
        await stack.create_topics()
        client = QdrantClient(path=str(tmp_path / "qdrant"))
        client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
        client.close()
        events = [{"schema_version": 1, "collection": "docs", "op": "upsert",
                   "points": [{"id": i % 300, "vector": [1, i], "payload": {"seq": i}}]} for i in range(3000)]
        sent = await produce(broker.bootstrap, stack.env["QCC_PATCH_TOPIC"],
                             [(f"docs/{i % 300}".encode(), json.dumps(e).encode()) for i, e in enumerate(events)])
        worker = Worker(stack)
        try:
            await read_topic(broker.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=lambda rs: len(rs) >= 3, timeout=90)
            broker.stop()
            await asyncio.sleep(8)
            assert worker.process.poll() is None, worker.output()[-3000:]  # it waits for the broker, it does not die
            broker.start()
            await read_topic(broker.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent), timeout=180)
        finally:
            assert worker.stop() == 0, worker.output()[-3000:]
        client = QdrantClient(path=str(tmp_path / "qdrant"))
        try:
            payloads = {p.id: p.payload["seq"] for p in client.scroll("docs", limit=500)[0]}
        finally:
            client.close()
        assert payloads == {pid: max(i for i in range(3000) if i % 300 == pid) for pid in range(300)}
    finally:
        broker.cleanup()
