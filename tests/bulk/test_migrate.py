"""Zero-downtime migration with a live stream of patches: nothing lost across the switch.

Embedded local mode lets one process open a storage folder, so the worker runs here, in
the test's event loop (the real Faust app, on the real broker), sharing the Qdrant client
with the migration. This test is local mode's by nature; on the real server the worker and
the migration are separate processes, as in production: tests/bulk/test_migrate_cli.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.audit.reading import committed_offsets
from connector.bulk.migrate import Migration, retarget
from connector.domain.changes import UpdateVectorsEvent, UpsertEvent, parse_change
from connector.domain.operations import op_from_patch
from connector.domain.semantics import NEEDS_EXISTING_POINT, State, apply_op  # type: ignore[attr-defined]
from connector.embedding.embedder import Embedder
from connector.kafka.admin import ensure_topics
from connector.qdrant import RetryingClient
from connector.settings import Settings
from connector.stream.app import create_app
from tests.bulk.streaming import stream_during_migration, stream_events
from tests.integration.harness import all_covered, read_topic

pytestmark = pytest.mark.integration
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def test_retarget_moves_events_and_drops_old_model_vectors() -> None:
    touch: set = set()
    rewrite = retarget("docs", "docs_v1", "docs_v2", "dense", MODEL, touch)
    upsert = parse_change(
        json.dumps(
            {
                "schema_version": 1,
                "collection": "docs",
                "op": "upsert",
                "points": [{"id": 1, "vector": {"dense": [1, 2], "other": [3.0]}}],
            }
        ).encode(),
        expect="patch",
    )
    moved = rewrite(upsert)
    assert isinstance(moved, UpsertEvent)
    assert moved.collection == "docs_v2"
    assert moved.points[0].vector == {"other": [3.0]}
    only = parse_change(json.dumps({"schema_version": 1, "collection": "docs_v1", "op": "update_vectors",
                                    "points": [{"id": 2, "vector": {"dense": [1, 2]}}]}).encode(), expect="patch")
    assert isinstance(only, UpdateVectorsEvent)
    assert rewrite(only) is None
    assert touch == {1, 2}
    other = parse_change(
        json.dumps({"schema_version": 1, "collection": "elsewhere", "op": "delete", "ids": [1]}).encode(),
        expect="patch",
    )
    assert rewrite(other) is None  # the workers apply it; the tail, behind them, would undo later changes


async def until_committed(settings: Settings, topic: str, partitions: int, timeout: float = 60) -> None:
    """Until the consumer group has committed an offset past the start of every partition of ``topic``."""
    wanted = [TopicPartition(topic, p) for p in range(partitions)]
    deadline = time.monotonic() + timeout
    while True:
        committed = {tp.partition: o for tp, o in (await committed_offsets(settings, wanted)).items() if o > 0}
        if len(committed) == partitions:
            return
        assert time.monotonic() < deadline, f"after {timeout:.0f} s the group has committed {committed} of {topic}"
        await asyncio.sleep(0.2)


def _reference(initial: State, events: list[dict[str, Any]]) -> dict[Any, dict]:
    state = dict(initial)
    for position, e in enumerate(events):
        if e.get("kind") == "reembed":
            continue  # vectors only
        event = parse_change(json.dumps(e).encode(), expect="patch")
        op = op_from_patch(event, position, {p.id: (0.0,) for p in getattr(event, "points", [])})
        if op.kind in NEEDS_EXISTING_POINT and any(p not in state for p in op.point_ids()):
            continue
        apply_op(state, op)
    return {pid: p.payload for pid, p in state.items()}


async def test_migration_under_a_live_stream_loses_no_update(kafka, model_paths, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.domain.semantics import PointState

    for name, value in {
        "QCC_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "QCC_CONSUMER_GROUP": "migrate-test",
        "QCC_PATCH_TOPIC": "m-patches",
        "QCC_REEMBED_TOPIC": "m-reembeds",
        "QCC_VERIFICATION_TOPIC": "m-verifications",
        "QCC_DEAD_LETTER_TOPIC": "m-dead",
        "QCC_DATA_DIR": str(tmp_path / "state"),
        "QCC_SESSION_TIMEOUT_SECONDS": "6",
        "QCC_MODEL_PATHS": json.dumps(model_paths),
        "QCC_WINDOW_MAX_EVENTS": "100",
        "QCC_WINDOW_MAX_WAIT_SECONDS": "0.2",
        "QCC_QDRANT_PATH": str(tmp_path / "qdrant"),
        "QCC_HTTP_PORT": "0",  # no endpoints: port 8080 may be anyone's
    }.items():
        monkeypatch.setenv(name, value)  # the settings of this test only, not of the tests after it
    settings = Settings()
    await ensure_topics(settings, partitions=2)
    client = AsyncQdrantClient(path=str(tmp_path / "qdrant"))
    # one real model is at hand offline: the "switch" is to the same model with another distance,
    # which exercises every step (fill, re-embed, replay, fence, switch) all the same
    await client.create_collection(
        "docs_v1", vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)}
    )
    first_new_id = 300
    initial = {i: PointState(payload={"body": f"article {i} first version", "n": i}) for i in range(first_new_id)}
    await client.upsert(
        "docs_v1",
        [
            qm.PointStruct(id=i, vector={"dense": [1.0, float(i)] + [0.0] * 382}, payload=p.payload)
            for i, p in initial.items()
        ],
    )
    await client.update_collection_aliases(
        [qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name="docs_v1", alias_name="docs"))]
    )

    app = create_app(settings, client=client)
    app.finalize()
    await app.start()
    events = stream_events(random.Random(11), 1500, first_new_id)
    sent: dict[str, list[tuple[int, int]]] = {settings.patch_topic: [], settings.reembed_topic: []}
    migration_done = asyncio.Event()

    sink = RetryingClient(client)
    migration = Migration(
        settings,
        sink,
        Embedder(settings),
        alias="docs",
        new_collection="docs_v2",
        text_field="body",
        vector_name="dense",
        model=MODEL,
        distance=qm.Distance.EUCLID,
        fence_seconds=60,
        verify_seconds=30,
        show_progress=False,
    )
    streaming = asyncio.create_task(
        stream_during_migration(kafka.bootstrap, settings, events, sent, migration_done, fast=1000))
    try:
        # the worker applies and commits part of the stream first: the replay then starts from its
        # committed offsets (step 2 of connector/bulk/migrate.py), not from the start of the log
        await until_committed(settings, settings.patch_topic, partitions=2)
        report = await migration.run()
        migration_done.set()
        await streaming
        await read_topic(
            kafka.bootstrap,
            settings.patch_topic.replace("patches", "verifications"),
            until=lambda rs: all_covered(sent[settings.patch_topic])(
                [r for r in rs if r["topic"] == settings.patch_topic]
            ),
            timeout=120,
        )
        verifications = await read_topic(kafka.bootstrap, settings.verification_topic, timeout=5)
    finally:
        if not streaming.done():
            streaming.cancel()
        await app.stop()
    assert report.switched
    assert report.fence_offsets
    assert report.tail_events > 0
    aliases = (await client.get_aliases()).aliases
    assert [(a.alias_name, a.collection_name) for a in aliases] == [("docs", "docs_v2")]
    points = {}
    offset = None
    while True:
        page, offset = await client.scroll("docs_v2", limit=500, offset=offset, with_vectors=True)
        points.update({p.id: p for p in page})
        if offset is None:
            break
    expected = _reference(initial, events)
    assert {pid: p.payload for pid, p in points.items()} == expected
    assert all(len(p.vector["dense"]) == 384 for p in points.values() if (p.payload or {}).get("body"))
    assert any(v["verification"]["reason"] and "fence" in v["verification"]["reason"] for v in verifications)
    await client.close()
