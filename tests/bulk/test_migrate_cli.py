"""``qdrant-change-connector migrate`` from the command line, on the real Qdrant server, while
a worker process streams patches into the alias: nothing lost across the switch.

Everything is a separate process, as in production: the worker (``connector.cli worker``),
the migration (``connector.cli migrate``) and the server; the test only produces events and
reads the outcome.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from qdrant_client import models as qm

from connector.domain.changes import parse_change
from connector.domain.operations import NEEDS_EXISTING_POINT, op_from_patch
from connector.domain.semantics import PointState, State, apply_op
from connector.embedding.embedder import Embedder
from connector.settings import Settings
from tests.bulk.streaming import stream_during_migration, stream_events
from tests.integration.harness import Stack, Worker, all_covered, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
FIRST_NEW_ID = 300  # points 0..299 exist before the stream; the stream also creates new ones
EVENTS = 1500
PARTITIONS = 2


def reference_payloads(initial: State, events: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """Payloads after the patches one by one (re-embeds change vectors only)."""
    state = dict(initial)
    for position, e in enumerate(events):
        if e.get("kind") == "reembed":
            continue
        event = parse_change(json.dumps(e).encode(), expect="patch")
        op = op_from_patch(event, position, {p.id: (0.0,) for p in getattr(event, "points", [])})
        if op.kind in NEEDS_EXISTING_POINT and any(p not in state for p in op.point_ids()):
            continue  # the point does not exist at that moment: dead-lettered
        apply_op(state, op)
    return {pid: p.payload for pid, p in state.items()}


def texts_to_embed(events: list[dict[str, Any]], payloads: dict[Any, dict[str, Any]]) -> dict[int, str]:
    """Points whose dense vector is known for sure: the last event that set it is a text
    upsert whose text is still the body, and no re-embed names the point (a re-embed reads
    the body when it runs, and the re-embed topic has no order against the patch topic). A
    body overwritten later does not qualify: the migration's fill embeds the body as it finds
    it, and whether it found the point before or after the overwrite depends on timing."""
    last: dict[int, str | None] = {}
    reembedded = set()
    for e in events:
        if e.get("kind") == "reembed":
            reembedded.add(e["ids"][0])
        elif e["op"] == "upsert":
            last[e["points"][0]["id"]] = e["points"][0]["text"]
        elif e["op"] in ("update_vectors", "delete"):
            last[(e.get("ids") or [e["points"][0]["id"]])[0]] = None
    return {pid: text for pid, text in last.items()
            if text is not None and pid not in reembedded and payloads.get(pid, {}).get("body") == text}


def cosine(a: Any, b: Any) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return float(dot / ((sum(x * x for x in a) ** 0.5) * (sum(y * y for y in b) ** 0.5)))


async def committed_to_end(stack: Stack, timeout: float = 120) -> None:
    """Until the worker's group has committed every offset of both input topics."""
    settings = stack.settings()
    options = {"bootstrap_servers": stack.bootstrap}
    consumer, admin = AIOKafkaConsumer(**options), AIOKafkaAdminClient(**options)
    await consumer.start()
    await admin.start()
    try:
        partitions = [
            TopicPartition(t, p) for t in (settings.patch_topic, settings.reembed_topic) for p in range(PARTITIONS)
        ]
        deadline = time.monotonic() + timeout
        while True:
            end = await consumer.end_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(settings.consumer_group)
            behind = {tp: (committed[tp].offset if tp in committed else None, end[tp]) for tp in partitions
                      if end[tp] > 0 and (tp not in committed or committed[tp].offset < end[tp])}
            if not behind:
                return
            assert time.monotonic() < deadline, f"not committed to the end: (committed, end) {behind}"
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
        await admin.close()


async def test_migrate_command_under_a_live_stream(kafka, model_env, model_paths, tmp_path: Path,
                                                   server_target: QdrantTarget) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=server_target,
                  extra_env={"QCC_WINDOW_MAX_WAIT_SECONDS": "0.2"})
    settings = stack.settings()
    await stack.create_topics(partitions=PARTITIONS)
    client = server_target.client()
    # one real model is at hand offline: the "switch" is to the same model with another distance,
    # which exercises every step (fill, re-embed, replay, fence, switch) all the same
    client.create_collection(
        "docs_v1", vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)}
    )
    initial = {i: PointState(payload={"body": f"article {i} first version", "n": i}) for i in range(FIRST_NEW_ID)}
    client.upsert("docs_v1", [qm.PointStruct(id=i, vector={"dense": [1.0, float(i)] + [0.0] * 382}, payload=p.payload)
                              for i, p in initial.items()])
    client.update_collection_aliases([qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name="docs_v1",
                                                                                             alias_name="docs"))])
    events = stream_events(random.Random(11), EVENTS, FIRST_NEW_ID)
    sent: dict[str, list[tuple[int, int]]] = {settings.patch_topic: [], settings.reembed_topic: []}
    migration_done = asyncio.Event()

    worker = Worker(stack)
    streaming = asyncio.create_task(
        stream_during_migration(kafka.bootstrap, settings, events, sent, migration_done, fast=500))
    try:
        await read_topic(kafka.bootstrap, settings.verification_topic, until=lambda rs: len(rs) >= 3, timeout=120)
        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "connector.cli", "migrate", "docs", "docs_v2", "--text-field", "body",
            "--vector-name", "dense", "--model", MODEL, "--distance", "Euclid", "--fence-seconds", "60",
            "--verify-seconds", "30", env={**os.environ, **stack.env}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(migrate.communicate(), timeout=300)
        migration_done.set()
        assert migrate.returncode == 0, err.decode()[-3000:]
        (Path(tmp_path) / "migrate.out").write_bytes(out)
        (Path(tmp_path) / "migrate.err").write_bytes(err)
        report = json.loads(out[out.index(b"{"):]) if b"{" in out else pytest.fail(f"no JSON report: {out!r} {err!r}")
        await streaming
        for topic, where in sent.items():
            await read_topic(kafka.bootstrap, settings.verification_topic, timeout=180,
                             until=lambda rs, t=topic, w=where: all_covered(w)([r for r in rs if r["topic"] == t]))
        await committed_to_end(stack)
        verifications = await read_topic(kafka.bootstrap, settings.verification_topic, timeout=5)
        assert worker.stop() == 0, worker.output()[-3000:]
    finally:
        if not streaming.done():
            streaming.cancel()
        if worker.process.poll() is None:
            worker.kill()
    assert report["switched"], report
    assert report["fence_offsets"], report
    assert report["tail_events"] > 0, report
    assert report["verification"]["ok"], report["verification"]
    assert [(a.alias_name, a.collection_name) for a in client.get_aliases().aliases] == [("docs", "docs_v2")]
    points: dict[Any, Any] = {}
    offset = None
    while True:
        page, offset = client.scroll("docs_v2", limit=500, offset=offset, with_vectors=True)
        points.update({p.id: p for p in page})
        if offset is None:
            break
    client.close()
    expected = reference_payloads(initial, events)
    assert {pid: p.payload for pid, p in points.items()} == expected
    assert all(len(p.vector["dense"]) == 384 for p in points.values())
    known = texts_to_embed(events, expected)
    embedded = Embedder(Settings(model_paths=model_paths)).embed_sync(MODEL, "dense", list(known.values()))
    wrong = [
        pid for pid, want in zip(known, embedded, strict=True) if cosine(want, points[pid].vector["dense"]) < 0.999
    ]
    assert not wrong, f"{len(wrong)} of {len(known)} points do not hold the embedding of their last text: {wrong[:10]}"
    # the worker met the fences, held its partitions, and passed them when the alias moved
    assert any(
        "fence" in (v["verification"]["reason"] or "") and "now points at 'docs_v2'" in v["verification"]["reason"]
        for v in verifications
    )
