"""End to end on the real broker: every operation, re-embeds, dead letters, retries."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.embedding.embedder import Embedder
from connector.settings import DEFAULT_DENSE_MODEL, Settings
from tests.integration.harness import Stack, Worker, all_covered, produce, qdrant_outage, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

UUID_ID = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"


def cosine(a: list[float], b: tuple[float, ...]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


def _create_collections(target: QdrantTarget) -> None:
    client = target.client()
    client.create_collection(
        "docs",
        vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE),
                        "tiny": qm.VectorParams(size=3, distance=qm.Distance.DOT)},
        sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
    )
    client.create_collection("plain", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.EUCLID))
    client.close()


def ev(op: str, **fields: Any) -> dict[str, Any]:
    return {"schema_version": 1, "collection": fields.pop("collection", "docs"), "op": op, **fields}


def rev(**fields: Any) -> dict[str, Any]:
    return {"schema_version": 1, "kind": "reembed", "collection": "docs", **fields}


def _key(event: dict[str, Any]) -> bytes:
    ids = event.get("ids") or [p["id"] for p in event.get("points", [])]
    return f"{event['collection']}/{ids[0] if len(ids) == 1 else '*'}".encode()


async def _run(kafka, stack: Stack, patches: list[Any], reembeds: list[Any] = ()) -> tuple[list, list, list]:
    def encode(e: Any) -> tuple[bytes | None, bytes]:
        return (None, e) if isinstance(e, bytes) else (_key(e), json.dumps(e).encode())

    sent_p = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], [encode(e) for e in patches])
    worker = Worker(stack)
    try:
        ver = await read_topic(
            kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent_p), timeout=120
        )
        sent_r = []
        if reembeds:
            sent_r = await produce(kafka.bootstrap, stack.env["QCC_REEMBED_TOPIC"], [encode(e) for e in reembeds])
            ver = await read_topic(
                kafka.bootstrap,
                stack.env["QCC_VERIFICATION_TOPIC"],
                until=lambda rs: (
                    all_covered(sent_p)(rs)
                    and all_covered(sent_r)([r for r in rs if r["topic"] == stack.env["QCC_REEMBED_TOPIC"]])
                ),
                timeout=120,
            )
        dead = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=5)
    except AssertionError:
        print(worker.output()[-6000:])
        raise
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    return ver, dead, sent_p


async def test_every_operation_and_reembed(kafka, model_env, model_paths, tmp_path: Path,
                                          qdrant_target: QdrantTarget) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target)
    await stack.create_topics()
    _create_collections(qdrant_target)
    patches = [
        ev(
            "upsert",
            vector_name="dense",
            points=[
                {
                    "id": i,
                    "text": f"document number {i}",
                    "payload": {"body": f"the body of document {i}", "user": "u-123" if i % 2 else "u-9"},
                }
                for i in range(1, 11)
            ],
        ),
        ev(
            "upsert",
            points=[
                {
                    "id": UUID_ID.upper(),
                    "vector": {"tiny": [1, 2, 3], "bm25": {"indices": [5, 1], "values": [0.5, 0.25]}},
                    "payload": {"kind": "uuid"},
                }
            ],
        ),
        ev("set_payload", ids=[1, 2, 3], payload={"archived": True}),
        ev("set_payload", ids=[4], key="meta.review", payload={"by": "ana"}),
        ev("overwrite_payload", ids=[5], payload={"body": "replaced", "user": "u-9"}),
        ev("delete_payload", ids=[6], keys=["user"]),
        ev("clear_payload", ids=[7]),
        ev("update_vectors", points=[{"id": 8, "vector": {"tiny": [0, 0, 1]}}]),
        ev("delete_vectors", ids=[UUID_ID], vector_names=["bm25"]),
        ev("delete", ids=[10]),
        ev("set_payload", filter={"must": [{"key": "user", "match": {"value": "u-9"}}]}, payload={"team": "nine"}),
        ev("upsert", collection="plain", points=[{"id": 1, "vector": [0.5, 0.5]}]),
    ]
    reembeds = [
        rev(vector_name="dense", ids=[2, 3], text_field="body"),
        rev(vector_name="bm25", filter={"must": [{"key": "user", "match": {"value": "u-123"}}]}, text_field="body"),
        rev(vector_name="dense", points=[{"id": 4, "text": "fresh text for four"}]),
    ]
    ver, dead, _ = await _run(kafka, stack, patches, reembeds)
    assert dead == []
    assert {v["verification"]["status"] for v in ver if v["collection"] == "plain"} == {"verified"}
    client = qdrant_target.client()
    try:
        pts = {p.id: p for p in client.scroll("docs", limit=100, with_vectors=True)[0]}
        assert set(pts) == set(range(1, 10)) | {UUID_ID}
        assert pts[1].payload["archived"] is True
        assert pts[3].payload["archived"] is True
        assert pts[4].payload["meta"] == {"review": {"by": "ana"}}
        assert pts[5].payload == {"body": "replaced", "user": "u-9", "team": "nine"}
        assert "user" not in pts[6].payload
        assert "team" not in pts[6].payload
        assert pts[7].payload == {}
        assert pts[8].vector["tiny"] == [0, 0, 1]
        assert "bm25" not in pts[UUID_ID].vector
        assert pts[UUID_ID].vector["tiny"] == [1, 2, 3]
        assert pts[2].payload["team"] == "nine"
        # re-embeds. bm25 by filter: written for exactly the points that were u-123 when it ran
        # (5 had become u-9 and 7 had lost its payload), no other
        assert {i for i in range(1, 10) if pts[i].payload.get("user") == "u-123"} == {1, 3, 9}
        assert {i for i in range(1, 10) if "bm25" in pts[i].vector} == {1, 3, 9}
        # dense: 2 and 3 now embed their body, 4 the inline text; 1 still embeds its upsert's text
        embedder = Embedder(Settings(model_paths=model_paths))
        texts = {
            1: "document number 1",
            2: "the body of document 2",
            3: "the body of document 3",
            4: "fresh text for four",
        }
        expected = dict(
            zip(texts, embedder.embed_sync(DEFAULT_DENSE_MODEL, "dense", list(texts.values())), strict=True)
        )
        embedder.close()
        closeness = {i: round(cosine(pts[i].vector["dense"], expected[i]), 3) for i in texts}
        assert all(c > 0.99 for c in closeness.values()), closeness
        assert pts[2].payload == {"body": "the body of document 2", "user": "u-9", "archived": True, "team": "nine"}
    finally:
        client.close()
    reembed_ver = [v for v in ver if v["topic"] == stack.env["QCC_REEMBED_TOPIC"]]
    assert sum(v["operations"].get("reembed", 0) for v in reembed_ver) == 3
    assert all(v["verification"]["status"] == "verified" for v in reembed_ver)


async def test_bad_input_goes_to_dead_letters_with_reasons(
    kafka, model_env, tmp_path: Path, qdrant_target: QdrantTarget
) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env, extra_env={"QCC_MAX_EVENT_BYTES": "2048"}, qdrant=qdrant_target)
    await stack.create_topics()
    _create_collections(qdrant_target)
    good = ev("upsert", collection="plain", points=[{"id": 1, "vector": [1, 2]}])
    patches = [
        good,
        b"{not json",
        b"\xff\xfe",
        json.dumps(ev("explode", ids=[1])).encode(),
        json.dumps({"schema_version": 1, "collection": "plain", "op": "set_payload", "ids": [1]}).encode(),
        ev("upsert", collection="plain", points=[{"id": 2, "vector": [1, 2, 3]}]),
        ev("delete", collection="missing", ids=[1]),
        ev("set_payload", collection="plain", ids=[1], payload={"big": "x" * 4000}),
        ev("set_payload", collection="plain", ids=[404], payload={"a": 1}),
        ev("set_payload", collection="plain", ids=[1], payload={"ok": True}),
    ]
    ver, dead, sent = await _run(kafka, stack, patches)
    codes = sorted(d["error"]["code"] for d in dead)
    assert codes == sorted(["invalid_json", "invalid_utf8", "unknown_operation", "schema_violation",
                            "vector_size_mismatch", "unknown_collection", "event_too_large", "point_not_found"])
    for record in dead:
        assert record["source"]["topic"] == stack.env["QCC_PATCH_TOPIC"]
        assert record["error"]["message"]
        assert (record["source"]["partition"], record["source"]["offset"]) in sent
    dead_refs = sum(len(v["dead_letters"]) for v in ver)
    assert dead_refs == len(dead)
    client = qdrant_target.client()
    try:
        assert client.retrieve("plain", [1])[0].payload == {"ok": True}
        assert client.retrieve("plain", [2]) == []
    finally:
        client.close()


async def test_worker_retries_while_qdrant_is_down(
    kafka, model_env, tmp_path: Path, qdrant_target: QdrantTarget
) -> None:
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    stack = Stack(
        kafka.bootstrap, tmp_path, model_env, extra_env={"QCC_FAILPOINTS_DIR": str(failpoints)}, qdrant=qdrant_target
    )
    await stack.create_topics()
    _create_collections(qdrant_target)
    events = [ev("upsert", collection="plain", points=[{"id": i, "vector": [i, 1]}]) for i in range(50)]
    sent = await produce(
        kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], [(_key(e), json.dumps(e).encode()) for e in events]
    )
    with qdrant_outage(qdrant_target, failpoints):
        worker = Worker(stack)
        # the window is taken and its first Qdrant call has failed three times over (0.2 + 0.4 + 0.8 s)
        await worker.wait_for_line("collection_exists(plain) failed", timeout=90)
        await worker.wait_for_line("; retry 3 in", timeout=60)
        early = await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], timeout=2)
    try:
        assert early == []  # nothing confirmed while Qdrant is unreachable
        ver = await read_topic(
            kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent), timeout=60
        )
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    assert sum(v["applied_event_count"] for v in ver) == 50
    client = qdrant_target.client()
    try:
        assert client.count("plain").count == 50
    finally:
        client.close()


async def test_policy_and_blast_radius_guard(kafka, model_env, tmp_path: Path, qdrant_target: QdrantTarget) -> None:
    stack = Stack(kafka.bootstrap, tmp_path, model_env, extra_env={
        "QCC_FILTER_BLAST_RADIUS": "10", "QCC_DENIED_OPERATIONS": "clear_payload"}, qdrant=qdrant_target)
    await stack.create_topics()
    client = qdrant_target.client()
    client.create_collection("plain", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.EUCLID))
    client.upsert(
        "plain", [qm.PointStruct(id=i, vector=[i, 1], payload={"tag": "all", "few": i < 5}) for i in range(30)]
    )
    client.close()
    patches = [
        ev("delete", collection="plain", filter={"must": [{"key": "tag", "match": {"value": "all"}}]}),
        ev("clear_payload", collection="plain", ids=[1]),
        ev(
            "set_payload",
            collection="plain",
            filter={"must": [{"key": "few", "match": {"value": True}}]},
            payload={"seen": 1},
        ),
        ev(
            "delete",
            collection="plain",
            filter={"must": [{"key": "tag", "match": {"value": "all"}}]},
            blast_radius_override=True,
        ),
    ]
    _, dead, _ = await _run(kafka, stack, patches)
    reasons = {d["error"]["code"]: d["error"]["message"] for d in dead}
    assert set(reasons) == {"blast_radius_exceeded", "operation_denied", "override_denied"}
    assert "30 points" in reasons["blast_radius_exceeded"]
    client = qdrant_target.client()
    try:
        assert client.count("plain").count == 30  # no filter delete went through
        assert sorted(p.id for p in client.scroll("plain", limit=50)[0] if p.payload.get("seen") == 1) == [
            0,
            1,
            2,
            3,
            4,
        ]
    finally:
        client.close()
