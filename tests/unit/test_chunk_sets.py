"""A chunked document checked whole from its chunk points (connector/domain/chunk_sets.py), what a
re-chunk decides and reads back (connector/bulk/rechunk.py), and the index an import of chunk points
asks for. With the real splitter and tokenizer on real prose (the standard library's docstrings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from connector.bulk.documents import records_state
from connector.bulk.importer import manifest_plan
from connector.bulk.rechunk import _read_back, rechunk_reason, tokenizer_digest
from connector.domain.chunk_sets import (
    ChunkRecord,
    DocumentText,
    document_digest,
    document_text,
    group_by_document,
    rebuildable_text,
)
from connector.domain.chunking import Chunker, sha256_text
from connector.domain.documents import (
    CHUNK_KEY,
    DOCUMENT_ID_KEY,
    DocumentPlanner,
    PendingUpsert,
    chunk_id,
    materialize,
    stored_documents,
)
from connector.domain.operations import Op, PointData
from connector.domain.semantics import PointState, State, apply_all, copy_state
from connector.settings import DEFAULT_DENSE_MODEL, ChunkedField
from tests.unit.test_documents_property import PARAGRAPHS

TEXTS = st.lists(st.sampled_from(range(len(PARAGRAPHS))), min_size=2, max_size=6).map(
    lambda parts: "\n\n".join(PARAGRAPHS[i] for i in parts))


@pytest.fixture(scope="module")
def tokenizer(model_paths: dict[str, str]) -> Tokenizer:
    return Tokenizer.from_file(str(Path(model_paths[DEFAULT_DENSE_MODEL]) / "tokenizer.json"))


@pytest.fixture(scope="module")
def chunker(tokenizer: Tokenizer) -> Chunker:
    return Chunker(tokenizer, max_tokens=40, overlap_tokens=6)


def written(chunker: Chunker, text: str, doc: int = 1) -> list[tuple[Any, dict[str, Any]]]:
    """The chunk points the stream's planner writes for a document's text: (id, payload)."""
    planner = DocumentPlanner("articles", "body", "", DEFAULT_DENSE_MODEL, chunker.chunks, {})
    steps = planner.rewrite(0, doc, text, {"lang": "en"}).steps
    return [(step.point_id, step.payload) for step in steps if isinstance(step, PendingUpsert)]


def checked(points: list[tuple[Any, dict[str, Any]]]) -> Any:
    chunks, malformed = group_by_document(points)
    assert malformed == {}
    return document_text(chunks["1"], dict(points))


@settings(max_examples=25)
@given(text=TEXTS, data=st.data())
def test_a_document_rebuilds_from_its_chunk_points_and_any_damage_is_named(chunker: Chunker, text: str,
                                                                            data: st.DataObject) -> None:
    points = written(chunker, text)
    whole = checked(points)
    assert (whole.text, whole.payload) == (text, {"lang": "en"})
    assert len({document_digest(payload) for _, payload in points}) == 1
    if len(points) < 2:
        return
    n = data.draw(st.integers(0, len(points) - 1))
    pid, payload = points[n]
    meta = payload[CHUNK_KEY]
    lost = points[:n] + points[n + 1:]
    assert checked(lost).startswith(f"chunks {n} of {len(points)} missing")
    twice = [*points, (chunk_id("articles", 1, 99), payload)]
    assert "there more than once" in checked(twice)
    edited = {**payload, CHUNK_KEY: {**meta, "text": meta["text"] + "!"}}
    assert checked([*lost, (pid, edited)]) == f"chunks {n} whose text is not their sha256 or span"
    # a chunk true to its own sha256 and span, of another text: only the document's hash tells
    other = meta["text"][::-1]
    forged = {**payload, CHUNK_KEY: {**meta, "text": other, "sha256": sha256_text(other)}}
    assert checked([*lost, (pid, forged)]) == "its text rebuilt from its chunks does not hash to its document_sha256"
    assert checked([*lost, (pid, {**payload, "lang": "de"})]) == "its chunks disagree on the document's payload"


def test_chunks_of_two_versions_and_a_malformed_chunk_are_named(chunker: Chunker) -> None:
    first = written(chunker, "\n\n".join(PARAGRAPHS[:4]))
    second = written(chunker, "\n\n".join(PARAGRAPHS[1:5]))
    mixed = checked(first[:2] + second[2:])
    assert "disagree on their count" in mixed or "different versions of its text" in mixed
    chunks, malformed = group_by_document([(7, {CHUNK_KEY: {"document_id": "1", "index": "zero"}}), (8, {"x": 1})])
    assert chunks == {}
    assert malformed == {"1": [("point 7: its _chunk is not a chunk's (index, count, sha256, document_sha256, "
                               "start, end, text)")]}
    assert document_digest({"x": 1}) is None


def test_a_re_chunk_is_needed_for_another_tokenizer_or_other_limits(tokenizer: Tokenizer) -> None:
    old = ChunkedField(text_field="body", model=DEFAULT_DENSE_MODEL, max_tokens=256, overlap_tokens=32)
    assert rechunk_reason(old, old, same_tokenizer=True, forced=False) is None
    assert rechunk_reason(old, old, same_tokenizer=True, forced=True) == "--rechunk"
    fewer = old.model_copy(update={"max_tokens": 128})
    assert rechunk_reason(old, fewer, same_tokenizer=True, forced=False) == "max_tokens 256 -> 128"
    other = old.model_copy(update={"model": "BAAI/bge-small-en-v1.5"})
    assert rechunk_reason(old, other, same_tokenizer=False, forced=False) == (
        "model BAAI/bge-small-en-v1.5 splits text by another tokenizer than sentence-transformers/all-MiniLM-L6-v2")
    # where a tokenizer cuts or pads is not how it splits
    cut = Tokenizer.from_str(tokenizer.to_str())
    cut.enable_truncation(64)
    assert tokenizer_digest(cut) == tokenizer_digest(tokenizer)
    changed = json.loads(tokenizer.to_str())
    changed["normalizer"] = None
    assert tokenizer_digest(Tokenizer.from_str(json.dumps(changed))) != tokenizer_digest(tokenizer)


def test_a_re_chunks_read_back_names_the_documents_not_as_written() -> None:
    def chunk(doc: str, index: int) -> PointState:
        return PointState({CHUNK_KEY: {"document_id": doc, "index": index}}, {"": (1.0, 0.0)})

    ops = [Op("upsert", points={1: PointData({"": (1.0, 0.0)}, chunk("1", 0).payload),
                                2: PointData({"": (1.0, 0.0)}, chunk("2", 0).payload)}),
           Op("delete", ids=[3])]
    before = {3: chunk("1", 1)}
    assert _read_back(before, ops, {1: chunk("1", 0), 2: chunk("2", 0)}, {""}) == {}
    stale, stray, other_vector = chunk("1", 1), chunk("2", 5), PointState(chunk("2", 0).payload, {"": (0.0, 1.0)})
    differing = _read_back(before, ops, {1: chunk("1", 0), 2: other_vector, 3: stale, 4: stray}, {""})
    assert differing == {"1": "chunk point 3: exists not as written", "2": "chunk point 2: vector: not as written"}
    assert records_state([]) == {}


def test_a_re_chunk_for_another_model_embeds_every_chunk_and_one_for_the_same_reuses(chunker: Chunker) -> None:
    text = "\n\n".join(PARAGRAPHS[:4])
    state = {pid: PointState(payload, {"": (1.0, 0.0)}) for pid, payload in written(chunker, text)}

    def embedded(reuse: bool) -> int:
        planner = DocumentPlanner("articles", "body", "", DEFAULT_DENSE_MODEL, chunker.chunks,
                                  stored_documents("articles", [1], state), reuse_stored=reuse)
        planner.rewrite(0, 1, text, {"lang": "en"})
        return len(planner.to_embed)

    assert embedded(reuse=True) == 0  # the same texts: their stored vectors are the model's
    assert embedded(reuse=False) == len(state)  # another model: every chunk text embedded anew


def test_an_import_of_chunk_points_indexes_the_document_id() -> None:
    manifest = {"config": {"dense": {"": {"size": 384, "distance": "Cosine"}}, "sparse": {}}}
    assert manifest_plan(manifest).payload_indexes == ()
    indexed = manifest_plan({**manifest, "chunked": {"documents": 3}}).payload_indexes
    assert [index.field_name for index in indexed] == [DOCUMENT_ID_KEY]


def test_a_chunk_record_carries_what_the_planner_wrote(chunker: Chunker) -> None:
    (pid, payload), *_ = written(chunker, PARAGRAPHS[0] * 3, doc=5)
    chunks, _ = group_by_document([(pid, payload)])
    (record,) = chunks["5"]
    assert isinstance(record, ChunkRecord)
    assert (record.document_id, record.index, record.point_id) == ("5", 0, chunk_id("articles", 5, 0))


# --- a re-chunk cut short: its new chunks written beside stale ones, and resumed -------------------

LIMITS = [(24, 4), (40, 6), (64, 8), (96, 16)]  # (max_tokens, overlap_tokens) of the old and the new chunking


@pytest.fixture(scope="module")
def chunkers(tokenizer: Tokenizer) -> dict[tuple[int, int], Chunker]:
    return {limits: Chunker(tokenizer, *limits) for limits in LIMITS}


def as_state(points: list[tuple[Any, dict[str, Any]]]) -> State:
    return {pid: PointState(payload, {"": (1.0, 0.0)}) for pid, payload in points}


def rechunk_steps(new: Chunker, state: State, text: str) -> list[Op]:
    """What a re-chunk of document 1 over ``state`` sends (connector/bulk/rechunk.py): its new chunks,
    then its stale ones' delete, one point a step: every place a stop (Ctrl-C, a refusal) may cut it."""
    planner = DocumentPlanner("articles", "body", "", DEFAULT_DENSE_MODEL, new.chunks,
                              stored_documents("articles", [1], state), reuse_stored=False)
    planned = planner.rewrite(0, 1, text, {"lang": "en"})
    ops = materialize(planned, {("text", sha): {"": (1.0, 0.0)} for sha in planner.to_embed})
    return [Op(op.kind, points={pid: op.points[pid]}) if op.points is not None else Op(op.kind, ids=[pid])
            for op in ops for pid in (op.points if op.points is not None else op.ids or [])]


def rebuilt(state: State, rebuild: Any = rebuildable_text) -> Any:
    chunks, malformed = group_by_document((pid, point.payload) for pid, point in state.items())
    assert malformed == {}
    return rebuild(chunks["1"], {pid: point.payload for pid, point in state.items()})


@settings(max_examples=25)
@given(text=TEXTS, old=st.sampled_from(LIMITS), new=st.sampled_from(LIMITS))
def test_a_re_chunk_stopped_anywhere_rebuilds_and_resumes_to_the_uninterrupted_result(
        chunkers: dict[tuple[int, int], Chunker], text: str, old: tuple[int, int], new: tuple[int, int]) -> None:
    """Every cut of a document's re-chunk: the text rebuilds exactly or the problem is named (never
    another text); cut anywhere after its new chunks (the tool's requests may split there: a
    document's upsert is one op, its stale chunks' delete the next) it always rebuilds; a resumed
    re-chunk from any state that rebuilds ends equal to an uninterrupted one; and ``verify`` still
    names a cut-short document."""
    before = as_state(written(chunkers[old], text))
    steps = rechunk_steps(chunkers[new], before, text)
    done = copy_state(before)
    apply_all(done, steps)
    writes = sum(1 for step in steps if step.kind == "upsert")
    for cut in range(len(steps) + 1):
        state = copy_state(before)
        apply_all(state, steps[:cut])
        found = rebuilt(state)
        if cut == 0 or cut >= writes:  # not cut, or cut after its new chunks: among the stale ones' deletes
            assert isinstance(found, DocumentText), (cut, found)
        if isinstance(found, str):  # cut among its new chunks: an old one overwritten may have held text no other does
            continue
        assert (found.text, found.payload) == (text, {"lang": "en"})
        if len({point.payload[CHUNK_KEY]["count"] for point in state.values()}) > 1:
            assert isinstance(rebuilt(state, document_text), str), "a cut-short document checked whole"
        resumed = copy_state(state)
        apply_all(resumed, rechunk_steps(chunkers[new], state, found.text))
        assert {pid: point.payload for pid, point in resumed.items()} == {
            pid: point.payload for pid, point in done.items()}, cut


def test_a_cut_short_document_that_does_not_hold_its_text_whole_is_named(
        chunkers: dict[tuple[int, int], Chunker]) -> None:
    text = "\n\n".join(PARAGRAPHS[:4])
    small, large = written(chunkers[(24, 4)], text), written(chunkers[(96, 16)], text)
    assert len(small) > len(large) + 1
    stale = small[len(large):]  # the old chunks past the new count, the new ones written
    whole = rebuilt(as_state(large + stale))
    assert isinstance(whole, DocumentText)
    assert whole.text == text
    counts = f"its chunks disagree on their count ({len(large)}, {len(small)})"
    assert rebuilt(as_state(large[:1] + small[-1:])).startswith(f"{counts} and do not cover its text")
    assert rebuilt(as_state(large[:-1] + stale[:1])) == f"{counts} and do not rebuild to its document_sha256"
    relabelled = [(pid, {**payload, "lang": "de"}) for pid, payload in stale]
    assert rebuilt(as_state(large + relabelled)) == f"{counts} and on the document's payload"
    pid, payload = stale[0]
    edited = {**payload, CHUNK_KEY: {**payload[CHUNK_KEY], "text": "changed"}}
    assert rebuilt(as_state([*large, (pid, edited)])).endswith("whose text is not their sha256 or span")
    other = written(chunkers[(96, 16)], "\n\n".join(PARAGRAPHS[1:5]))
    assert rebuilt(as_state(other + stale)).endswith("parts of different writes")  # two texts: no rebuild
