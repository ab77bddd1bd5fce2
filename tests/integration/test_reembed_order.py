"""A re-embed sees the text written before it, whatever the backlog of either topic.

The race: a text patch waits behind a backlog on the patch topic while its re-embed, on an
idle re-embed topic, runs first and embeds the old text; every verification event says
'verified'. The worker now holds a re-embed that reads payload text until the patch topic is
applied up to where it was when the re-embed was read (connector/stream/patch_watermark.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.embedding.embedder import Embedder
from connector.kafka.producer import ChangeProducer
from connector.qdrant import make_client, make_retrying
from connector.settings import DEFAULT_DENSE_MODEL, Settings
from connector.stream.window import Record, WindowProcessor
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

OLD = "an old text about gardening and roses"
NEW = "a brand new text about cooking pasta"


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
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
    assert cosine(point.vector, new_vector) > 0.99, (
        f"embedded {cosine(point.vector, old_vector):.2f}-close to the old text"
    )


async def test_set_text_carries_its_text_into_the_reembed(kafka, model_env, tmp_path: Path) -> None:
    """The SDK's safe way: the patch and a re-embed of the same text, inline; nothing to wait for."""
    stack = Stack(kafka.bootstrap, tmp_path, model_env)
    await stack.create_topics(partitions=2)
    async with ChangeProducer(stack.settings()) as producer:
        await producer.set_text("docs", 5, "text", NEW, vector_name="dense")
    patches = await read_topic(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], timeout=5)
    reembeds = await read_topic(kafka.bootstrap, stack.env["QCC_REEMBED_TOPIC"], timeout=5)
    assert [(p["op"], p["ids"], p["payload"]) for p in patches] == [("set_payload", [5], {"text": NEW})]
    assert [(r["points"], r["vector_name"]) for r in reembeds] == [([{"id": 5, "text": NEW}], "dense")]


@pytest.mark.parametrize("settled", [True, False])
async def test_a_wait_cut_short_marks_payload_text_reembeds_for_a_recheck(model_paths, tmp_path: Path,
                                                                         settled: bool) -> None:
    """The processor's side of a rebalance during the wait: when the watermark says the wait was
    cut short, the re-embeds that read payload texts are applied and handed back to be published
    again (re-done after the patches); inline texts do not depend on patches and are not."""
    settings = Settings(qdrant_path=tmp_path / "qdrant", model_paths=model_paths)
    client = make_client(settings)
    await client.create_collection("docs", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
    await client.upsert("docs", [qm.PointStruct(id=i, vector=[1.0] * 384, payload={"text": OLD}) for i in range(3)])
    waits: list[bool] = []

    async def watermark() -> bool:
        waits.append(settled)
        return settled

    processor = WindowProcessor(settings, client, make_retrying(settings, client), Embedder(settings), "reembed",
                                before_payload_texts=watermark)
    events = [
        {"ids": [0], "text_field": "text"},
        {"points": [{"id": 1, "text": NEW}]},
        {"ids": [2, 404], "text_field": "text"},
    ]
    records = [Record("reembeds", 0, offset, json.dumps({"schema_version": 1, "kind": "reembed", "collection": "docs",
                                                          **event}).encode(), b"docs")
               for offset, event in enumerate(events)]
    result = await processor.process(records)
    assert waits == [settled]
    assert [r.offset for r in result.rechecks] == ([] if settled else [0])  # offset 2 was rejected (point 404)
    assert [d.source.offset for d in result.dead_letters] == [2]
    assert sum(v.applied_event_count for v in result.verifications) == 2
    await client.close()


@pytest.mark.parametrize("server_target", [pytest.param("rest", marks=pytest.mark.server)], indirect=True)
async def test_a_rebalance_during_the_wait_is_repaired_after_the_patches(kafka, model_env, model_paths, tmp_path: Path,
                                                                        server_target: QdrantTarget) -> None:
    """The one gap the wait had: a rebalance begins while a re-embed waits for a patch backlog.
    It cannot wait through it (the rebalance waits for the window), so it reads the old text; the
    re-embed is published again and re-done after the patches, and the vector ends on the new text."""
    embedder = Embedder(Settings(model_paths=model_paths))
    old_vector, new_vector = (list(v) for v in embedder.embed_sync(DEFAULT_DENSE_MODEL, "dense", [OLD, NEW]))
    client = server_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
    client.upsert("docs", [qm.PointStruct(id=i, vector=old_vector, payload={"text": OLD}) for i in range(100)])
    # small windows make the backlog slow to apply (~40 s or more; the slower the machine, the
    # slower both this and the join), so the second worker joins while the re-embed waits
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=server_target, extra_env={"QCC_WINDOW_MAX_EVENTS": "5"})
    await stack.create_topics(partitions=2)
    backlog = [patch(10 + i % 90, {"n": i}) for i in range(10_000)] + [patch(5, {"text": NEW})]
    sent_patches = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], backlog)
    async with ChangeProducer(stack.settings()) as producer:
        meta = await producer.reembed("docs", ids=[5], text_field="text")
    sent_reembed = [(meta.partition, meta.offset)]
    first = Worker(stack)
    second = None
    try:
        deadline = time.monotonic() + 90
        while "re-embeds wait for" not in first.output() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.2)
        assert "re-embeds wait for" in first.output(), first.output()[-3000:]
        second = Worker(stack)  # a rebalance while the re-embed waits
        await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], timeout=240,
                         until=lambda rs: all_covered(sent_patches)(rs) and all_covered(sent_reembed)(
                             [r for r in rs if r["topic"] == stack.env["QCC_REEMBED_TOPIC"]]))
        point = client.retrieve("docs", [5], with_payload=True, with_vectors=True)[0]
        deadline = time.monotonic() + 120  # the re-check follows the re-embed's own confirmation
        while cosine(point.vector, new_vector) < 0.99 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            point = client.retrieve("docs", [5], with_payload=True, with_vectors=True)[0]
    finally:
        codes = [w.stop() for w in (first, second) if w is not None]
        output = first.output() + (second.output() if second is not None else "")
    assert codes == [0, 0], output[-3000:]
    assert "a rebalance began while re-embeds waited" in output, "the rebalance came too late to test the gap"
    assert point.payload == {"text": NEW}
    assert cosine(point.vector, new_vector) > 0.99, (
        f"embedded {cosine(point.vector, old_vector):.2f}-close to the old text"
    )
    client.close()
