"""The bulk tools on a collection of chunked documents (docs/bulk.md, "Chunked collections"), on
local mode and the real server, with the real model and real prose: export -> import round trips
the chunk points and the manifest says how they were chunked; verify checks every document whole
and names the ones that are not; re-embed re-embeds each chunk from its own text, or, for other
limits, chunks every document again, verified and resumable; a migration under an alias re-chunks
for the new limits, keeps the alias's chunk ids and replays the stream into them."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.bulk.documents import check_documents
from connector.bulk.dump import manifest_path
from connector.bulk.export import export_collection
from connector.bulk.importer import import_dump
from connector.bulk.migrate import Migration
from connector.bulk.reembed import reembed_collection
from connector.bulk.verify import verify_against_dump, verify_collections
from connector.domain.chunking import Chunker
from connector.domain.documents import CHUNK_KEY, DOCUMENT_ID_KEY, chunk_id
from connector.embedding.embedder import Embedder
from connector.errors import InvalidOption
from connector.kafka.admin import ensure_topics
from connector.qdrant import RetryingClient, make_retrying
from connector.settings import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL, ChunkedField, Settings
from connector.stream.window import Record, WindowProcessor
from tests.bulk.test_bulk_tools import Interrupted, failing_at
from tests.integration.harness import produce
from tests.integration.test_filter_verification import settings_for
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration

SPEC = {"text_field": "body", "max_tokens": 64, "overlap_tokens": 8}
# real prose no one here wrote: module docstrings of the standard library
TEXTS = {1: argparse.__doc__ or "", 2: json.__doc__ or "", str(uuid.UUID(int=7)): (uuid.__doc__ or "").strip()}


def upsert(doc: int, text: str) -> tuple[bytes, bytes]:
    """A keyed upsert event of a document of the alias ``articles``."""
    return f"articles/{doc}".encode(), json.dumps({"schema_version": 1, "collection": "articles", "op": "upsert",
                                                   "points": [{"id": doc, "payload": {"body": text, "lang": "en"}}]
                                                   }).encode()


def chunks_by_document(points: list[Any]) -> dict[str, dict[int, Any]]:
    found: dict[str, dict[int, Any]] = {}
    for point in points:
        meta = point.payload[CHUNK_KEY]
        found.setdefault(meta["document_id"], {})[meta["index"]] = point
    return found


async def stored(client: Any, collection: str, vectors: bool = False) -> dict[str, dict[int, Any]]:
    points, _ = await client.scroll(collection, limit=10_000, with_payload=True, with_vectors=vectors)
    return chunks_by_document(points)


async def write_documents(settings: Settings, sink: RetryingClient, embedder: Embedder, collection: str,
                          texts: dict[Any, str]) -> None:
    """Upserts of documents through the worker's own window processor (chunked as the worker chunks)."""
    processor = WindowProcessor(settings, sink.client, sink, embedder, "patch")
    records = [Record("patches", 0, i, json.dumps({
        "schema_version": 1, "collection": collection, "op": "upsert",
        "points": [{"id": doc, "payload": {"body": text, "lang": "en"}}]}).encode())
        for i, (doc, text) in enumerate(texts.items())]
    result = await processor.process(records)
    assert result.dead_letters == []
    assert {v.verification.status for v in result.verifications} == {"verified"}


@pytest.fixture
async def articles(qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> AsyncIterator[
        tuple[Settings, RetryingClient, Embedder]]:
    settings = settings_for(qdrant_target, model_paths, chunked_collections={"articles": SPEC})
    sink = make_retrying(settings)
    await sink.client.create_collection("articles", vectors_config=qm.VectorParams(size=384,
                                                                                   distance=qm.Distance.COSINE))
    embedder = Embedder(settings)
    await write_documents(settings, sink, embedder, "articles", TEXTS)
    try:
        yield settings, sink, embedder
    finally:
        embedder.close()
        await sink.client.close()


def chunker(embedder: Embedder, max_tokens: int = 64, overlap_tokens: int = 8) -> Chunker:
    return embedder.chunker(DEFAULT_DENSE_MODEL, max_tokens, overlap_tokens)


@only_targets("local", "rest")
async def test_a_chunked_collection_round_trips_and_each_document_is_checked_whole(
        articles, qdrant_target: QdrantTarget, tmp_path: Path) -> None:
    settings, sink, embedder = articles
    dump = tmp_path / "articles.jsonl"
    exported = await export_collection(sink, "articles", dump, chunking=settings.chunked_collections["articles"],
                                       show_progress=False)
    assert exported.documents == 3
    manifest = json.loads(manifest_path(dump).read_text())
    assert manifest["chunked"] == {"documents": 3, "document_id_key": DOCUMENT_ID_KEY,
                                   "chunking": ChunkedField(**SPEC).model_dump(mode="json")}
    imported = await import_dump(sink, dump, "copy", show_progress=False)
    assert imported.verification.ok, imported.verification.to_json()
    assert (imported.verification.documents, imported.verification.incomplete_documents_count) == (3, 0)
    if qdrant_target.is_server:  # the copy finds a document's chunks by the index
        info = await sink.client.get_collection("copy")
        assert info.payload_schema[DOCUMENT_ID_KEY].data_type == qm.PayloadSchemaType.KEYWORD
    same = await verify_collections(sink, "articles", "copy", show_progress=False)
    assert same.ok
    assert same.documents == 3
    # the copy's chunk ids are those of documents of "articles": a re-chunk under its own name would make others
    with pytest.raises(InvalidOption, match="its chunk ids are not those of documents of 'copy'"):
        await reembed_collection(sink, embedder, "copy", text_field=None, chunking=ChunkedField(**SPEC),
                                 rechunk=True, checkpoint_file=tmp_path / "ck.json", show_progress=False)

    # a chunk lost, another's text changed: the points differ, and each document is named with its problem
    copy = await stored(sink.client, "copy")
    lost = copy["1"][2]
    await sink.client.delete("copy", [lost.id])
    changed = copy["2"][1]
    await sink.client.set_payload("copy", {"text": changed.payload[CHUNK_KEY]["text"] + " (edited)"}, [changed.id],
                                  key=CHUNK_KEY)
    report = await verify_against_dump(sink, "copy", dump, show_progress=False)
    assert not report.ok
    assert report.missing == [lost.id]
    assert report.mismatched == [changed.id]
    assert report.incomplete_documents_count == 2
    problems = {d["document_id"]: d["problem"] for d in report.incomplete_documents}
    assert problems[1].startswith(f"chunks 2 of {len(copy['1'])} missing")
    assert problems[2].startswith("chunks 1 whose text is not their sha256 or span")


@only_targets("local")
async def test_a_re_chunk_into_a_sparse_vector_the_collection_lacks_is_refused_before_writing(
        articles, tmp_path: Path) -> None:
    settings, sink, embedder = articles
    before = await stored(sink.client, "articles")
    spec = settings.chunked_collections["articles"].model_copy(update={"sparse_vector": "bm25"})
    with pytest.raises(InvalidOption, match=r"sparse_vector bm25.*articles has no such vector"):
        await reembed_collection(sink, embedder, "articles", text_field=None, chunking=spec, max_tokens=48,
                                 checkpoint_file=tmp_path / "ck.json", show_progress=False)
    assert await stored(sink.client, "articles") == before


@only_targets("local")  # the server re-chunks in the migration's test below
async def test_reembed_re_embeds_each_chunk_and_re_chunks_for_other_limits(articles, tmp_path: Path) -> None:
    settings, sink, embedder = articles
    spec = settings.chunked_collections["articles"]
    before = await stored(sink.client, "articles")
    ids = {p.id for chunks in before.values() for p in chunks.values()}
    await sink.client.update_vectors("articles", [qm.PointVectors(id=i, vector=[1.0] + [0.0] * 383) for i in ids])

    # the same chunking: each chunk re-embedded from its own text, no chunk written or deleted
    summary = await reembed_collection(sink, embedder, "articles", text_field=None, chunking=spec,
                                       checkpoint_file=tmp_path / "ck.json", show_progress=False)
    assert summary.rechunked is None
    assert summary.points == len(ids)
    after = await stored(sink.client, "articles", vectors=True)
    assert {p.id for chunks in after.values() for p in chunks.values()} == ids
    some = after["1"][3]
    (expected,) = await embedder.embed(DEFAULT_DENSE_MODEL, "dense", [some.payload[CHUNK_KEY]["text"]])
    assert sum(a * b for a, b in zip(some.vector, expected, strict=True)) > 0.999

    # other limits: every document chunked again, interrupted after its first document and resumed
    failing_at(sink, "batch_update_points", 2, Interrupted())
    with pytest.raises(Interrupted):
        await reembed_collection(sink, embedder, "articles", text_field=None, chunking=spec, max_tokens=48,
                                 page_size=1, checkpoint_file=tmp_path / "ck.json", show_progress=False)
    checkpoint = json.loads((tmp_path / "ck.json").read_text())
    assert (checkpoint["after"], checkpoint["summary"]["documents"]) == (min(map(str, TEXTS)), 1)  # in key order
    summary = await reembed_collection(sink, embedder, "articles", text_field=None, chunking=spec, max_tokens=48,
                                       page_size=1, checkpoint_file=tmp_path / "ck.json", resume=True,
                                       show_progress=False)
    documents = summary.rechunked
    assert documents is not None
    assert documents.ok
    assert documents.resumed
    assert summary.rechunk_reason == "max_tokens 64 -> 48"
    assert summary.chunking is not None
    assert summary.chunking.max_tokens == 48
    assert documents.documents == 3  # one before the interruption, two after it
    assert not (tmp_path / "ck.json").exists()
    new = chunker(embedder, 48)
    after = await stored(sink.client, "articles", vectors=True)
    for doc, text in TEXTS.items():
        wanted = new.chunks(text)
        chunks = after[str(doc)]
        assert [chunks[i].payload[CHUNK_KEY]["sha256"] for i in sorted(chunks)] == [c.sha256 for c in wanted]
        assert {str(p.id) for p in chunks.values()} == {chunk_id("articles", doc, i) for i in range(len(wanted))}
        assert all(p.payload["lang"] == "en" for p in chunks.values())
    check = await check_documents(sink, "articles", ["1", "2", str(uuid.UUID(int=7))], show_progress=False)
    assert check.incomplete_count == 0


@only_targets("local")
async def test_a_re_chunk_stopped_between_a_documents_new_chunks_and_its_stale_ones_resumes(
        articles, tmp_path: Path) -> None:
    """Fewer, larger chunks, one document a page, one point a request: the first document done, the
    second's new chunks written and Ctrl-C before its stale ones' delete. --resume rebuilds it from
    its chunks of both counts and ends as an uninterrupted run."""
    settings, sink, embedder = articles
    spec = settings.chunked_collections["articles"]
    first, second = sorted(map(str, TEXTS))[:2]  # documents go in key order
    old, new = ({key: made.chunks(text) for key, text in ((str(doc), t) for doc, t in TEXTS.items())}
                for made in (chunker(embedder), chunker(embedder, 128)))
    assert len(new[second]) < len(old[second])
    # the first document's requests: its new chunks, then its stale ones deleted (as many as it had)
    failing_at(sink, "batch_update_points", len(old[first]) + len(new[second]) + 1, Interrupted())
    with pytest.raises(Interrupted):
        await reembed_collection(sink, embedder, "articles", text_field=None, chunking=spec, max_tokens=128,
                                 page_size=1, checkpoint_file=tmp_path / "ck.json", show_progress=False,
                                 max_request_bytes=1)
    assert json.loads((tmp_path / "ck.json").read_text())["after"] == first
    cut = (await stored(sink.client, "articles"))[second]
    assert sorted(cut) == list(range(len(old[second])))
    assert {p.payload[CHUNK_KEY]["count"] for p in cut.values()} == {len(new[second]), len(old[second])}
    check = await check_documents(sink, "articles", [second], show_progress=False)
    assert "disagree on their count" in check.incomplete[0]["problem"]  # verify still names it not whole
    # --resume of another run than the one stopped: named, nothing written (the default checkpoint is shared)
    for other, said in ((None, "is the checkpoint of an interrupted re-chunk of the documents of articles "),
                        (96, "is the checkpoint of a re-chunk ")):
        with pytest.raises(InvalidOption, match=said + r"\(--model \S+ --max-tokens 128 --overlap-tokens 8\)"):
            await reembed_collection(sink, embedder, "articles", text_field=None, chunking=spec, max_tokens=other,
                                     checkpoint_file=tmp_path / "ck.json", resume=True, show_progress=False)
    assert (await stored(sink.client, "articles"))[second] == cut
    summary = await reembed_collection(sink, embedder, "articles", text_field=None, chunking=spec, max_tokens=128,
                                       page_size=1, checkpoint_file=tmp_path / "ck.json", resume=True,
                                       show_progress=False)
    documents = summary.rechunked
    assert documents is not None
    assert (documents.ok, documents.resumed, documents.not_rebuilt, documents.documents) == (True, True, [], 3)
    after = await stored(sink.client, "articles")
    for key, wanted in new.items():
        assert [after[key][i].payload[CHUNK_KEY]["sha256"] for i in sorted(after[key])] == [c.sha256 for c in wanted]
    check = await check_documents(sink, "articles", sorted(new), show_progress=False)
    assert check.incomplete_count == 0


# a CDC mapping whose table's text column is chunked makes its collection one of chunked documents
MAPPING = {"tables": {"public.articles": {"collection": "articles", "key": ["id"],
                                          "texts": {"body": {"chunked": True}}}}}


@only_targets("rest")
@pytest.mark.parametrize("chunked_by", ["setting", "mapping", "setting, bm25"])
async def test_a_migration_re_chunks_under_the_alias_and_replays_the_stream_into_its_chunk_ids(
        kafka, qdrant_target: QdrantTarget, model_paths: dict[str, str], chunked_by: str, tmp_path: Path) -> None:
    """The alias chunked by QCC_CHUNKED_COLLECTIONS, or only by the CDC mapping's chunked column (its
    chunking: the setting's defaults), as the workers read either: re-chunked alike. With a sparse
    vector beside the dense one, the fill's chunks and the replayed tail's hold both."""
    sparse = chunked_by == "setting, bm25"
    name = uuid.uuid4().hex[:8]
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(json.dumps(MAPPING))  # YAML takes JSON
    chunked = ({"chunked_collections": {"articles": {**SPEC, **({"sparse_vector": "bm25"} if sparse else {})}}}
               if chunked_by != "mapping" else {"cdc_mapping": mapping, "cdc_topics": [f"shop-{name}.public.articles"]})
    settings = settings_for(qdrant_target, model_paths, **chunked,
                            kafka_bootstrap_servers=kafka.bootstrap, consumer_group=f"chunked-migrate-{name}",
                            patch_topic=f"patches-{name}", reembed_topic=f"reembeds-{name}",
                            verification_topic=f"verifications-{name}", dead_letter_topic=f"dead-{name}")
    # the documents as a worker wrote them: chunked as the mapping says (its processor reads the mapping)
    writer = settings if chunked_by != "mapping" else settings.model_copy(update={
        "chunked_collections": {"articles": ChunkedField(text_field="body")}})
    await ensure_topics(settings, partitions=1)
    sink = make_retrying(settings)
    client = sink.client
    await client.create_collection("articles_v1", vectors_config=qm.VectorParams(size=384,
                                                                                 distance=qm.Distance.COSINE),
                                   sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)}
                                   if sparse else None)
    await client.update_collection_aliases([qm.CreateAliasOperation(create_alias=qm.CreateAlias(
        collection_name="articles_v1", alias_name="articles"))])
    embedder = Embedder(settings)
    await write_documents(writer, sink, embedder, "articles", {1: TEXTS[1], 2: TEXTS[2]})
    assert len((await stored(client, "articles"))["2"]) > 1
    # two events no worker applied yet (the group committed nothing): the migration replays them
    edited = TEXTS[1].replace("argparse", "the argument parser")
    await produce(kafka.bootstrap, settings.patch_topic, [upsert(1, edited), upsert(3, TEXTS[2][:900])])
    try:
        migration = Migration(settings, sink, embedder, alias="articles", new_collection="articles_v2",
                              text_field=None, vector_name=None, model=DEFAULT_DENSE_MODEL, max_tokens=48,
                              overlap_tokens=8,
                              fence_seconds=60, verify_seconds=10, show_progress=False)
        report = await migration.run()
        assert report.switched, report
        assert report.chunking is not None
        assert report.chunking["max_tokens"] == 48
        assert report.documents["documents"] == 2
        assert report.tail_events >= 2
        assert [(a.alias_name, a.collection_name) for a in (await client.get_aliases()).aliases] == [
            ("articles", "articles_v2")]
        info = await client.get_collection("articles_v2")
        assert info.payload_schema[DOCUMENT_ID_KEY].data_type == qm.PayloadSchemaType.KEYWORD
        new = chunker(embedder, 48)
        after = await stored(client, "articles_v2", vectors=sparse)
        for doc, text in {1: edited, 2: TEXTS[2], 3: TEXTS[2][:900]}.items():
            wanted = new.chunks(text)
            chunks = after[str(doc)]
            assert [chunks[i].payload[CHUNK_KEY]["sha256"] for i in sorted(chunks)] == [c.sha256 for c in wanted]
            # the ids events under the alias make, before and after the switch
            assert {str(p.id) for p in chunks.values()} == {chunk_id("articles", doc, i) for i in range(len(wanted))}
            if sparse:  # the fill's chunks (documents 1, 2) and the tail's (3) alike: BM25 of their own text
                terms = await embedder.embed(DEFAULT_SPARSE_MODEL, "sparse", [c.text for c in wanted])
                for index, expected in zip(sorted(chunks), terms, strict=True):
                    held = chunks[index].vector["bm25"]
                    assert dict(zip(held.indices, held.values, strict=True)) == pytest.approx(
                        dict(zip(expected.indices, expected.values, strict=True))), (doc, index)
    finally:
        embedder.close()
        await client.close()


@only_targets("rest")
async def test_chunks_with_a_sparse_vector_round_trip_and_are_re_chunked_with_both(
        qdrant_target: QdrantTarget, model_paths: dict[str, str], tmp_path: Path) -> None:
    """A sparse vector beside the dense one (``sparse_vector``): a dump and its import carry both, and
    a re-chunk for other limits gives every chunk both vectors of its own text, copied or embedded."""
    spec = {**SPEC, "sparse_vector": "bm25"}
    settings = settings_for(qdrant_target, model_paths, chunked_collections={"hybrid": spec})
    sink = make_retrying(settings)
    embedder = Embedder(settings)
    await sink.client.create_collection(
        "hybrid", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE),
        sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)})
    try:
        await write_documents(settings, sink, embedder, "hybrid", TEXTS)
        dump = tmp_path / "hybrid.jsonl"
        await export_collection(sink, "hybrid", dump, chunking=settings.chunked_collections["hybrid"],
                                show_progress=False)
        imported = await import_dump(sink, dump, "hybrid-copy", show_progress=False)
        assert imported.verification.ok, imported.verification.to_json()
        copy = await stored(sink.client, "hybrid-copy", vectors=True)
        assert all(set(p.vector) == {"", "bm25"} for chunks in copy.values() for p in chunks.values())

        summary = await reembed_collection(sink, embedder, "hybrid", text_field=None,
                                           chunking=settings.chunked_collections["hybrid"], max_tokens=48,
                                           checkpoint_file=tmp_path / "ck.json", show_progress=False)
        assert summary.rechunked is not None
        assert summary.rechunked.ok
        assert summary.rechunked.documents == 3
        assert summary.rechunked.reused > 0  # some chunk texts are the same at 48 tokens: both vectors copied
        after = [p for chunks in (await stored(sink.client, "hybrid", vectors=True)).values() for p in chunks.values()]
        assert sum(len(chunker(embedder, 48).chunks(text)) for text in TEXTS.values()) == len(after)
        texts = [p.payload[CHUNK_KEY]["text"] for p in after]
        sparse = await embedder.embed(DEFAULT_SPARSE_MODEL, "sparse", texts)
        dense = await embedder.embed(DEFAULT_DENSE_MODEL, "dense", texts)
        for point, sparse_vector, dense_vector in zip(after, sparse, dense, strict=True):
            stored_sparse = point.vector["bm25"]
            assert dict(zip(stored_sparse.indices, stored_sparse.values, strict=True)) == pytest.approx(
                dict(zip(sparse_vector.indices, sparse_vector.values, strict=True))), point.id
            assert sum(a * b for a, b in zip(point.vector[""], dense_vector, strict=True)) > 0.999, point.id
    finally:
        embedder.close()
        await sink.client.close()
