"""A window of Debezium records through the window processor (no broker), on local mode and on the
server: the events of one record apply together or are dead-lettered together and counted once,
a truncate with ``truncate: delete_all`` empties the collection, a record the mapping cannot take
is dead-lettered while the rest of its window applies; Debezium's placeholder is never written or
embedded (the verification event names the columns a point lacks), a row missing from Qdrant is
written whole by its next change, and a text over QCC_CDC_MAX_TEXT_CHARS costs its row nothing.
A chunked text column (its payload key renamed) is chunked whole, never cut; a row's columns
Debezium did not send stay on its chunks as they were, or are named as lacking; a row without
text has no chunks, and is no dead letter."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.domain.cdc_mapping import CdcMapping
from connector.domain.chunking import rebuild_text
from connector.domain.debezium import DEBEZIUM_PLACEHOLDER
from connector.domain.documents import CHUNK_KEY
from connector.embedding.embedder import Embedder
from connector.metrics import TEXTS_EMBEDDED
from connector.qdrant import make_client, make_retrying
from connector.settings import DEFAULT_DENSE_MODEL
from connector.stream.window import Record, WindowProcessor
from tests.integration.test_filter_verification import settings_for
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration

SOURCE = {"connector": "postgresql", "db": "shop", "schema": "public", "lsn": 1}


def mapping(**tables: dict[str, Any]) -> CdcMapping:
    return CdcMapping.model_validate({"tables": tables, "truncate": "delete_all"})


def processor(target: QdrantTarget, model_paths: dict[str, str], cdc: CdcMapping, **extra: Any) -> WindowProcessor:
    config = settings_for(target, model_paths, **extra)
    client = make_client(config)
    return WindowProcessor(config, client, make_retrying(config, client), Embedder(config), "patch", cdc_mapping=cdc)


def records(values: list[dict[str, Any]], first: int = 0) -> list[Record]:
    return [Record(topic="shop.public.items", partition=0, offset=first + i, value=json.dumps(v).encode())
            for i, v in enumerate(values)]


def row_change(op: str, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    return {"before": before, "after": after, "op": op, "source": {**SOURCE, "table": table.split(".")[1]}}


@only_targets("local", "grpc")
async def test_a_record_applies_whole_or_not_at_all_and_a_truncate_empties(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    cdc = mapping(**{
        "public.items": {"collection": "items", "key": ["id"], "texts": {"body": {"vector": "body"}}},
        # its second text goes to a vector the collection lacks: the record's upsert must not apply either
        "public.broken": {"collection": "items", "key": ["id"],
                          "texts": {"body": {"vector": "body"}, "title": {"vector": "missing"}}},
    })
    proc = processor(qdrant_target, model_paths, cdc)
    try:
        await proc.client.create_collection("items", vectors_config={
            "body": qm.VectorParams(size=384, distance=qm.Distance.COSINE)})
        first = await proc.process(records([
            row_change("c", "public.items", None, {"id": 1, "body": "one", "n": 1}),
            row_change("c", "public.broken", None, {"id": 2, "body": "two", "title": "second"}),
            row_change("c", "public.items", None, {"id": 3, "body": "three", "n": 3}),
            row_change("u", "public.items", {"id": 1, "body": "one", "n": 1}, {"id": 1, "body": "one", "n": 2}),
            row_change("c", "public.nowhere", None, {"id": 4}),
        ]))
        [verification] = first.verifications[:1]
        assert [(d.source.offset, d.error.code) for d in first.dead_letters] == [(1, "unknown_vector"),
                                                                                 (4, "unmapped_change")]
        assert verification.event_count == 4  # the four records of "items" (one of them failed), each once
        assert verification.applied_event_count == 3
        assert verification.operations == {"upsert": 2, "set_payload": 1}
        assert verification.verification.status == "verified"
        points = {p.id: p.payload for p in (await proc.client.scroll("items", limit=10))[0]}
        assert points == {1: {"id": 1, "body": "one", "n": 2}, 3: {"id": 3, "body": "three", "n": 3}}

        second = await proc.process(records([row_change("t", "public.items", None, None)]))
        assert second.verifications[0].verification.status == "verified"
        assert (await proc.client.count("items")).count == 0
    finally:
        await proc.client.close()


def embedded() -> float:
    return sum(sample.value for metric in TEXTS_EMBEDDED.collect() for sample in metric.samples
               if sample.name.endswith("_total"))


@only_targets("local", "rest")
async def test_placeholders_are_never_data_and_a_later_change_heals_a_row(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    cdc = mapping(**{"public.docs": {"collection": "docs", "key": ["id"],
                                     "texts": {"body": {"vector": "body"}, "title": {"vector": "title"}}}})
    proc = processor(qdrant_target, model_paths, cdc, cdc_max_text_chars=40)
    body = "A long text that PostgreSQL keeps out of line, in its TOAST table."
    rows = {pid: {"id": pid, "title": f"title {pid}", "body": f"{body} ({pid})", "price": pid} for pid in range(1, 6)}
    unsent = DEBEZIUM_PLACEHOLDER

    def price(pid: int, value: int, *, full: bool) -> dict[str, Any]:
        """A price update: with the row before (REPLICA IDENTITY FULL), or without it and the body not sent."""
        old, rows[pid] = rows[pid], {**rows[pid], "price": value}
        return row_change("u", "public.docs", old if full else None, {**rows[pid], "body": unsent} if not full
                          else rows[pid])

    try:
        await proc.client.create_collection("docs", vectors_config={
            name: qm.VectorParams(size=384, distance=qm.Distance.COSINE) for name in ("body", "title")})
        # the snapshot; rows 3 and 5 never reach Qdrant (dead-lettered once, say)
        first = await proc.process(records([row_change("r", "public.docs", None, rows[pid]) for pid in (1, 2, 4)]))
        [snapshot] = first.verifications
        assert snapshot.verification.status == "verified"
        # every body is longer than 40 characters: embedded from its first 40, listed; the rows written whole
        assert snapshot.texts_cut_count == 3
        assert {(c.id, c.vector, c.chars, c.embedded_chars) for c in snapshot.texts_cut} == {
            (pid, "body", len(rows[pid]["body"]), 40) for pid in (1, 2, 4)}
        stored = {p.id: p for p in (await proc.client.scroll("docs", limit=10, with_vectors=True))[0]}
        assert {pid: p.payload for pid, p in stored.items()} == {pid: rows[pid] for pid in (1, 2, 4)}

        # as an earlier version of the connector wrote it: the placeholder as row 4's body
        await proc.client.set_payload("docs", {"body": unsent}, points=[4], wait=True)
        texts = embedded()
        second = await proc.process(records([
            price(1, 10, full=False),  # merge: the price set, the title re-embedded, the body left as it is
            price(3, 30, full=False),  # not in Qdrant: written as far as it was sent, the body named as lacking
            price(2, 20, full=True),  # the change alone: the price
            price(5, 50, full=True),  # not in Qdrant: the whole row
            price(4, 40, full=False),  # merge: the placeholder it holds is named as lacking
        ], first=3))
        [verification] = second.verifications
        assert second.dead_letters == []
        assert verification.verification.status == "verified", verification.verification
        assert [(u.id, u.payload_keys, u.vectors) for u in verification.verification.unavailable] == [
            (3, ["body"], ["body"]), (4, ["body"], [])]
        assert verification.texts_cut_count == 1  # row 5's body, embedded from the whole row
        assert embedded() - texts == 1 + 1 + 2 + 1  # the titles of 1, 3 and 4, both texts of 5; nothing for 2
        after = {p.id: p for p in (await proc.client.scroll("docs", limit=10, with_vectors=True))[0]}
        assert after[1].payload == rows[1]
        assert after[1].vector == {**stored[1].vector, "title": after[1].vector["title"]}  # type: ignore[index, dict-item]
        assert after[2].payload == rows[2]
        assert after[5].payload == rows[5]
        assert sorted(after[5].vector) == ["body", "title"]  # type: ignore[arg-type]
        assert after[3].payload == {k: v for k, v in rows[3].items() if k != "body"}  # nothing invented
        assert sorted(after[3].vector) == ["title"]  # type: ignore[arg-type]
        assert unsent not in json.dumps([p.payload for pid, p in after.items() if pid != 4])

        # the next change of rows 3 and 4 that carries the body (the row before, under FULL) heals them
        third = await proc.process(records([price(3, 31, full=True), price(4, 41, full=True)], first=8))
        [healed] = third.verifications
        assert healed.verification.status == "verified"
        assert healed.verification.unavailable == []
        assert (await proc.client.retrieve("docs", [4]))[0].payload == rows[4]
        point = (await proc.client.retrieve("docs", [3], with_vectors=True))[0]
        assert point.payload == rows[3]
        vectors = point.vector
        assert isinstance(vectors, dict)
        assert sorted(vectors) == ["body", "title"]
        [fresh] = proc.embedder.embed_sync(DEFAULT_DENSE_MODEL, "dense", [rows[3]["body"][:40]])
        assert max(abs(a - b) for a, b in zip(vectors["body"], fresh, strict=True)) < 1e-4  # type: ignore[arg-type]
    finally:
        await proc.client.close()


@only_targets("local", "rest")
async def test_a_chunked_text_column_is_chunked_whole_keeps_what_was_not_sent_and_may_be_empty(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    cdc = mapping(**{"public.wiki": {
        "collection": "wiki", "key": ["id"], "texts": {"Body Text": {"chunked": True}},
        "payload": {"id": "id", "title": "title", "Body Text": "content", "summary": "summary"}}})
    proc = processor(qdrant_target, model_paths, cdc, cdc_max_text_chars=200)
    body = argparse.__doc__ or ""
    edited = body.replace("command-line", "command line")
    assert len(body) > 1000  # far over QCC_CDC_MAX_TEXT_CHARS: an unchunked column would be embedded from 200

    async def documents() -> dict[str, list[dict[str, Any]]]:
        points, _ = await proc.client.scroll("wiki", limit=1000, with_payload=True)
        found: dict[str, list[dict[str, Any]]] = {}
        for point in points:
            assert point.payload is not None
            found.setdefault(point.payload[CHUNK_KEY]["document_id"], []).append(point.payload)
        return found

    def text_of(chunks: list[dict[str, Any]]) -> str:
        return rebuild_text([(c[CHUNK_KEY]["start"], c[CHUNK_KEY]["end"], c[CHUNK_KEY]["text"]) for c in chunks])

    try:
        await proc.client.create_collection("wiki", vectors_config=qm.VectorParams(size=384,
                                                                                   distance=qm.Distance.COSINE))
        first = await proc.process(records([
            row_change("c", "public.wiki", None, {"id": 1, "title": "t1", "Body Text": body, "summary": "s1"}),
            row_change("c", "public.wiki", None, {"id": 2, "title": "t2", "Body Text": None, "summary": "s2"}),
        ]))
        assert first.dead_letters == []  # a row without text: its document has no chunks
        [written] = first.verifications
        assert written.verification.status == "verified", written.verification
        assert written.texts_cut == []
        documents_of = await documents()
        assert {(d.document_id, d.count) for d in written.documents} == {(1, len(documents_of["1"])), (2, 0)}
        assert text_of(documents_of["1"]) == body  # whole: chunking is the answer to long texts
        assert all(c["title"] == "t1" and c["summary"] == "s1" and "content" not in c for c in documents_of["1"])
        assert "2" not in documents_of

        # updates without the row before (REPLICA IDENTITY DEFAULT): the summary not sent (TOASTed)
        second = await proc.process(records([
            row_change("u", "public.wiki", None, {"id": 1, "title": "t1b", "Body Text": edited,
                                                  "summary": DEBEZIUM_PLACEHOLDER}),
            row_change("u", "public.wiki", None, {"id": 3, "title": "t3", "Body Text": body,
                                                  "summary": DEBEZIUM_PLACEHOLDER}),
            row_change("u", "public.wiki", None, {"id": 2, "title": "t2", "Body Text": "", "summary": "s2"}),
        ], first=2))
        assert second.dead_letters == []
        [changed] = second.verifications
        assert changed.verification.status == "verified", changed.verification
        # row 3 never reached Qdrant before: written as far as it was sent, and named as lacking the rest
        assert [(u.id, u.payload_keys, u.vectors) for u in changed.verification.unavailable] == [(3, ["summary"], [])]
        now = await documents()
        assert text_of(now["1"]) == edited
        assert all(c["title"] == "t1b" and c["summary"] == "s1" for c in now["1"])  # kept, not wiped
        assert all("summary" not in c and DEBEZIUM_PLACEHOLDER not in json.dumps(c) for c in now["3"])
        assert "2" not in now
    finally:
        await proc.client.close()


@only_targets("local", "rest")
async def test_a_chunked_row_whose_text_was_not_sent_is_named_lacking_until_a_change_carries_it(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    """A row never written (its first change dead-lettered, or deleted behind the connector's
    back) whose update does not carry the text (TOASTed, unchanged): a document is its chunks, so
    nothing can be written; that is the source's gap, not the event's fault: no dead letter, the
    verification names the document as lacking everything. The next change that carries the text
    writes it."""
    cdc = mapping(**{"public.wiki": {
        "collection": "wiki", "key": ["id"], "texts": {"Body Text": {"chunked": True}},
        "payload": {"id": "id", "title": "title", "Body Text": "content", "summary": "summary"}}})
    proc = processor(qdrant_target, model_paths, cdc)
    body = argparse.__doc__ or ""
    try:
        await proc.client.create_collection("wiki", vectors_config=qm.VectorParams(size=384,
                                                                                   distance=qm.Distance.COSINE))
        unsent = await proc.process(records([
            row_change("u", "public.wiki", None, {"id": 4, "title": "t4", "Body Text": DEBEZIUM_PLACEHOLDER,
                                                  "summary": "s4"}),
        ]))
        assert unsent.dead_letters == []
        [lacking] = unsent.verifications
        assert (lacking.verification.status, lacking.verification.reason) == ("skipped", "no operation to apply")
        assert [(u.id, u.payload_keys, u.vectors) for u in lacking.verification.unavailable] == [
            (4, ["id", "summary", "title"], [""])]
        assert (await proc.client.count("wiki")).count == 0  # nothing invented

        carried = await proc.process(records([
            row_change("u", "public.wiki", None, {"id": 4, "title": "t4b", "Body Text": body,
                                                  "summary": DEBEZIUM_PLACEHOLDER}),
        ], first=1))
        assert carried.dead_letters == []
        [written] = carried.verifications
        assert written.verification.status == "verified", written.verification
        assert [(u.id, u.payload_keys, u.vectors) for u in written.verification.unavailable] == [(4, ["summary"], [])]
        points, _ = await proc.client.scroll("wiki", limit=1000, with_payload=True)
        assert points
        assert all(p.payload is not None and p.payload["title"] == "t4b" for p in points)
        assert rebuild_text([(p.payload[CHUNK_KEY]["start"], p.payload[CHUNK_KEY]["end"], p.payload[CHUNK_KEY]["text"])
                             for p in points if p.payload is not None]) == body
    finally:
        await proc.client.close()
