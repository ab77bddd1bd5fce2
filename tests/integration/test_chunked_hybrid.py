"""A chunked collection with a sparse vector beside the dense one (``ChunkedField.sparse_vector``),
through the window processor on local mode and on the real server over REST and gRPC: every chunk
holds both vectors of its own text, an edit embeds only its new chunk texts (into both) and copies
both vectors of the others, every window is verified, and a fused search (dense + BM25, DBSF) finds
a sentence deep in a document. A collection that lacks the sparse vector stops the worker, at start
or in a window, and no event is dead-lettered for it."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.domain.documents import CHUNK_KEY, DOCUMENT_ID_KEY
from connector.domain.operations import Sparse
from connector.embedding.embedder import Embedder
from connector.errors import ConfigurationError
from connector.qdrant import make_client, make_retrying
from connector.settings import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL, ChunkedField
from connector.stream.window import Record, WindowProcessor
from connector.stream.window.chunks import check_chunk_vectors
from tests.integration.test_filter_verification import settings_for
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

# as the README's example: the unnamed dense vector, and "bm25" beside it
CHUNKED = {"articles": {"text_field": "body", "sparse_vector": "bm25", "max_tokens": 64, "overlap_tokens": 8}}
PARAGRAPHS = [p.strip() for p in (argparse.__doc__ or "").split("\n\n") if p.strip()]  # real prose


def records(events: list[dict[str, Any]], first: int) -> list[Record]:
    return [Record(topic="patches", partition=0, offset=first + i, key=None, value=json.dumps(
        {"schema_version": 1, "collection": "articles", **e}).encode()) for i, e in enumerate(events)]


def upsert(doc: int, text: str) -> dict[str, Any]:
    return {"op": "upsert", "points": [{"id": doc, "payload": {"body": text}}]}


async def create_articles(client: AsyncQdrantClient) -> None:
    await client.create_collection(
        "articles", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE),
        sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)})


async def stored_chunks(client: AsyncQdrantClient, doc: int) -> dict[int, qm.Record]:
    points, _ = await client.scroll("articles", scroll_filter=qm.Filter(must=[qm.FieldCondition(
        key=DOCUMENT_ID_KEY, match=qm.MatchValue(value=str(doc)))]), limit=1000, with_payload=True,
        with_vectors=True)
    return {p.payload[CHUNK_KEY]["index"]: p for p in points if p.payload}


def as_terms(vector: Any) -> dict[int, float]:
    """A sparse vector, stored or embedded, as index -> weight (Qdrant may store its indices sorted)."""
    return {int(i): round(float(v), 4) for i, v in zip(vector.indices, vector.values, strict=True)}


async def test_chunks_hold_both_vectors_and_a_fused_search_finds_a_deep_sentence(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    config = settings_for(qdrant_target, model_paths, chunked_collections=CHUNKED)
    client = make_client(config)
    embedder = Embedder(config)
    proc = WindowProcessor(config, client, make_retrying(config, client), embedder, "patch")
    await create_articles(client)
    chunker = embedder.chunker(DEFAULT_DENSE_MODEL, 64, 8)
    text = "\n\n".join(PARAGRAPHS)
    try:
        first = await proc.process(records([upsert(1, text), upsert(2, PARAGRAPHS[0])], 0))
        assert first.dead_letters == []
        assert first.verifications[0].verification.status == "verified", first.verifications[0].verification

        # an edit: a paragraph inserted near the start, the last two dropped
        edited = "\n\n".join([PARAGRAPHS[0], "A sentence no one wrote before, about kumquats.", *PARAGRAPHS[1:-2]])
        held = {c.sha256 for c in chunker.chunks(text)}
        new = chunker.chunks(edited)
        second = await proc.process(records([upsert(1, edited)], 2))
        assert second.dead_letters == []
        (verification,) = second.verifications
        assert verification.verification.status == "verified", verification.verification
        (doc1,) = verification.documents
        assert doc1.embedded == len({c.sha256 for c in new} - held) > 0
        assert doc1.reused == len(new) - doc1.embedded > 0

        # every chunk holds both vectors of its own text, the copied ones too
        stored = await stored_chunks(client, 1)
        assert sorted(stored) == list(range(len(new)))
        chunk_texts = [stored[i].payload[CHUNK_KEY]["text"] for i in sorted(stored)]  # type: ignore[index]
        dense = await embedder.embed(DEFAULT_DENSE_MODEL, "dense", chunk_texts)
        sparse: list[Sparse] = await embedder.embed(DEFAULT_SPARSE_MODEL, "sparse", chunk_texts)
        for index, dense_vector, sparse_vector in zip(sorted(stored), dense, sparse, strict=True):
            vectors = stored[index].vector
            assert isinstance(vectors, dict), index
            assert set(vectors) == {"", "bm25"}, index
            assert as_terms(vectors["bm25"]) == as_terms(sparse_vector), index
            assert sum(a * b for a, b in zip(vectors[""], dense_vector, strict=True)) > 0.999, index  # type: ignore[arg-type]

        # the README's search: dense and BM25 each asked for candidates, fused (DBSF), one hit per
        # document; a sentence deep in the document finds its chunk
        deep = new[-1].text[:200]
        (query_dense,) = await embedder.embed(DEFAULT_DENSE_MODEL, "dense", [deep])
        (query_sparse,) = await embedder.embed(DEFAULT_SPARSE_MODEL, "sparse", [deep])
        found = await client.query_points_groups("articles", prefetch=[
            qm.Prefetch(query=list(query_dense), limit=20),
            qm.Prefetch(query=qm.SparseVector(indices=list(query_sparse.indices), values=list(query_sparse.values)),
                        using="bm25", limit=20)],
            query=qm.FusionQuery(fusion=qm.Fusion.DBSF), group_by=f"{CHUNK_KEY}.document_id", limit=2, group_size=1,
            with_payload=True)
        assert found.groups[0].id == "1"
        top = found.groups[0].hits[0].payload or {}
        assert top[CHUNK_KEY]["index"] == new[-1].index
    finally:
        await client.close()


async def test_a_collection_without_the_sparse_vector_is_refused_at_start(tmp_path: Any,
                                                                          model_paths: dict[str, str]) -> None:
    """The worker's start check (exit 78, as for a dense vector that does not fit): one line that
    says which vector is missing and how to add it."""
    config = settings_for(QdrantTarget("local", path=tmp_path / "qdrant"), model_paths, chunked_collections=CHUNKED)
    client = make_client(config)
    try:
        await client.create_collection("articles", vectors_config=qm.VectorParams(size=384,
                                                                                  distance=qm.Distance.COSINE))
        chunked = {name: ChunkedField.model_validate(spec) for name, spec in CHUNKED.items()}
        with pytest.raises(ConfigurationError, match=r"has no sparse vector 'bm25'.*create-collection --sparse bm25"):
            await check_chunk_vectors(client, Embedder(config), chunked, DEFAULT_DENSE_MODEL)
    finally:
        await client.close()


async def test_a_window_on_a_collection_that_lost_its_sparse_vector_stops_and_dead_letters_nothing(
        tmp_path: Any, model_paths: dict[str, str]) -> None:
    """A collection made after the start check without the sparse vector: a window that writes
    texts raises the setting's ConfigurationError (the worker exits 78 and replays the window once
    it is fixed), writes nothing and dead-letters nothing; the events are not at fault."""
    config = settings_for(QdrantTarget("local", path=tmp_path / "qdrant"), model_paths, chunked_collections=CHUNKED)
    client = make_client(config)
    proc = WindowProcessor(config, client, make_retrying(config, client), Embedder(config), "patch")
    try:
        await client.create_collection("articles", vectors_config=qm.VectorParams(size=384,
                                                                                  distance=qm.Distance.COSINE))
        with pytest.raises(ConfigurationError, match=r"has no sparse vector 'bm25'"):
            await proc.process(records([upsert(1, PARAGRAPHS[0])], 0))
        assert (await client.count("articles")).count == 0
    finally:
        await client.close()
