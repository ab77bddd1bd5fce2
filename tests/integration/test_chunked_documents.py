"""Chunked documents through the window processor (no broker), on local mode and on the real server
over REST and gRPC, with the real model and real prose: a document's upsert writes its chunk set, an
edit embeds only its changed chunks and deletes the stale ones, a payload patch reaches every chunk,
a delete and a tombstone remove them all, each window is verified down to "no other chunk of the
document", and a search finds a sentence deep in a document.

What must not go wrong with them: an inline re-embed is refused (it would rewrite the chunks' payload
from the window's read); a delete by filter of a document's chunks is no mismatch; a re-embed by ids
waits for the patches before it; a model whose vectors the collection does not take fails only the
events that embed, and the patch after a failed write reaches the chunks that are there; the
worker refuses such a model at start (exit 78); chunking runs off the event loop; the chunk index is
made through the retrying caller."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector import cli, metrics
from connector.dev.spawn import free_port
from connector.domain.changes import SCHEMA_VERSION, UpsertEvent, UpsertPoint
from connector.domain.chunking import Chunk
from connector.domain.documents import CHUNK_KEY, DOCUMENT_ID_KEY, DocumentPlanner, PlannedEvent, chunk_id, materialize
from connector.domain.records import VerificationEvent, VerificationOutcome
from connector.embedding.embedder import Embedder
from connector.qdrant import RetryingClient, make_client, make_retrying
from connector.settings import DEFAULT_DENSE_MODEL
from connector.stream.window import Record, WindowProcessor
from tests.conftest import API_KEY, READ_ONLY_API_KEY
from tests.integration.harness import Stack, Worker
from tests.integration.test_filter_verification import settings_for
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration

CHUNKED = {"articles": {"text_field": "body", "max_tokens": 64, "overlap_tokens": 8}}
# real prose no one here wrote: argparse's module docstring, paragraph by paragraph
PARAGRAPHS = [p.strip() for p in (argparse.__doc__ or "").split("\n\n") if p.strip()]
UUID_DOC = str(uuid.UUID(int=7))


def processor(target: QdrantTarget, model_paths: dict[str, str], expect: Literal["patch", "reembed"] = "patch",
              before_payload_texts: Callable[[], Awaitable[bool]] | None = None,
              beside: WindowProcessor | None = None) -> WindowProcessor:
    """A window processor; ``beside``: one whose client it shares (local mode opens a folder once)."""
    config = settings_for(target, model_paths, chunked_collections=CHUNKED)
    client = beside.client if beside is not None else make_client(config)
    return WindowProcessor(config, client, make_retrying(config, client), Embedder(config), expect,
                           before_payload_texts=before_payload_texts)


def records(events: list[dict[str, Any] | None], first: int, keys: list[bytes | None] | None = None,
            topic: str = "patches") -> list[Record]:
    return [Record(topic=topic, partition=0, offset=first + i, value=None if e is None else json.dumps(
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


async def test_an_inline_reembed_is_refused_and_a_delete_by_filter_is_no_mismatch(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    proc = processor(qdrant_target, model_paths)
    reembeds = processor(qdrant_target, model_paths, "reembed", beside=proc)
    await proc.client.create_collection("articles", vectors_config=qm.VectorParams(size=384,
                                                                                   distance=qm.Distance.COSINE))
    try:
        await window(proc, [upsert(1, PARAGRAPHS[0]), upsert(2, "\n\n".join(PARAGRAPHS[1:6]))], 0)
        # a new text would be new chunks (their payload too), from what the window read: refused
        result = await reembeds.process(records([{"kind": "reembed", "points": [{"id": 2, "text": PARAGRAPHS[7]}]}],
                                                0, topic="reembeds"))
        assert [d.error.code for d in result.dead_letters] == ["chunked_document"]
        assert "upsert on the patch topic" in result.dead_letters[0].error.message
        assert sorted(await chunks_of(proc, 2)) == list(range(len(await chunks_of(proc, 2))))
        # a delete by filter removes document 1's chunks in the window that tags them: the chunk check
        # counts what the filter matched (it expected them to remain: a mismatch that was none)
        deleted = await window(proc, [{"op": "set_payload", "ids": [1], "payload": {"tag": "gone"}},
                                      {"op": "delete", "filter": {"must": [{"key": "tag",
                                                                            "match": {"value": "gone"}}]}}], 2)
        assert deleted.verification.mismatches == []
        assert await chunks_of(proc, 1) == {}
        assert await chunks_of(proc, 2) != {}
    finally:
        await proc.client.close()


@only_targets("local")
@pytest.mark.parametrize("settled", [True, False])
async def test_a_reembed_by_ids_waits_for_the_patches_before_it(qdrant_target: QdrantTarget,
                                                               model_paths: dict[str, str], settled: bool) -> None:
    """The chunks' texts are payload texts: a re-embed by ids reads them only after the patches
    published before it (the patch watermark's wait, here its answer); one whose wait was cut short
    is handed back to be published again, as for any collection."""
    waits: list[bool] = []

    async def watermark() -> bool:
        waits.append(settled)
        return settled

    proc = processor(qdrant_target, model_paths)
    await proc.client.create_collection("articles", vectors_config=qm.VectorParams(size=384,
                                                                                   distance=qm.Distance.COSINE))
    reembeds = processor(qdrant_target, model_paths, "reembed", before_payload_texts=watermark, beside=proc)
    try:
        await window(proc, [upsert(1, PARAGRAPHS[0])], 0)
        result = await reembeds.process(records([{"kind": "reembed", "ids": [1], "text_field": "body"}], 5,
                                                topic="reembeds"))
        assert result.dead_letters == []
        assert waits == [settled]
        assert [r.offset for r in result.rechecks] == ([] if settled else [5])
    finally:
        await proc.client.close()


def _stored_document(chunker_chunks: Callable[[str], list[Chunk]], doc: int, text: str, size: int,
                     ) -> list[qm.PointStruct]:
    """The chunk points the connector writes for a document, with vectors of ``size`` (a collection
    whose vector is not the model's)."""
    planner = DocumentPlanner("articles", "body", "", DEFAULT_DENSE_MODEL, chunker_chunks, {})
    planned = planner.plan(0, UpsertEvent(schema_version=SCHEMA_VERSION, collection="articles", op="upsert",
                                          points=[UpsertPoint(id=doc, payload={"body": text, "lang": "en"})]))
    assert isinstance(planned, PlannedEvent)
    (write, *_) = materialize(planned, {("text", sha): {"": (0.5,) * size} for sha in planner.to_embed})
    return [qm.PointStruct(id=pid, vector=list(data.vectors[""]), payload=data.payload)  # type: ignore[arg-type]
            for pid, data in (write.points or {}).items()]


async def test_a_model_the_vector_does_not_take_fails_only_the_writes_and_the_patch_after_one_reaches_every_chunk(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    proc = processor(qdrant_target, model_paths)
    await proc.client.create_collection("articles", vectors_config=qm.VectorParams(size=8,
                                                                                   distance=qm.Distance.COSINE))
    chunker = proc.embedder.chunker(DEFAULT_DENSE_MODEL, 64, 8)
    one, two = _stored_document(chunker.chunks, 1, "\n\n".join(PARAGRAPHS[:6]), 8), \
        _stored_document(chunker.chunks, 2, PARAGRAPHS[6], 8)
    assert len(one) >= 3
    await proc.client.upsert("articles", one + two)
    try:
        result = await proc.process(records([
            upsert(1, PARAGRAPHS[7]),  # one chunk, embedded: 384 dimensions where the vector has 8
            {"op": "set_payload", "ids": [1], "payload": {"tag": "t"}},
            {"op": "delete", "ids": [2]},
        ], 0))
        assert [(d.source.offset, d.error.code) for d in result.dead_letters] == [(0, "vector_size_mismatch")]
        (verification,) = result.verifications
        assert verification.verification.status == "verified", verification.verification
        stored = await chunks_of(proc, 1)
        # planned again without the write that failed: the tag reaches the chunks that are there
        assert len(stored) == len(one)
        assert all(point.get("tag") == "t" for point in stored.values())
        assert await chunks_of(proc, 2) == {}
    finally:
        await proc.client.close()


@only_targets("local")
async def test_the_event_loop_runs_while_a_document_is_chunked(qdrant_target: QdrantTarget,
                                                              model_paths: dict[str, str]) -> None:
    """Chunking is CPU work (~0.8 s for 100,000 characters on this machine): in the embedding thread,
    the loop goes on. The splitter here waits until a coroutine on the loop has run while it splits:
    on the loop's own thread it would wait in vain."""
    proc = processor(qdrant_target, model_paths)
    await proc.client.create_collection("articles", vectors_config=qm.VectorParams(size=384,
                                                                                   distance=qm.Distance.COSINE))
    chunker = proc.embedder.chunker(DEFAULT_DENSE_MODEL, 64, 8)
    loop = asyncio.get_running_loop()
    splitting, loop_ran = asyncio.Event(), threading.Event()
    split = chunker.chunks

    def chunks(text: str) -> list[Chunk]:
        loop.call_soon_threadsafe(splitting.set)
        if not loop_ran.wait(timeout=10):
            raise AssertionError("the event loop did not run while the text was chunked")
        return split(text)

    async def beside() -> None:
        await splitting.wait()
        loop_ran.set()

    chunker.chunks = chunks  # type: ignore[method-assign]
    meanwhile = asyncio.ensure_future(beside())
    try:
        await window(proc, [upsert(1, "\n\n".join(PARAGRAPHS))], 0)
        await asyncio.wait_for(meanwhile, timeout=10)
    finally:
        meanwhile.cancel()
        await proc.client.close()


def test_a_model_the_collection_does_not_take_stops_the_worker_at_start(model_env: dict[str, str],
                                                                       tmp_path: Path) -> None:
    local = QdrantClient(path=str(tmp_path / "qdrant"))
    local.create_collection("articles", vectors_config=qm.VectorParams(size=768, distance=qm.Distance.COSINE))
    local.close()
    # no broker: the check comes before the worker waits for one
    stack = Stack(f"127.0.0.1:{free_port()}", tmp_path, model_env, extra_env={
        "QCC_CHUNKED_COLLECTIONS": json.dumps(CHUNKED), "QCC_LOG_FORMAT": "json", "QCC_HTTP_PORT": "0"})
    worker = Worker(stack)
    try:
        code = worker.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        worker.stop(timeout=10)
        raise AssertionError(f"the worker did not stop:\n{worker.output()[-3000:]}") from None
    assert code == 78, worker.output()[-3000:]
    last = json.loads(worker.output().splitlines()[-1])
    assert last["level"] == "critical"
    assert "'articles'" in last["message"]
    assert "makes 384-dimensional vectors, the unnamed vector has 768" in last["message"]


async def test_the_chunk_index_is_made_through_the_retrying_caller(qdrant_server_with_keys: Any) -> None:
    admin = QdrantTarget("rest", server=qdrant_server_with_keys, api_key=API_KEY)
    admin.wipe()
    writer = RetryingClient(admin.async_client())
    reader = RetryingClient(QdrantTarget("rest", server=qdrant_server_with_keys,
                                         api_key=READ_ONLY_API_KEY).async_client(), retry_max=0.2)
    try:
        await writer.client.create_collection("articles", vectors_config=qm.VectorParams(
            size=4, distance=qm.Distance.COSINE))
        # create-collection --chunked with a key that may only read: retried and said, not an unexpected error
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(cli._chunk_index(reader, "articles"), timeout=2)  # noqa: SLF001 - the command's step
        assert "QCC_QDRANT_API_KEY" in (reader.failure or "")
        from connector.qdrant.catalog import ensure_document_index  # the worker's and create-collection's helper

        assert await ensure_document_index(writer, "articles") is True
        assert await ensure_document_index(writer, "articles") is False  # there now: nothing asked
        assert DOCUMENT_ID_KEY in ((await writer.client.get_collection("articles")).payload_schema or {})
    finally:
        await writer.client.close()
        await reader.client.close()
