"""Chunked documents: for any sequence of windows of edits, inserts, payload patches, re-embeds and
deletes of documents, the chunk points after each window are exactly the chunking of each document's
latest text (with its latest payload, and the vectors of each chunk's text: a dense one and a sparse
one), and the embedder is asked only for chunk texts that the document did not hold. Against the
connector's model of Qdrant (connector/domain/semantics.py), with the real splitter and the model's
real tokenizer at small limits, on real prose (the standard library's module docstrings). A window
interrupted after any prefix of its requests and replayed ends the same.

And when things fail: events that fail after the window was planned (a CDC record's other event
refused, texts the collection's vector does not take) are left out and the rest planned again, so
each document ends as the events that applied make it (a patch reaches the chunks there, not those
a failed write would have left); an event Qdrant refuses takes the later events of its documents
with it, unsent. A write from a CDC row keeps the columns its source did not send; a delete by
filter counts in the check of which chunks remain."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
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
    dependents,
    document_key,
    plan_events,
    stored_documents,
)
from connector.domain.operations import Op, Sparse, Vector
from connector.domain.planner import plan
from connector.domain.semantics import PointState, State, apply_op, copy_state
from connector.domain.verifier import FilterMatch
from connector.errors import PermanentError
from connector.qdrant.apply import apply_isolating
from connector.settings import DEFAULT_DENSE_MODEL
from connector.stream.window.chunks import assemble, chunks_left

COLLECTION = "articles"
SPARSE = "bm25"  # the chunks' sparse vector, beside the unnamed dense one
NAMES = ("", SPARSE)
MODULES = ("json", "textwrap", "difflib", "heapq", "bisect", "fractions", "ipaddress", "shlex", "string", "tomllib")


def paragraphs() -> list[str]:
    """Real prose: the paragraphs of some standard library modules' docstrings."""
    found: list[str] = []
    for name in MODULES:
        if importlib.util.find_spec(name) is None:  # tomllib: Python 3.11+
            continue
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


def sparse_of(text: str) -> Sparse:
    digest = hashlib.sha256(text.encode()).digest()
    return Sparse(tuple(sorted({int(b) for b in digest[4:8]})), (1.0,) * len({int(b) for b in digest[4:8]}))


def vectors_of(text: str) -> dict[str, Vector]:
    """What a chunk of ``text`` holds: the dense vector and the sparse one (ChunkedField.sparse_vector)."""
    return {"": vector_of(text), SPARSE: sparse_of(text)}


class CountingEmbedder:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> list[tuple[float, ...]]:
        self.texts += texts
        return [vector_of(t) for t in texts]


def chunks_of(state: State, doc: int) -> dict[Any, PointState]:
    return {pid: p for pid, p in state.items() if p.payload[CHUNK_KEY]["document_id"] == document_key(doc)}


def matches_v(value: int) -> Any:
    """The model's evaluation of the one filter the test's deletes by filter use: payload ``v`` equal to ``value``."""
    return lambda _flt, _pid, point: point.payload.get("v") == value


class Window:
    """What happened to one window: per event its plan or refusal (in the pass that applied), the
    positions left out after planning and those Qdrant refused (with the ones they took along)."""

    def __init__(self) -> None:
        self.outcomes: dict[int, PlannedEvent | Refusal] = {}
        self.left_out: set[int] = set()
        self.refused: set[int] = set()


def run_window(state: State, events: list[tuple[ChangeEvent, tuple[str, ...]]], chunker: Chunker,
               embedder: CountingEmbedder, *, stop_after: int | None = None,
               fail_after_plan: frozenset[int] = frozenset(), refuse: int | None = None) -> Window:
    """What the window stage does, with ``state`` as Qdrant: read the named documents' chunks by
    their document id, plan; leave out the events that fail after planning (``fail_after_plan``)
    and plan the rest again from the same read (ChunkStage.plan); embed, read copied vectors,
    apply the coalesced plan: its first ``stop_after`` ops only (a crash), or isolating, with
    Qdrant refusing the event at position ``refuse`` (BatchApplier); then check which chunks of the
    window's documents remain (ChunkStage.check)."""
    docs = sorted({int(i) for e, _ in events for i in _ids(e)})
    keys = {document_key(d) for d in docs}
    read = {pid: p for pid, p in copy_state(state).items() if p.payload[CHUNK_KEY]["document_id"] in keys}

    def planner() -> DocumentPlanner:
        return DocumentPlanner(COLLECTION, "body", "", DEFAULT_DENSE_MODEL, chunker.chunks,
                               stored_documents(COLLECTION, docs, read), vector_names=NAMES)

    window = Window()
    listed = [(position, event, keep) for position, (event, keep) in enumerate(events)]
    first, _ = plan_events(planner(), listed)
    window.left_out = {p.position for p in first} & fail_after_plan
    final = planner()  # a pass without them: refusals too are decided again
    planned, refused = plan_events(final, [e for e in listed if e[0] not in window.left_out])
    window.outcomes = {**refused, **{p.position: p for p in planned}}
    texts = list(final.to_embed.items())
    embedder.embed([t for _, t in texts])
    vectors: dict[VectorRef, dict[str, Vector]] = {("text", sha): vectors_of(text) for sha, text in texts}
    vectors.update({("stored", pid): {name: state[pid].vectors[name] for name in NAMES} for pid in final.to_read})
    documents = assemble(planned, read, vectors, "", "body")
    ops = plan(documents.ops)
    matches: dict[int, FilterMatch] = {}
    applied: list[Op] = []
    if refuse is None:
        for op in ops[:stop_after]:
            value = _filter_value(op)
            if op.filter is not None:
                matches[id(op)] = FilterMatch(ids=[pid for pid, p in state.items() if p.payload.get("v") == value],
                                              states={})
            apply_op(state, op, matches_v(value) if op.filter is not None else None)
            applied.append(op)
    else:
        async def send(batch: list[Op]) -> None:  # as Qdrant: the ops before a refused one are applied
            for op in batch:
                if refuse in op.sources and op.kind != "delete":  # its write refused, a delete would pass
                    raise PermanentError("refused")
                apply_op(state, op)

        result = asyncio.run(apply_isolating(ops, send, partial(dependents, documents.documents)))
        applied = result.applied
        window.refused = {f.position for f in result.failed}
        assert {f.position for f in result.failed if f.after is None} <= {refuse}
    # the chunk check: which chunks of the window's documents the applied ops leave
    applied_positions = {s for op in applied for s in op.sources}
    checked = {document_key(doc) for position, stats in documents.documents.items()
               if position in applied_positions for doc in stats}
    left = chunks_left(documents, applied, checked, matches)
    assert left == {pid for pid, p in state.items() if p.payload[CHUNK_KEY]["document_id"] in checked}
    return window


def _filter_value(op: Op) -> int:
    return int(op.filter["must"][0]["match"]["value"]) if op.filter is not None else 0


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
        vectors=vectors_of(c.text)) for c in chunks}


common: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "collection": COLLECTION}
DOCS = st.integers(1, 3)
TEXTS = st.lists(st.sampled_from(range(len(PARAGRAPHS))), min_size=1, max_size=6)
EVENTS = st.one_of(
    st.tuples(st.just("write"), DOCS, TEXTS, st.integers(0, 2)),
    st.tuples(st.just("row"), DOCS, TEXTS, st.integers(0, 2)),  # a CDC row whose column "tag" was not sent
    st.tuples(st.just("reembed"), DOCS, st.just([]), st.just(0)),
    st.tuples(st.just("inline"), DOCS, TEXTS, st.just(0)),
    st.tuples(st.just("delete"), DOCS, st.just([]), st.just(0)),
    st.tuples(st.just("tag"), DOCS, st.just([]), st.integers(0, 2)),
    st.tuples(st.just("overwrite"), DOCS, st.just([]), st.integers(0, 2)),
    st.tuples(st.just("unsent"), DOCS, st.just([]), st.integers(0, 2)),  # a CDC row change without its text
)
# after a window's events: nothing, a crash after some requests (replayed), events that fail after
# planning, an event Qdrant refuses; and maybe a delete by filter (payload v = n) at its end
TROUBLE = st.one_of(st.none(), st.tuples(st.just("crash"), st.integers(0, 3)),
                    st.tuples(st.just("fail"), st.frozensets(st.integers(0, 4), min_size=1, max_size=2)),
                    st.tuples(st.just("refuse"), st.integers(0, 4)))


def event_of(kind: str, doc: int, parts: list[int], n: int) -> tuple[ChangeEvent, tuple[str, ...]]:
    text = "\n\n".join(PARAGRAPHS[i] for i in parts)
    if kind == "write":
        return UpsertEvent(**common, op="upsert", points=[UpsertPoint(id=doc, text=text, payload={"v": n})]), ()
    if kind == "row":
        row = UpsertPoint(id=doc, payload={"body": text, "v": n})
        return UpsertEvent(**common, op="upsert", points=[row]), ("tag",)
    if kind == "reembed":
        return ReembedEvent(**common, kind="reembed", ids=[doc], text_field="body"), ()
    if kind == "inline":
        return ReembedEvent(**common, kind="reembed", points=[{"id": doc, "text": text}]), ()
    if kind == "delete":
        return DeleteEvent(**common, op="delete", ids=[doc]), ()
    if kind == "tag":
        return SetPayloadEvent(**common, op="set_payload", ids=[doc], payload={"tag": n}), ()
    if kind == "unsent":
        return SetPayloadEvent(**common, op="set_payload", ids=[doc], payload={"v": n}), ("body",)
    return OverwritePayloadEvent(**common, op="overwrite_payload", ids=[doc], payload={"w": n}), ()


Latest = dict[int, tuple[str, dict[str, Any]]]  # the reference: each document's text and payload


def reference(latest: Latest, drawn: list[tuple[str, int, list[int], int]], skipped: set[int]) -> dict[int, str]:
    """``latest`` after the drawn events but ``skipped`` (in place); what each one is expected to be
    refused with, by position."""
    refusals: dict[int, str] = {}
    for position, (kind, doc, parts, n) in enumerate(drawn):
        if position in skipped:
            continue
        if kind == "inline":
            refusals[position] = "chunked_document"
            continue
        if kind in ("tag", "overwrite", "reembed") and doc not in latest:
            refusals[position] = "point_not_found"
            continue
        if kind == "unsent" and doc not in latest:  # no text to write it from: nothing, and no refusal
            continue
        text = "\n\n".join(PARAGRAPHS[i] for i in parts)
        if kind == "write":
            latest[doc] = (text, {"v": n})
        elif kind == "row":
            kept = {"tag": latest[doc][1]["tag"]} if doc in latest and "tag" in latest[doc][1] else {}
            latest[doc] = (text, {**kept, "v": n})
        elif kind == "delete":
            latest.pop(doc, None)
        elif kind == "tag":
            latest[doc] = (latest[doc][0], {**latest[doc][1], "tag": n})
        elif kind == "unsent":
            latest[doc] = (latest[doc][0], {**latest[doc][1], "v": n})
        elif kind == "overwrite":
            latest[doc] = (latest[doc][0], {"w": n})
    return refusals


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
# the cases each finding was about, besides what the draw finds: a CDC row keeps a key it did not
# send; a write refused by Qdrant takes its stale chunks' delete and the tag after it along; a write
# that fails after planning leaves the tag after it planned on the chunks there; a delete by filter
@example([([("write", 1, [0, 1], 0), ("tag", 1, [], 2)], None, None), ([("row", 1, [2], 1)], None, None)])
@example([([("write", 1, [0, 1, 2, 3, 4], 0)], None, None),
          ([("write", 1, [5], 1), ("tag", 1, [], 1), ("write", 2, [6], 0)], ("refuse", 0), None)])
@example([([("write", 1, [0, 1, 2, 3, 4], 0)], None, None),
          ([("write", 1, [5], 1), ("tag", 1, [], 1)], ("fail", frozenset({0})), None)])
@example([([("write", 1, [0], 1), ("write", 2, [1, 2], 0)], None, None), ([("tag", 1, [], 0)], None, 1)])
@given(st.lists(st.tuples(st.lists(EVENTS, min_size=1, max_size=5), TROUBLE, st.none() | st.integers(0, 2)),
                min_size=1, max_size=4))
def test_chunk_points_are_the_chunking_of_the_latest_text(
        chunker: Chunker, windows: list[tuple[list[Any], tuple[str, Any] | None, int | None]]) -> None:
    state: State = {}
    latest: Latest = {}
    for drawn, trouble, filter_delete in windows:
        events = [event_of(*e) for e in drawn]
        kind, arg = trouble or ("", None)
        if filter_delete is not None and kind != "refuse":  # the delete by filter last: events after it
            # would be planned on chunks it removed (sent, refused by Qdrant: the isolation's case)
            events.append((DeleteEvent(**common, op="delete", filter={"must": [
                {"key": "v", "match": {"value": filter_delete}}]}), ()))
        if kind == "crash":  # a crash after some requests; the replay starts from what they left
            run_window(state, events, chunker, CountingEmbedder(), stop_after=arg)
        held = {d: {p.payload[CHUNK_KEY]["sha256"] for p in chunks_of(state, d).values()} for d in range(1, 4)}
        embedder = CountingEmbedder()
        window = run_window(state, events, chunker, embedder, fail_after_plan=arg if kind == "fail" else frozenset(),
                            refuse=arg if kind == "refuse" else None)
        # the reference: the events that applied, one by one; left out or refused, as if never sent
        before = dict(latest)
        refusals = reference(latest, drawn, window.left_out | window.refused)
        if kind == "refuse" and arg in window.refused:  # it took along exactly the later events of its documents
            doc_of = {p: doc for p, (_, doc, _, _) in enumerate(drawn)}
            reached, taken = {doc_of[arg]}, set()
            for p in range(arg + 1, len(drawn)):
                if doc_of[p] in reached and p in window.outcomes and isinstance(window.outcomes[p], PlannedEvent):
                    taken.add(p)
            assert window.refused == {arg} | taken
        if filter_delete is not None and kind != "refuse" and len(drawn) not in window.left_out:
            for doc in [d for d, (_, payload) in latest.items() if payload.get("v") == filter_delete]:
                del latest[doc]
        for position, code in refusals.items():
            outcome = window.outcomes[position]
            # a replay may apply an event refused the first time (or the reverse) where a later event
            # of the window creates (deletes) the document: it then replaces (removes) it whole
            assert kind == "crash" or (isinstance(outcome, Refusal) and outcome.code == code), (position, outcome)
        assert kind == "crash" or all(isinstance(o, PlannedEvent) for p, o in window.outcomes.items()
                                      if p not in refusals and p < len(drawn)), window.outcomes
        for doc in range(1, 4):
            actual = chunks_of(state, doc)
            if doc not in latest:
                assert actual == {}, (doc, before)
                continue
            text, payload = latest[doc]
            assert actual == expected_chunks(chunker, doc, text, payload)
            spans = [(p.payload[CHUNK_KEY]["start"], p.payload[CHUNK_KEY]["end"], p.payload[CHUNK_KEY]["text"])
                     for p in actual.values()]
            assert rebuild_text(spans) == text
        # the model saw only chunk texts that no document of the window held (but where a re-embed
        # by ids asks for them again), each once
        shas = [hashlib.sha256(t.encode()).hexdigest() for t in embedder.texts]
        assert len(shas) == len(set(shas))
        named = {doc for _, doc, _, _ in drawn}
        again = {doc for k, doc, _, _ in drawn if k == "reembed"}
        assert not set(shas) & (set().union(*(held[d] for d in named)) - set().union(*(held[d] for d in again)))
        # the verification's per-document digest is the digest of the final chunk set
        final = {}
        for position in sorted(window.outcomes):
            outcome = window.outcomes[position]
            if isinstance(outcome, PlannedEvent) and position not in window.refused:
                final.update(outcome.documents)
        for doc, stats in final.items():
            shas_now = [p.payload[CHUNK_KEY]["sha256"]
                        for p in sorted(chunks_of(state, int(doc)).values(),
                                        key=lambda p: p.payload[CHUNK_KEY]["index"])]
            if filter_delete is None or kind == "refuse":
                assert (stats.count, stats.digest) == (len(shas_now), chunk_set_digest(shas_now))


@pytest.mark.parametrize("held", [(), ("",)], ids=["no vector", "the dense one only"])
def test_a_stored_chunk_read_without_its_vectors_is_embedded_not_copied(chunker: Chunker, held: tuple[str]) -> None:
    """A chunk that lacks a vector of the chunks (written by another writer, or before the
    collection had its sparse vector) is embedded again, never copied with a vector missing."""
    state: State = {}
    run_window(state, [event_of("write", 1, [0, 1, 2], 0)], chunker, CountingEmbedder())
    lost = next(iter(chunks_of(state, 1)))
    state[lost].vectors = {name: state[lost].vectors[name] for name in held}
    planner = DocumentPlanner(COLLECTION, "body", "", DEFAULT_DENSE_MODEL, chunker.chunks,
                              stored_documents(COLLECTION, [1], state), vector_names=NAMES)
    planned = planner.plan(0, event_of("write", 1, [0, 1, 2, 3], 0)[0])
    assert isinstance(planned, PlannedEvent)
    assert state[lost].payload[CHUNK_KEY]["sha256"] in planner.to_embed  # embedded, not a vector never read
    assert lost not in planner.to_read


@pytest.mark.parametrize("before", ["verified", "mismatch", "partial"])
@pytest.mark.parametrize("stale", [False, True])
@pytest.mark.parametrize("rejected", [False, True])
def test_the_chunk_check_never_lowers_a_mismatch(before: str, stale: bool, rejected: bool) -> None:
    """A chunk that should be gone (or is missing) is a mismatch; one a refused event changed makes a
    verified batch partial, never a mismatch verified or partial."""
    from connector.domain.records import VerificationOutcome
    from connector.stream.window.chunks import chunk_check_outcome

    outcome = VerificationOutcome(status=before)  # type: ignore[arg-type]
    kept, gone, refused = 1, 2, 3  # chunk point ids
    found = {kept} | ({gone} if stale else set()) | ({refused} if rejected else set())
    checked = chunk_check_outcome(outcome, found, {kept}, {refused})
    expected = "mismatch" if stale or before == "mismatch" else "partial" if rejected or before == "partial" else before
    assert checked.status == expected
    assert [m.id for m in checked.mismatches] == ([gone] if stale else [])
    assert [m.id for m in checked.changed_by_rejected] == ([refused] if rejected else [])
