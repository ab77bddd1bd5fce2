"""A re-embed sees the text written before it, whatever the backlog of either topic.

The race: a text patch waits behind a backlog on the patch topic while its re-embed, on an
idle re-embed topic, runs first and embeds the old text; every verification event says
'verified'. The worker now holds a re-embed that reads payload text until the patch topic is
applied up to where it was when the re-embed was read (connector/patch_watermark.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.embedder import Embedder
from connector.producer import ChangeProducer
from connector.settings import DEFAULT_DENSE_MODEL, Settings
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

OLD = "an old text about gardening and roses"
NEW = "a brand new text about cooking pasta"


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def patch(pid: int, payload: dict[str, Any]) -> tuple[bytes, bytes]:
    event = {"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [pid], "payload": payload}
    return f"docs/{pid}".encode(), json.dumps(event).encode()


async def test_a_reembed_waits_for_the_text_patch_behind_a_backlog(kafka, model_env, model_paths, tmp_path: Path,
                                                                   qdrant_target: QdrantTarget) -> None:
    embedder = Embedder(Settings(model_paths=model_paths))
    old_vector, new_vector = (list(v) for v in embedder.embed_sync(DEFAULT_DENSE_MODEL, "dense", [OLD, NEW]))
    client = qdrant_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
    client.upsert("docs", [qm.PointStruct(id=i, vector=old_vector, payload={"text": OLD}) for i in range(100)])
    client.close()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target)
    await stack.create_topics(partitions=2)
    backlog = [patch(10 + i % 90, {"n": i}) for i in range(4000)] + [patch(5, {"text": NEW})]
    sent_patches = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], backlog)
    async with ChangeProducer(stack.settings()) as producer:  # published after the patch was acknowledged
        meta = await producer.reembed("docs", ids=[5], text_field="text")
    sent_reembed = [(meta.partition, meta.offset)]
    worker = Worker(stack)
    try:
        await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], timeout=180,
                         until=lambda rs: all_covered(sent_patches)(rs) and all_covered(sent_reembed)(
                             [r for r in rs if r["topic"] == stack.env["QCC_REEMBED_TOPIC"]]))
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    client = qdrant_target.client()
    point = client.retrieve("docs", [5], with_payload=True, with_vectors=True)[0]
    client.close()
    assert point.payload == {"text": NEW}
    assert cosine(point.vector, new_vector) > 0.99, f"embedded {cosine(point.vector, old_vector):.2f}-close to the old text"


async def test_set_text_carries_its_text_into_the_reembed(kafka, model_env, model_paths, tmp_path: Path) -> None:
    """The SDK's safe way: the patch and a re-embed of the same text, inline; nothing to wait for."""
    stack = Stack(kafka.bootstrap, tmp_path, model_env)
    await stack.create_topics(partitions=2)
    async with ChangeProducer(stack.settings()) as producer:
        await producer.set_text("docs", 5, "text", NEW, vector_name="dense")
    patches = await read_topic(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], timeout=5)
    reembeds = await read_topic(kafka.bootstrap, stack.env["QCC_REEMBED_TOPIC"], timeout=5)
    assert [(p["op"], p["ids"], p["payload"]) for p in patches] == [("set_payload", [5], {"text": NEW})]
    assert [(r["points"], r["vector_name"]) for r in reembeds] == [([{"id": 5, "text": NEW}], "dense")]
