"""Operations that remove data are guarded by what their filter would reach: a filter that matches
every point by itself is refused by `produce` and dead-lettered by the worker; one that matches
every point, or more than QCC_FILTER_MAX_SHARE of the collection, when Qdrant counts it is
dead-lettered `blast_radius_share_exceeded`; the rest applies (a real broker and worker; local
mode and a real server)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from tests.integration.harness import Stack, read_topic, stream_through
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration


def event(op: str, **fields: Any) -> bytes:
    return json.dumps({"schema_version": 1, "collection": "docs", "op": op, **fields}).encode()


def n_range(**bounds: int) -> dict[str, Any]:
    return {"must": [{"key": "n", "range": bounds}]}


async def test_produce_refuses_a_delete_of_every_point(kafka, model_env, tmp_path: Path) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env)
    await stack.create_topics(partitions=1)
    source = tmp_path / "events.jsonl"
    source.write_text('{"collection": "docs", "op": "delete", "filter": {}}\n')
    produced = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "connector.cli", "produce", str(source)],
                                       env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=60,
                                       check=False)
    assert produced.returncode == 65, produced.stdout + produced.stderr
    assert "line 1: not sent" in produced.stderr
    assert "the filter {} matches every point: a delete of every point is refused" in produced.stderr
    assert await read_topic(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], timeout=2) == []


@only_targets("local", "rest")
async def test_the_worker_refuses_what_would_remove_too_much(kafka, model_env, tmp_path: Path,
                                                             qdrant_target: QdrantTarget) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target)
    await stack.create_topics(partitions=1)
    client = qdrant_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.upsert("docs", [qm.PointStruct(id=i, vector=[1.0, float(i)], payload={"n": i}) for i in range(50)])
    client.close()
    records: list[tuple[bytes | None, bytes | None]] = [(b"docs/*", value) for value in [
        event("delete", filter={}),  # as a producer without the SDK sends it
        event("delete", filter=n_range(gte=0)),  # every point, once counted
        event("clear_payload", filter=n_range(lt=30)),  # 30 of 50
        event("set_payload", filter=n_range(gte=0), payload={"seen": True}),  # writes only: applied
        event("delete", filter=n_range(lt=10)),  # 10 of 50: applied
    ]]
    verifications, _ = await stream_through(stack, records)
    dead = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], until=lambda d: len(d) >= 3)
    assert [(d["source"]["offset"], d["error"]["code"]) for d in dead] == [
        (0, "blast_radius_share_exceeded"), (1, "blast_radius_share_exceeded"), (2, "blast_radius_share_exceeded")]
    messages = [d["error"]["message"] for d in dead]
    assert "matches every point" in messages[0]
    assert "every point (50 of 50)" in messages[1]
    assert "30 of 50 points, more than QCC_FILTER_MAX_SHARE=0.5" in messages[2]
    applied = [v for v in verifications if v["applied_event_count"]]
    assert sum(v["applied_event_count"] for v in applied) == 2
    assert all(v["verification"]["status"] == "verified" for v in applied), json.dumps(applied)[:3000]
    client = qdrant_target.client()
    try:
        points = {int(p.id): p.payload for p in client.scroll("docs", limit=100)[0]}
    finally:
        client.close()
    assert points == {i: {"n": i, "seen": True} for i in range(10, 50)}
