"""At-least-once delivery, exactly-once state: a worker killed at any moment loses nothing.

The worker is killed four ways over one stream: right after a batch is applied and before
its verification event (failpoint), by SIGKILL at a random moment, right after the
verification event and before the offsets are acknowledged (failpoint), and finally runs to
the end. The Qdrant state must equal the reference model of all events applied one by one,
and every source event must be covered by a verification event.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.events import parse_change
from connector.operations import NEEDS_EXISTING_POINT, op_from_patch
from connector.semantics import State, apply_op
from connector.verifier import state_from_records
from tests.integration.harness import Stack, Worker, all_covered, covered_offsets, produce, read_topic

pytestmark = pytest.mark.integration


def random_events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for _ in range(n):
        pid = rng.randrange(60)
        op = rng.choice(["upsert", "upsert", "delete", "set_payload", "set_payload", "overwrite_payload",
                         "delete_payload", "clear_payload", "update_vectors", "delete_vectors"])
        e: dict[str, Any] = {"schema_version": 1, "collection": "kv", "op": op}
        if op == "upsert":
            e["points"] = [{"id": pid, "vector": {"d": [rng.random(), rng.random()], "s": {"indices": [rng.randrange(9)], "values": [1.0]}},
                            "payload": {"v": rng.randrange(100)}}]
        elif op == "update_vectors":
            e["points"] = [{"id": pid, "vector": {"d": [rng.random(), rng.random()]}}]
        else:
            e["ids"] = [pid]
            if op == "set_payload":
                e["payload"] = {rng.choice("abc"): rng.randrange(100)}
            elif op == "overwrite_payload":
                e["payload"] = {"w": rng.randrange(100)}
            elif op == "delete_payload":
                e["keys"] = [rng.choice("abcvw")]
            elif op == "delete_vectors":
                e["vector_names"] = ["s"]
        events.append(e)
    return events


def reference(events: list[dict[str, Any]]) -> tuple[State, set[int]]:
    """The collection after applying the events one by one, and the positions rejected."""
    state: State = {}
    rejected = set()
    for position, e in enumerate(events):
        op = op_from_patch(parse_change(json.dumps(e).encode(), expect="patch"), position)
        if op.kind in NEEDS_EXISTING_POINT and any(p not in state for p in op.point_ids()):
            rejected.add(position)
            continue
        apply_op(state, op)
    return state, rejected


def final_dead(verifications: list[dict[str, Any]]) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Offsets dead-lettered by the latest verification covering them; offsets confirmed twice."""
    dead: set[tuple[int, int]] = set()
    replayed: set[tuple[int, int]] = set()
    confirmed: set[tuple[int, int]] = set()
    for v in verifications:
        offsets = {(r["partition"], o) for r in v["ranges"] for o in range(r["first_offset"], r["last_offset"] + 1)}
        replayed |= offsets & confirmed
        confirmed |= offsets
        dead -= offsets
        dead |= {(d["partition"], d["offset"]) for d in v["dead_letters"]}
    return dead, replayed


def _point(event: dict[str, Any]) -> int:
    return (event.get("ids") or [event["points"][0]["id"]])[0]


def _replaced_later(events: list[dict[str, Any]], sent: list[tuple[int, int]], i: int, reach: int = 1000) -> bool:
    """Whether a later event of the same point, close enough to be replayed with it, upserts or deletes it."""
    partition, offset = sent[i]
    return any(
        _point(events[j]) == _point(events[i]) and events[j]["op"] in ("upsert", "delete")
        for j in range(i + 1, len(events))
        if sent[j][0] == partition and sent[j][1] - offset <= reach
    )


def read_state(path: Path) -> State:
    client = QdrantClient(path=str(path))
    try:
        records = client.scroll("kv", limit=10_000, with_payload=True, with_vectors=True)[0]
        return state_from_records(records)
    finally:
        client.close()


def rounded(state: State) -> State:
    out = copy.deepcopy(state)
    for point in out.values():
        point.vectors = {k: tuple(round(x, 5) for x in v) if isinstance(v, tuple) else v for k, v in point.vectors.items()}
    return out


async def test_killed_worker_loses_nothing(kafka, model_env, tmp_path: Path) -> None:
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    stack = Stack(kafka.bootstrap, tmp_path, model_env,
                  extra_env={"QCC_FAILPOINTS_DIR": str(failpoints), "QCC_WINDOW_MAX_EVENTS": "50"})
    await stack.create_topics(partitions=2)
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection("kv", vectors_config={"d": qm.VectorParams(size=2, distance=qm.Distance.DOT)},
                             sparse_vectors_config={"s": qm.SparseVectorParams()})
    client.close()
    events = random_events(4000, seed=7)
    sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"],
                         [(f"kv/{(e.get('ids') or [e['points'][0]['id']])[0]}".encode(), json.dumps(e).encode()) for e in events])
    ver_topic = stack.env["QCC_VERIFICATION_TOPIC"]

    # 1. crash after a batch is applied, before its verification event
    (failpoints / "crash-after-apply").touch()
    worker = Worker(stack)
    assert await asyncio.to_thread(worker.process.wait, 120) == 137
    (failpoints / "crash-after-apply").unlink()
    assert await read_topic(kafka.bootstrap, ver_topic, timeout=2) == []

    # 2. SIGKILL at a random moment mid-stream
    worker = Worker(stack)
    await read_topic(kafka.bootstrap, ver_topic, until=lambda rs: len(rs) >= 3, timeout=120)
    await asyncio.sleep(random.uniform(0, 1.0))
    worker.kill()

    # 3. crash after a verification event, before the offsets are acknowledged
    (failpoints / "crash-after-confirm").touch()
    seen = len(await read_topic(kafka.bootstrap, ver_topic, timeout=2))
    worker = Worker(stack)
    assert await asyncio.to_thread(worker.process.wait, 120) == 137
    (failpoints / "crash-after-confirm").unlink()
    after_confirm_crash = await read_topic(kafka.bootstrap, ver_topic, timeout=2)
    assert len(after_confirm_crash) > seen

    # 4. run to the end
    worker = Worker(stack)
    try:
        verifications = await read_topic(kafka.bootstrap, ver_topic, until=all_covered(sent), timeout=240)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]

    expected, rejected = reference(events)
    assert rounded(read_state(tmp_path / "qdrant")) == rounded(expected)
    covered = covered_offsets(verifications)
    assert all(o in covered[p] for p, o in sent)
    # a replay is recognisable: the window replayed after the confirm-crash has the same batch id
    ids = [v["batch_id"] for v in verifications]
    assert len(ids) > len(set(ids))
    # the events the reference rejects are the dead-lettered ones, except inside a replayed window:
    # a replay starts from the state its first run left, so an event on a point that a later event
    # of the window created (or deleted) can flip between applied and rejected, with the same
    # final state (that later event overwrites the point)
    reference_dead = {sent[i] for i in rejected}
    dead, _ = final_dead(verifications)
    position = {where: i for i, where in enumerate(sent)}
    flipped = dead ^ reference_dead
    assert len(flipped) < len(reference_dead) // 10
    for where in flipped:
        assert _replaced_later(events, sent, position[where]), (where, events[position[where]])
    letters = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=3)
    assert {(d["source"]["partition"], d["source"]["offset"]) for d in letters} >= dead
    assert all(v["verification"]["status"] != "mismatch" for v in verifications)
