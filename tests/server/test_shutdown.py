"""SIGTERM while windows wait: the worker exits at once, and nothing it held is committed.

Found by the scale-out fault test under load: a re-embed window waiting for earlier patches
gave up at shutdown, and the window the stream had buffered behind it was never acknowledged,
so Faust's shutdown waited for it until the worker was killed. Here a read-only API key holds
the patches (retried, never applied), so the re-embeds wait for them for as long as it lasts.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from tests.conftest import API_KEY, READ_ONLY_API_KEY
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = [pytest.mark.integration, pytest.mark.server]


def reembed(pid: int) -> tuple[bytes, bytes]:
    event = {"schema_version": 1, "kind": "reembed", "collection": "docs", "ids": [pid], "text_field": "text"}
    return f"docs/{pid}".encode(), json.dumps(event).encode()


async def test_sigterm_while_reembeds_wait_for_patches(kafka, model_env, tmp_path: Path,
                                                       qdrant_server_with_keys: Any) -> None:
    admin = QdrantTarget("rest", server=qdrant_server_with_keys, api_key=API_KEY)
    admin.wipe()
    client = admin.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
    client.upsert("docs", [qm.PointStruct(id=i, vector=[1.0] * 384, payload={"text": f"text {i}"}) for i in range(3)])
    stack = Stack(kafka.bootstrap, tmp_path, model_env,
                  qdrant=QdrantTarget("rest", server=qdrant_server_with_keys, api_key=READ_ONLY_API_KEY))
    await stack.create_topics(partitions=1)
    patch = {"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [0], "payload": {"v": 1}}
    sent_patch = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], [(b"docs/0", json.dumps(patch).encode())])
    sent_reembeds = await produce(kafka.bootstrap, stack.env["QCC_REEMBED_TOPIC"], [reembed(0)])

    worker = Worker(stack)
    try:
        deadline = time.monotonic() + 60  # the first re-embed window waits (logged after 5 s)
        while "re-embeds wait for 1 earlier patches" not in worker.output() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.2)
        assert "re-embeds wait for 1 earlier patches" in worker.output(), worker.output()[-3000:]
        # more re-embeds arrive while it waits: the stream takes one and holds it for the next window
        sent_reembeds += await produce(kafka.bootstrap, stack.env["QCC_REEMBED_TOPIC"], [reembed(1), reembed(2)])
        await asyncio.sleep(2)
    finally:
        stopped = time.monotonic()
        code = worker.stop(timeout=30)
    assert code == 0, worker.output()[-3000:]
    assert time.monotonic() - stopped < 15, "the worker waited for windows it had given up"
    assert await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], timeout=3) == []

    stack.qdrant = admin  # a key that may write: everything held is still there to apply
    worker = Worker(stack)
    topic = stack.env["QCC_REEMBED_TOPIC"]
    try:
        verifications = await read_topic(
            kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], timeout=120,
            until=lambda rs: all_covered(sent_patch)([r for r in rs if r["topic"] != topic])
            and all_covered(sent_reembeds)([r for r in rs if r["topic"] == topic]))
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    assert sum(v["applied_event_count"] for v in verifications if v["topic"] == topic) == 3
    assert all(p.vector != [1.0] * 384 for p in client.retrieve("docs", [0, 1, 2], with_vectors=True))
    client.close()
