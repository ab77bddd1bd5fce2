"""Chunked documents: for any sequence of windows of edits, inserts, payload patches and deletes
of documents, the chunk points after each window are exactly the chunking of each document's
latest text (with its latest payload), and the embedder is asked only for chunk texts that the
document did not hold. Against the connector's model of Qdrant (connector/domain/semantics.py),
with the real splitter and the model's real tokenizer at small limits, on real prose (the
standard library's module docstrings). A window interrupted after any prefix of its requests
and replayed ends the same."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from connector.domain.changes import (
    SCHEMA_VERSION,
    ChangeEvent,
    DeleteEvent,
    OverwritePayloadEvent,
    ReembedEvent,
    SetPayloadEvent,
    UpsertEvent,
    UpsertPoint,
)
from connector.domain.chunking import Chunk, Chunker, chunk_set_digest, rebuild_text
from connector.domain.documents import (
    CHUNK_KEY,
    DocumentPlanner,
    PlannedEvent,
    Refusal,
    VectorRef,
    chunk_id,
    document_key,
    materialize,
    stored_documents,
)
from connector.domain.operations import Op, Vector
from connector.domain.planner import plan
from connector.domain.semantics import PointState, State, apply_all, copy_state
from connector.settings import DEFAULT_DENSE_MODEL

COLLECTION = "articles"
MODULES = ("json", "textwrap", "difflib", "heapq", "bisect", "fractions", "ipaddress", "shlex", "string", "tomllib")


def paragraphs() -> list[str]:
    """Real prose: the paragraphs of some standard library modules' docstrings."""
    found: list[str] = []
    for name in MODULES:
        doc = importlib.import_module(name).__doc__ or ""
        found += [p.strip() for p in doc.split("\n\n") if len(p.strip()) > 40]
    return found


PARAGRAPHS = paragraphs()


@pytest.fixture(scope="module")
def chunker(model_paths: dict[str, str]) -> Chunker:
    tokenizer = Tokenizer.from_file(str(Path(model_paths[DEFAULT_DENSE_MODEL]) / "tokenizer.json"))
    return Chunker(tokenizer, max_tokens=40, overlap_tokens=6)


def vector_of(text: str) -> tuple[float, ...]:
    digest = hashlib.sha256(text.encode()).digest()
    return tuple(float(b) for b in digest[:4])


class CountingEmbedder:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> list[tuple[float, ...]]:
        self.texts += texts
        return [vector_of(t) for t in texts]


def chunks_of(state: State, doc: int) -> dict[Any, PointState]:
    return {pid: p for pid, p in state.items() if p.payload[CHUNK_KEY]["document_id"] == document_key(doc)}


def run_window(state: State, events: list[ChangeEvent], chunker: Chunker, embedder: CountingEmbedder,
               stop_after: int | None = None) -> tuple[list[PlannedEvent | Refusal], list[Op]]:
    """What the window stage does, with ``state`` as Qdrant: read the named documents' chunks by
    their document id, plan, embed, read copied vectors, apply the coalesced plan (its first
    ``stop_after`` ops only: a crash)."""
    docs = sorted({int(i) for e in events for i in _ids(e)})
    read = {pid: p for pid, p in copy_state(state).items()
            if p.payload[CHUNK_KEY]["document_id"] in {document_key(d) for d in docs}}
    planner = DocumentPlanner(COLLECTION, "body", "", DEFAULT_DENSE_MODEL, chunker.chunks,
                              stored_documents(COLLECTION, docs, read))
    planned = [planner.plan(position, event) for position, event in enumerate(events)]
    texts = list(planner.to_embed.items())
    vectors: dict[VectorRef, Vector] = {("text", sha): v
                                        for (sha, _), v in zip(texts, embedder.embed([t for _, t in texts]),
                                                               strict=True)}
    vectors.update({("stored", pid): state[pid].vectors[""] for pid in planner.to_read})
    ops = [op for p in planned if isinstance(p, PlannedEvent) for op in materialize(p, "", vectors)]
    planned_ops = plan(ops)
    assert apply_all(state, planned_ops[:stop_after]) == []
    return planned, planned_ops


def _ids(event: ChangeEvent) -> list[Any]:
    if isinstance(event, UpsertEvent):
        return [p.id for p in event.points]
    if isinstance(event, ReembedEvent):
        return [p.id for p in event.points or []] or list(event.ids or [])
    return list(getattr(event, "ids", None) or [])


def expected_chunks(chunker: Chunker, doc: int, text: str, payload: dict[str, Any]) -> dict[Any, PointState]:
    chunks: list[Chunk] = chunker.chunks(text)
    document_sha = hashlib.sha256(text.encode()).hexdigest()
    return {chunk_id(COLLECTION, doc, c.index): PointState(
        payload={**payload, CHUNK_KEY: {"document_id": str(doc), "index": c.index, "count": len(chunks),
                                        "sha256": c.sha256, "document_sha256": document_sha, "start": c.start,
                                        "end": c.end, "text": c.text}},
        vectors={"": vector_of(c.text)}) for c in chunks}


common: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "collection": COLLECTION}
DOCS = st.integers(1, 3)
TEXTS = st.lists(st.sampled_from(range(len(PARAGRAPHS))), min_size=1, max_size=6)
EVENTS = st.one_of(
    st.tuples(st.just("write"), DOCS, TEXTS, st.integers(0, 2)),
    st.tuples(st.just("reembed"), DOCS, TEXTS, st.just(0)),
    st.tuples(st.just("delete"), DOCS, st.just([]), st.just(0)),
    st.tuples(st.just("tag"), DOCS, st.just([]), st.integers(0, 2)),
    st.tuples(st.just("overwrite"), DOCS, st.just([]), st.integers(0, 2)),
)


def event_of(kind: str, doc: int, parts: list[int], n: int) -> ChangeEvent:
    text = "\n\n".join(PARAGRAPHS[i] for i in parts)
    if kind == "write":
        return UpsertEvent(**common, op="upsert", points=[UpsertPoint(id=doc, text=text, payload={"v": n})])
    if kind == "reembed":
        return ReembedEvent(**common, kind="reembed", points=[{"id": doc, "text": text}])
    if kind == "delete":
        return DeleteEvent(**common, op="delete", ids=[doc])
    if kind == "tag":
        return SetPayloadEvent(**common, op="set_payload", ids=[doc], payload={"tag": n})
    return OverwritePayloadEvent(**common, op="overwrite_payload", ids=[doc], payload={"w": n})


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(EVENTS, min_size=1, max_size=5), st.none() | st.integers(0, 3)),
                min_size=1, max_size=4))
def test_chunk_points_are_the_chunking_of_the_latest_text(chunker: Chunker,
                                                          windows: list[tuple[list[Any], int | None]]) -> None:
    state: State = {}
    latest: dict[int, tuple[str, dict[str, Any]]] = {}  # the reference: each document's text and payload
    for drawn, crash_after in windows:
        events = [event_of(*e) for e in drawn]
        if crash_after is not None:  # a crash after some requests; the replay starts from what they left
            run_window(state, events, chunker, CountingEmbedder(), stop_after=crash_after)
        held = {d: {p.payload[CHUNK_KEY]["sha256"] for p in chunks_of(state, d).values()} for d in range(1, 4)}
        embedder = CountingEmbedder()
        planned, _ = run_window(state, events, chunker, embedder)
        for (kind, doc, parts, n), outcome in zip(drawn, planned, strict=True):
            # a replay may apply an event refused the first time (or the reverse) where a later event
            # of the window creates (deletes) the document: it then replaces (removes) it whole
            if kind in ("tag", "overwrite", "reembed") and doc not in latest:
                assert crash_after is not None or (isinstance(outcome, Refusal) and outcome.code == "point_not_found")
                continue
            assert crash_after is not None or isinstance(outcome, PlannedEvent), outcome
            text = "\n\n".join(PARAGRAPHS[i] for i in parts)
            if kind == "write":
                latest[doc] = (text, {"v": n})
            elif kind == "reembed":
                latest[doc] = (text, latest[doc][1])
            elif kind == "delete":
                latest.pop(doc, None)
            elif kind == "tag":
                latest[doc] = (latest[doc][0], {**latest[doc][1], "tag": n})
            else:
                latest[doc] = (latest[doc][0], {"w": n})
        for doc in range(1, 4):
            actual = chunks_of(state, doc)
            if doc not in latest:
                assert actual == {}
                continue
            text, payload = latest[doc]
            assert actual == expected_chunks(chunker, doc, text, payload)
            spans = [(p.payload[CHUNK_KEY]["start"], p.payload[CHUNK_KEY]["end"], p.payload[CHUNK_KEY]["text"])
                     for p in actual.values()]
            assert rebuild_text(spans) == text
        # the model saw only chunk texts that no document of the window held, each once
        shas = [hashlib.sha256(t.encode()).hexdigest() for t in embedder.texts]
        assert len(shas) == len(set(shas))
        named = {doc for _, doc, _, _ in drawn}
        assert not set(shas) & set().union(*(held[d] for d in named))
        # the verification's per-document digest is the digest of the final chunk set
        final = {}
        for outcome in planned:
            if isinstance(outcome, PlannedEvent):
                final.update(outcome.documents)
        for doc, stats in final.items():
            shas_now = [p.payload[CHUNK_KEY]["sha256"]
                        for p in sorted(chunks_of(state, int(doc)).values(),
                                        key=lambda p: p.payload[CHUNK_KEY]["index"])]
            assert (stats.count, stats.digest) == (len(shas_now), chunk_set_digest(shas_now))
