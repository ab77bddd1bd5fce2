"""Chunked documents through the window processor (no broker), on local mode and on the real server
over REST and gRPC, with the real model and real prose: a document's upsert writes its chunk set, an
edit embeds only its changed chunks and deletes the stale ones, a payload patch reaches every chunk,
a delete and a tombstone remove them all, each window is verified down to "no other chunk of the
document", and a search finds a sentence deep in a document."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

import pytest
from qdrant_client import models as qm

from connector import metrics
from connector.domain.documents import CHUNK_KEY, DOCUMENT_ID_KEY, chunk_id
from connector.domain.records import VerificationEvent, VerificationOutcome
from connector.embedding.embedder import Embedder
from connector.qdrant import make_client, make_retrying
from connector.settings import DEFAULT_DENSE_MODEL
from connector.stream.window import Record, WindowProcessor
from tests.integration.test_filter_verification import settings_for
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration

CHUNKED = {"articles": {"text_field": "body", "max_tokens": 64, "overlap_tokens": 8}}
# real prose no one here wrote: argparse's module docstring, paragraph by paragraph
PARAGRAPHS = [p.strip() for p in (argparse.__doc__ or "").split("\n\n") if p.strip()]
UUID_DOC = str(uuid.UUID(int=7))


def processor(target: QdrantTarget, model_paths: dict[str, str]) -> WindowProcessor:
    config = settings_for(target, model_paths, chunked_collections=CHUNKED)
    client = make_client(config)
    return WindowProcessor(config, client, make_retrying(config, client), Embedder(config), "patch")


def records(events: list[dict[str, Any] | None], first: int, keys: list[bytes | None] | None = None) -> list[Record]:
    return [Record(topic="patches", partition=0, offset=first + i, value=None if e is None else json.dumps(
        {"schema_version": 1, "collection": "articles", **e}).encode(), key=(keys or [None] * len(events))[i])
        for i, e in enumerate(events)]


def upsert(doc: int | str, text: str, **payload: Any) -> dict[str, Any]:
    return {"op": "upsert", "points": [{"id": doc, "payload": {"body": text, **payload}}]}


async def chunks_of(proc: WindowProcessor, doc: int | str) -> dict[int, dict[str, Any]]:
    points, _ = await proc.client.scroll("articles", scroll_filter=qm.Filter(must=[qm.FieldCondition(
        key=DOCUMENT_ID_KEY, match=qm.MatchValue(value=str(doc)))]), limit=1000, with_payload=True)
    return {p.payload[CHUNK_KEY]["index"]: {"id": str(p.id), **p.payload} for p in points if p.payload}


async def window(proc: WindowProcessor, events: list[dict[str, Any] | None], first: int,
                 keys: list[bytes | None] | None = None) -> VerificationEvent:
    result = await proc.process(records(events, first, keys))
    assert result.dead_letters == []
    (verification,) = result.verifications
    assert verification.verification.status == "verified", verification.verification
    return verification


async def test_documents_become_chunk_points_and_only_changed_chunks_are_embedded(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    proc = processor(qdrant_target, model_paths)
    await proc.client.create_collection("articles", vectors_config=qm.VectorParams(size=384,
                                                                                   distance=qm.Distance.COSINE))
    text = "\n\n".join(PARAGRAPHS)
    chunker = proc.embedder.chunker(DEFAULT_DENSE_MODEL, 64, 8)
    expected = chunker.chunks(text)
    assert len(expected) >= 6, "the document spans several chunks"
    try:
        first = await window(proc, [upsert(1, text, lang="en"), upsert(UUID_DOC, PARAGRAPHS[0])], 0)
        (doc1, doc2) = first.documents
        assert (doc1.document_id, doc1.count, doc1.written, doc1.embedded, doc1.deleted) == (
            1, len(expected), len(expected), len({c.sha256 for c in expected}), 0)
        assert (doc2.document_id, doc2.count) == (uuid.UUID(UUID_DOC), 1)
        stored = await chunks_of(proc, 1)
        assert [stored[i][CHUNK_KEY]["sha256"] for i in sorted(stored)] == [c.sha256 for c in expected]
        assert stored[0]["id"] == chunk_id("articles", 1, 0)
        assert all(point["lang"] == "en" and "body" not in point for point in stored.values())

        # a paragraph inserted near the start and the last ones dropped: the chunks after the
        # insertion move (their vectors copied), only the new text is embedded, the tail is deleted
        edited_paragraphs = [PARAGRAPHS[0], "A sentence no one wrote before, about kumquats.", *PARAGRAPHS[1:-2]]
        edited = "\n\n".join(edited_paragraphs)
        new = chunker.chunks(edited)
        embedded_before = _texts_embedded()
        second = await window(proc, [upsert(1, edited, lang="en"),
                                     {"op": "set_payload", "ids": [1], "payload": {"tag": "reviewed"}}], 2)
        (doc1,) = second.documents
        held = {c.sha256 for c in expected}
        fresh = {c.sha256 for c in new if c.sha256 not in held}
        assert 0 < doc1.embedded == len(fresh) < len(new)
        assert doc1.reused == len(new) - len(fresh)
        assert doc1.deleted == len(expected) - len(new) > 0
        assert _texts_embedded() - embedded_before == len(fresh)
        stored = await chunks_of(proc, 1)
        assert sorted(stored) == list(range(len(new)))
        assert all(point["tag"] == "reviewed" and point[CHUNK_KEY]["count"] == len(new) for point in stored.values())
        assert second.chunks is not None
        assert second.chunks.deleted == doc1.deleted

        # a search for a sentence deep in the document finds its chunk
        deep = new[-1]
        (vector,) = await proc.embedder.embed(DEFAULT_DENSE_MODEL, "dense", [deep.text[:200]])
        hits = await proc.client.query_points("articles", query=list(vector), limit=1, with_payload=True)
        assert hits.points[0].payload is not None
        assert hits.points[0].payload[CHUNK_KEY]["document_id"] == "1"
        assert hits.points[0].payload[CHUNK_KEY]["index"] == deep.index

        # a delete and a tombstone remove every chunk
        third = await window(proc, [{"op": "delete", "ids": [UUID_DOC]}, None], 4,
                             keys=[None, b"articles/1"])
        assert {d.count for d in third.documents} == {0}
        assert await chunks_of(proc, 1) == {}
        assert await chunks_of(proc, UUID_DOC) == {}
    finally:
        await proc.client.close()


async def test_a_stale_chunk_left_behind_is_removed_and_a_remaining_one_is_a_mismatch(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    proc = processor(qdrant_target, model_paths)
    await proc.client.create_collection("articles", vectors_config=qm.VectorParams(size=384,
                                                                                   distance=qm.Distance.COSINE))
    try:
        await window(proc, [upsert(1, PARAGRAPHS[0])], 0)
        # a chunk of document 1 at index 40, as an interrupted earlier write of a longer text leaves it:
        # found by the document id (not by the stored count, 1), and removed by the next write
        (one,) = (await chunks_of(proc, 1)).values()
        left = {**one, CHUNK_KEY: {**one[CHUNK_KEY], "index": 40}}
        left.pop("id")
        await proc.client.upsert("articles", [qm.PointStruct(id=chunk_id("articles", 1, 40), vector=[0.1] * 384,
                                                              payload=left)])
        verification = await window(proc, [upsert(1, PARAGRAPHS[1])], 1)
        assert verification.documents[0].deleted == 1
        assert sorted(await chunks_of(proc, 1)) == [0]

        # the read-back counts the document's chunks by its id: one written behind the window's back is found
        stage = proc.chunks
        schema = await proc.catalog.get("articles")
        items = proc.parse(records([upsert(1, PARAGRAPHS[2])], 2))
        planned = await stage.plan("articles", stage.chunked["articles"], schema, items, None)
        await proc.client.upsert("articles", [qm.PointStruct(id=chunk_id("articles", 1, 7), vector=[0.1] * 384,
                                                              payload={CHUNK_KEY: {"document_id": "1"}})])
        outcome = await stage.check("articles", planned, planned.ops, set(),
                                    VerificationOutcome(status="verified"), None)
        assert outcome.status == "mismatch"
        assert [m.id for m in outcome.mismatches] == [uuid.UUID(chunk_id("articles", 1, 7))]
    finally:
        await proc.client.close()


def _texts_embedded() -> float:
    return sum(sample.value for family in metrics.TEXTS_EMBEDDED.collect() for sample in family.samples
               if sample.name.endswith("_total"))


@only_targets("local")
async def test_a_text_over_the_models_window_in_an_unchunked_collection_is_named_as_cut(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    proc = processor(qdrant_target, model_paths)
    await proc.client.create_collection("docs", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
    long = "\n\n".join(PARAGRAPHS)
    try:
        result = await proc.process([Record("patches", 0, 0, json.dumps({
            "schema_version": 1, "collection": "docs", "op": "upsert",
            "points": [{"id": 1, "text": long}, {"id": 2, "text": PARAGRAPHS[0]}]}).encode())])
        (verification,) = result.verifications
        (cut,) = verification.texts_cut  # point 2's text fits the window: not listed
        assert (cut.id, cut.vector, cut.chars) == (1, "", len(long))
        assert 500 < cut.embedded_chars < len(long)  # the first 510 tokens: ~2,000 characters
        assert verification.documents == []
        assert verification.chunks is None
    finally:
        await proc.client.close()
