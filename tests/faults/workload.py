"""Streams of change events for the fault tests, and the reference model they are checked against.

Pure: no broker, no Qdrant. A workload is a list of :class:`Record` (key, value, what the
connector must do with it); the reference model applies the valid ones one by one with
:mod:`connector.domain.semantics`, so the expected collection does not depend on the connector's
windows, coalescing or retries.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from connector.domain.changes import parse_change
from connector.domain.operations import NEEDS_EXISTING_POINT, Sparse, Vector, op_from_patch
from connector.domain.semantics import PointState, State, apply_op

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
    poison: str | None = None  # the stage whose ``poison-<stage>`` failpoint this record breaks

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


WORDS = [
    "kafka",
    "qdrant",
    "vector",
    "window",
    "batch",
    "offset",
    "replay",
    "commit",
    "embed",
    "model",
    "payload",
    "point",
    "shard",
]


def doc_text(pid: int) -> str:
    return f"document {pid} about {WORDS[pid % len(WORDS)]} and {WORDS[(pid * 7) % len(WORDS)]}"


def text_patch(rng: random.Random, pid: int) -> list[Record]:
    """A new text for docs point ``pid`` on the patch topic, then a re-embed of it from the field.

    ``Run.send`` publishes a batch's patches (and waits for the broker's acknowledgements)
    before its re-embeds, so the re-embed is always published after its patch; the kv patches
    around it make the patch topic's backlog the re-embed must wait for (docs/design.md,
    "Re-embeds see the text written before them").
    """
    text = f"revised text {rng.randrange(10**6)}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10)))
    patch = {"schema_version": 1, "collection": DOCS, "op": "set_payload", "ids": [pid], "payload": {"text": text}}
    reembed = {"schema_version": 1, "kind": "reembed", "collection": DOCS, "vector_name": "dense",
               "ids": [pid], "text_field": "text"}
    key = f"{DOCS}/{pid}".encode()
    return [Record("patch", key, json.dumps(patch).encode(), patch),
            Record("reembed", key, json.dumps(reembed).encode(), reembed)]


def make_workload(rng: random.Random, n: int, *, reembed_share: float = 0.03, invalid_share: float = 0.03,
                  points: int = 500, filters: bool = False, text_share: float = 0.0) -> list[Record]:
    """``n`` records: patches on ``points`` ids of kv, some re-embeds of docs, some invalid records,
    and (``text_share`` of the records, in pairs) text patches of docs each followed by a re-embed."""
    records: list[Record] = []
    while len(records) < n:
        roll = rng.random()
        if roll < text_share / 2 and len(records) + 2 <= n:
            records += text_patch(rng, rng.randrange(DOCS_POINTS))
        elif roll < invalid_share:
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


def match_v(condition: dict[str, Any], _pid: Any, point: PointState) -> bool:
    """The one filter shape the workload uses: payload ``v`` equals a value."""
    clause = condition["must"][0]
    return point.payload.get(clause["key"]) == clause["match"]["value"]


def is_kv_patch(record: Record) -> bool:
    """A kv patch the reference model applies: valid, and not poison, except for a record that
    breaks verification, which fails after its window was applied."""
    return (record.topic == "patch" and record.event is not None and record.event["collection"] == KV
            and record.poison in (None, "verify"))


POISON_STAGES = ("validate", "plan", "embed", "apply", "verify")


def poison_marker(stage: str) -> str:
    return f"POISON-{stage.upper()}"


def poison_record(rng: random.Random, stage: str, points: int) -> Record:
    """A valid event carrying the marker of ``poison-<stage>``: an upsert of kv (never rejected
    for a missing point), or for embedding a re-embed of docs with the marker in its inline text."""
    if stage == "embed":
        pid = rng.randrange(DOCS_POINTS)
        e: dict[str, Any] = {"schema_version": 1, "kind": "reembed", "collection": DOCS, "vector_name": "dense",
                             "points": [{"id": pid, "text": f"a text with {poison_marker(stage)} in it"}]}
        return Record("reembed", f"{DOCS}/{pid}".encode(), json.dumps(e).encode(), e, poison=stage)
    pid = rng.randrange(points)
    e = {"schema_version": 1, "collection": KV, "op": "upsert",
         "points": [{"id": pid, "vector": {"d": [rng.random(), rng.random()]},
                     "payload": {"v": rng.randrange(100), "tag": poison_marker(stage)}}]}
    return Record("patch", f"{KV}/{pid}".encode(), json.dumps(e).encode(), e, poison=stage)


OVERSIZED_BYTES = 900_000  # under QCC_MAX_EVENT_BYTES (1 MiB); base64 in a JSON dead letter would not fit


def hostile_workload(rng: random.Random, n: int, *, points: int, text_share: float) -> list[Record]:
    """``make_workload`` with records that break each stage mixed in: not JSON and a wrong vector
    size (at least ``n // 200`` of each), ``n // 200`` (at least 2) per poison stage, and one
    ~900 KB record that is not JSON (dead-lettered with its original as the record value).
    The first ``points`` records upsert every kv point and are clean."""
    each = max(2, n // 200)
    extra: list[Record] = []
    for _ in range(each):
        pid = rng.randrange(points)
        extra.append(Record("patch", f"{KV}/{pid}".encode(), b"{not json at all", None))
        extra.append(Record("patch", f"{KV}/{pid}".encode(), json.dumps(
            {"schema_version": 1, "collection": KV, "op": "upsert",
             "points": [{"id": pid, "vector": {"d": [1.0, 2.0, 3.0]}}]}).encode(), None))
        extra += [poison_record(rng, stage, points) for stage in POISON_STAGES]
    big = b'{"schema_version": 1, "collection": "kv", "op": "set_payload", "ids": [1], "payload": {"a": "'
    extra.append(Record("patch", f"{KV}/1".encode(), big + b"x" * (OVERSIZED_BYTES - len(big)), None))
    # an upsert of every kv point first: few rejections for a missing point, so the windows'
    # dead letters are mostly the hostile records (see the scenario: the first windows are small)
    first = []
    for pid in range(points):
        e = {"schema_version": 1, "collection": KV, "op": "upsert",
             "points": [{"id": pid, "vector": {"d": [1.0, 0.0]}, "payload": {"v": pid % 100}}]}
        first.append(Record("patch", f"{KV}/{pid}".encode(), json.dumps(e).encode(), e))
    records = make_workload(rng, n - len(extra) - len(first), points=points, text_share=text_share)
    for record in extra:
        records.insert(rng.randrange(len(records) + 1), record)
    return first + records


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


@dataclass(frozen=True)
class DocVector:
    """What a docs point's dense vector must embed after its last re-embed."""

    text: str
    from_field: bool  # a re-embed by ids + text_field: the last text written before it was published
    patched: bool  # that text came from a text patch (the watermark's case), not the initial payload


def reference_docs(published: list[Record]) -> tuple[dict[int, str], dict[int, DocVector | None]]:
    """docs after the records, taken in publish order: each point's payload text, and the text
    its dense vector must embed (absent: never re-embedded, the initial vector; None: unknown).

    A re-embed from the field embeds the last text published before it (the contract). A text
    patch published after a field re-embed of the same point leaves that vector unknown: the
    re-embed may have read the payload before or after it. Inline texts do not depend on patches.
    """
    payload = {pid: doc_text(pid) for pid in range(DOCS_POINTS)}
    patched: set[int] = set()
    vectors: dict[int, DocVector | None] = {}
    for r in published:
        e = r.event
        if e is None or e.get("collection") != DOCS or r.poison:
            continue
        if r.topic == "patch":
            pid = e["ids"][0]
            payload[pid] = e["payload"]["text"]
            patched.add(pid)
            if (known := vectors.get(pid)) is not None and known.from_field:
                vectors[pid] = None
        elif e.get("ids") == [MISSING_DOC]:
            continue
        elif "points" in e:
            vectors[e["points"][0]["id"]] = DocVector(e["points"][0]["text"], False, False)
        else:
            pid = e["ids"][0]
            vectors[pid] = DocVector(payload[pid], True, pid in patched)
    return payload, vectors


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
        offsets = {
            (v["topic"], r["partition"], o) for r in v["ranges"] for o in range(r["first_offset"], r["last_offset"] + 1)
        }
        replayed |= offsets & confirmed
        confirmed |= offsets
        dead -= offsets
        dead |= {(v["topic"], d["partition"], d["offset"]) for d in v["dead_letters"]}
    return dead, replayed
