"""Streams of change events for the fault tests, and the reference model they are checked against.

Pure: no broker, no Qdrant. A workload is a list of :class:`Record` (key, value, what the
connector must do with it); the reference model applies the valid ones one by one with
:mod:`connector.semantics`, so the expected collection does not depend on the connector's
windows, coalescing or retries.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from connector.events import parse_change
from connector.operations import NEEDS_EXISTING_POINT, Sparse, Vector, op_from_patch
from connector.semantics import PointState, State, apply_op

KV = "kv"  # patched collection: dense "d" (2, dot) and sparse "s"
DOCS = "docs"  # re-embedded collection: dense "dense" (384, cosine), payload "text"
DOCS_POINTS = 200
MISSING_DOC = 10_000  # a docs id that never exists


@dataclass(frozen=True)
class Record:
    topic: str  # "patch" or "reembed"
    key: bytes | None
    value: bytes
    event: dict[str, Any] | None  # None when the record is not a valid event at all

    @property
    def invalid(self) -> bool:
        return self.event is None


def _patch(rng: random.Random, *, points: int, filters: bool) -> dict[str, Any]:
    pid = rng.randrange(points)
    kinds = ["upsert", "upsert", "delete", "set_payload", "set_payload", "overwrite_payload",
             "delete_payload", "clear_payload", "update_vectors", "delete_vectors"]
    op = rng.choice(kinds + (["delete_by_filter"] if filters else []))
    e: dict[str, Any] = {"schema_version": 1, "collection": KV, "op": op}
    if op == "delete_by_filter":
        e["op"] = "delete"
        e["filter"] = {"must": [{"key": "v", "match": {"value": rng.randrange(100)}}]}
    elif op == "upsert":
        e["points"] = [{"id": pid, "vector": {"d": [rng.random(), rng.random()],
                                              "s": {"indices": [rng.randrange(9)], "values": [1.0]}},
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
    return e


def _invalid_patch(rng: random.Random, points: int) -> bytes:
    pid = rng.randrange(points)
    choices = [
        b'{"schema_version": 1, "collection": "kv", "op": "upsert", ',  # cut JSON
        b"\xff\xfe not utf-8",
        json.dumps({"schema_version": 1, "collection": KV, "op": "rename", "ids": [pid]}).encode(),
        json.dumps({"schema_version": 1, "collection": KV, "op": "set_payload", "ids": [pid]}).encode(),
        json.dumps({"schema_version": 1, "collection": KV, "op": "update_vectors",  # wrong size
                    "points": [{"id": pid, "vector": {"d": [1.0, 2.0, 3.0]}}]}).encode(),
        json.dumps({"schema_version": 1, "collection": "nowhere", "op": "delete", "ids": [pid]}).encode(),
    ]
    return rng.choice(choices)


def _reembed(rng: random.Random) -> dict[str, Any]:
    pid = rng.randrange(DOCS_POINTS)
    e: dict[str, Any] = {"schema_version": 1, "kind": "reembed", "collection": DOCS, "vector_name": "dense"}
    if rng.random() < 0.5:
        e.update(ids=[pid], text_field="text")
    else:
        e["points"] = [{"id": pid, "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))}]
    return e


WORDS = "kafka qdrant vector window batch offset replay commit embed model payload point shard".split()


def doc_text(pid: int) -> str:
    return f"document {pid} about {WORDS[pid % len(WORDS)]} and {WORDS[(pid * 7) % len(WORDS)]}"


def make_workload(rng: random.Random, n: int, *, reembed_share: float = 0.03, invalid_share: float = 0.03,
                  points: int = 500, filters: bool = False) -> list[Record]:
    """``n`` records: patches on ``points`` ids of kv, some re-embeds of docs, some invalid records."""
    records = []
    for _ in range(n):
        roll = rng.random()
        if roll < invalid_share:
            if rng.random() < 0.8:
                records.append(Record("patch", None, _invalid_patch(rng, points), None))
            else:  # a re-embed of a point that does not exist: valid JSON, rejected on apply
                e = {"schema_version": 1, "kind": "reembed", "collection": DOCS, "vector_name": "dense",
                     "ids": [MISSING_DOC], "text_field": "text"}
                records.append(Record("reembed", f"{DOCS}/{MISSING_DOC}".encode(), json.dumps(e).encode(), e))
        elif roll < invalid_share + reembed_share:
            e = _reembed(rng)
            pid = (e.get("ids") or [e["points"][0]["id"]])[0] if "points" in e or "ids" in e else "*"
            records.append(Record("reembed", f"{DOCS}/{pid}".encode(), json.dumps(e).encode(), e))
        else:
            e = _patch(rng, points=points, filters=filters)
            key = f"{KV}/*" if "filter" in e else f"{KV}/{(e.get('ids') or [e['points'][0]['id']])[0]}"
            records.append(Record("patch", key.encode(), json.dumps(e).encode(), e))
    return records


# --- the reference model ---------------------------------------------------------------------


def match_v(condition: dict[str, Any], pid: Any, point: PointState) -> bool:
    """The one filter shape the workload uses: payload ``v`` equals a value."""
    clause = condition["must"][0]
    return point.payload.get(clause["key"]) == clause["match"]["value"]


def reference_kv(events: list[dict[str, Any]]) -> tuple[State, set[int]]:
    """kv after applying the patch events one by one, and the positions rejected (missing point)."""
    state: State = {}
    rejected = set()
    for position, e in enumerate(events):
        op = op_from_patch(parse_change(json.dumps(e).encode(), expect="patch"), position)
        if op.filter is None and op.kind in NEEDS_EXISTING_POINT and any(p not in state for p in op.point_ids()):
            rejected.add(position)
            continue
        apply_op(state, op, match_v)
    return state, rejected


def reference_docs(events: list[dict[str, Any]]) -> dict[int, str]:
    """docs: the text each point's dense vector must embed, for points that were re-embedded."""
    texts: dict[int, str] = {}
    for e in events:
        if e.get("ids") == [MISSING_DOC]:
            continue
        if "points" in e:
            texts[e["points"][0]["id"]] = e["points"][0]["text"]
        else:
            texts[e["ids"][0]] = doc_text(e["ids"][0])
    return texts


def as_stored(state: State) -> State:
    """Vectors as Qdrant stores them: float32 (rounding to digits instead would split values
    that sit on a rounding boundary, a few in every ten thousand)."""
    out = copy.deepcopy(state)
    for point in out.values():
        point.vectors = {k: _float32(v) for k, v in point.vectors.items()}
    return out


def _float32(vector: Vector) -> Vector:
    if isinstance(vector, Sparse):
        return Sparse(vector.indices, tuple(float(x) for x in np.float32(vector.values)))
    return tuple(float(x) for x in np.float32(vector))


def point_of(event: dict[str, Any]) -> Any:
    return (event.get("ids") or [event["points"][0]["id"]])[0] if "filter" not in event else None


def replaced_later(events: list[dict[str, Any]], where: list[tuple[int, int]], i: int, reach: int = 1000) -> bool:
    """Whether a later event close enough to share a replayed window upserts or deletes event i's point.

    A replay starts from the state its first run left, so an event on a point that a later
    event of the window created (or deleted) can flip between applied and rejected; the final
    state is the same because that later event overwrites the point.
    """
    partition, offset = where[i]
    return any(
        point_of(events[j]) == point_of(events[i]) and events[j]["op"] in ("upsert", "delete")
        for j in range(i + 1, len(events))
        if where[j][0] == partition and where[j][1] - offset <= reach
    )


def final_dead(verifications: list[dict[str, Any]]) -> tuple[set[tuple[str, int, int]], set[tuple[str, int, int]]]:
    """Offsets dead-lettered by the latest verification covering them; offsets confirmed twice."""
    dead: set[tuple[str, int, int]] = set()
    replayed: set[tuple[str, int, int]] = set()
    confirmed: set[tuple[str, int, int]] = set()
    for v in verifications:
        offsets = {(v["topic"], r["partition"], o) for r in v["ranges"] for o in range(r["first_offset"], r["last_offset"] + 1)}
        replayed |= offsets & confirmed
        confirmed |= offsets
        dead -= offsets
        dead |= {(v["topic"], d["partition"], d["offset"]) for d in v["dead_letters"]}
    return dead, replayed
