"""Re-chunk: a chunked collection's documents rebuilt from their chunk points and chunked again
(another model's tokenizer or window, other limits), written as new chunk sets, stale chunks
deleted, read back. ``reembed`` runs it in place (connector/bulk/reembed.py), a migration into
its new collection (connector/bulk/migrate.py).

1. Census: one scroll of the source's chunk points, ``_chunk.document_id`` and ``index`` only:
   the documents, in key order.
2. Per page of documents: their chunk points read together by the index
   (connector/bulk/documents.py), each document rebuilt from them (connector/domain/chunk_sets.py);
   one that cannot be (its chunk set incomplete, say) is named and left as it is.
3. Plan with the stream's own planner (connector/domain/documents.py), against the target's
   chunks of those documents, chunk ids from ``id_name`` (the name events use): every chunk text
   embedded (one model call a page), unless the stored vectors are of the same model
   (``reuse_stored``: a chunk whose text a chunk held keeps its vector).
4. Apply: each document's new chunks, then its stale ones deleted, in requests cut by size.
5. Read the documents' chunks back from the target and compare with what the plan leaves
   (connector/domain/verifier.py): no chunk missing, none left over, payload and vector as written.
6. Checkpoint the last document done; a resumed run redoes the page it stopped in, then goes on
   (a document re-chunked twice gets the same chunk set: its text rebuilds the same). A document
   the stop cut short, its new chunks written beside stale ones of the old count, is rebuilt from
   the text they hold (``rebuildable_text``); its chunk set is written again, the stale ones deleted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from pydantic import ValidationError
from tokenizers import Tokenizer

from connector.bulk.documents import DOCUMENT_PAGE, read_documents, rebuilt_documents, records_state
from connector.bulk.dump import cosine_names, vectors_config
from connector.bulk.error_line import fitting_errors
from connector.bulk.scroll import Checkpoint, PointsProgress
from connector.domain.chunk_sets import document_id_of
from connector.domain.chunking import Chunker
from connector.domain.documents import CHUNK_KEY, DocumentPlanner, chunk_id, materialize, stored_documents
from connector.domain.operations import Op, PointKey
from connector.domain.semantics import State
from connector.domain.verifier import compare, expected_state, touched_vectors
from connector.embedding.chunk_vectors import stored_chunk_vectors, text_chunk_vectors
from connector.embedding.embedder import Embedder
from connector.errors import InvalidOption
from connector.qdrant import RetryingClient, to_qdrant
from connector.qdrant.reads import scroll_pages
from connector.qdrant.request_size import requests_for
from connector.qdrant.updates import ConfirmedUpdate
from connector.settings import ChunkedField

__all__ = ["RechunkJob", "RechunkSummary", "document_keys", "model_window", "new_chunking", "rechunk", "rechunk_reason",
           "tokenizer_digest"]

LISTED = 100
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # as QCC_QDRANT_MAX_REQUEST_BYTES: half a server's default body limit


def tokenizer_digest(tokenizer: Tokenizer) -> str:
    """What a tokenizer splits by (its vocabulary, normalizer, pre-tokenizer...), not where it cuts or pads."""
    config = json.loads(tokenizer.to_str())
    config.pop("truncation", None)
    config.pop("padding", None)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def rechunk_reason(old: ChunkedField, new: ChunkedField, same_tokenizer: bool, forced: bool) -> str | None:
    """Pure: why the documents must be chunked again for ``new`` (None: their chunks stay as they are)."""
    if forced:
        return "--rechunk"
    if not same_tokenizer:
        return f"model {new.model} splits text by another tokenizer than {old.model}"
    changed = [f"{name} {getattr(old, name)} -> {getattr(new, name)}" for name in ("max_tokens", "overlap_tokens")
               if getattr(old, name) != getattr(new, name)]
    return ", ".join(changed) or None


def new_chunking(embedder: Embedder, old: ChunkedField, model: str | None, max_tokens: int | None,
                 overlap_tokens: int | None) -> ChunkedField:
    """The chunking for ``model``: the limits given, else the old ones, ``max_tokens`` cut to the
    model's window when it reads fewer tokens than the old chunks hold."""
    model = model or str(old.model)
    window = model_window(embedder, model)
    if max_tokens is not None and window is not None and max_tokens > window:
        raise InvalidOption(f"--max-tokens {max_tokens}", f"model {model} reads {window} tokens of a text: give "
                            f"{window} or less")
    fitting = max_tokens or (min(old.max_tokens, window) if window is not None else old.max_tokens)
    overlap = old.overlap_tokens if overlap_tokens is None else overlap_tokens
    try:
        return ChunkedField.model_validate({**old.model_dump(), "model": model, "max_tokens": fitting,
                                            "overlap_tokens": overlap})
    except ValidationError as exc:
        raise InvalidOption(f"--max-tokens {fitting} --overlap-tokens {overlap}", fitting_errors(exc)) from None


def model_window(embedder: Embedder, model: str) -> int | None:
    """How many tokens of a text ``model`` reads (its tokenizer's truncation), None when it does not say."""
    window = (embedder.tokenizer(model).truncation or {}).get("max_length")
    return int(window) if window else None


@dataclass(frozen=True)
class RechunkJob:
    """What to re-chunk, where to, and how."""

    source: str  # the collection the documents are read from
    target: str  # the collection their new chunk sets are written to (the source itself, in place)
    id_name: str  # the name chunk ids derive from: the one events use (an alias, where they use one)
    chunking: ChunkedField  # the new chunking; its model embeds
    reuse_stored: bool  # the stored vectors are of that model: a chunk whose text a chunk held keeps its vector


@dataclass
class RechunkSummary:
    documents: int = 0  # re-chunked, written and read back
    written: int = 0  # chunk points written
    reused: int = 0  # of those, with a vector a chunk of the same text held
    embedded: int = 0  # of those, embedded by the model
    deleted: int = 0  # stale chunk points deleted
    not_rebuilt: list[dict[str, Any]] = field(default_factory=list)  # {"document_id", "problem"}, at most 100
    not_rebuilt_count: int = 0
    mismatched: list[dict[str, Any]] = field(default_factory=list)  # documents read back otherwise than written
    mismatched_count: int = 0
    resumed: bool = False

    @property
    def ok(self) -> bool:
        return not (self.not_rebuilt_count or self.mismatched_count)


async def document_keys(qdrant: RetryingClient, collection: str, id_name: str | None = None,
                        ) -> tuple[list[str], list[Any]]:
    """The documents whose chunk points ``collection`` holds (``_chunk.document_id``, sorted) and,
    with ``id_name``, the chunk-0 points whose id is not derived from it (by another name)."""
    keys: set[str] = set()
    foreign: list[Any] = []
    async for page, _ in scroll_pages(qdrant, collection, with_payload=[f"{CHUNK_KEY}.document_id",
                                                                       f"{CHUNK_KEY}.index"],
                                      with_vectors=False, page_size=1024):
        for record in page:
            meta = (record.payload or {}).get(CHUNK_KEY)
            if not isinstance(meta, dict) or not isinstance(meta.get("document_id"), str):
                continue
            keys.add(meta["document_id"])
            if id_name is not None and meta.get("index") == 0 and str(record.id) != chunk_id(
                    id_name, document_id_of(meta["document_id"]), 0):
                foreign.append(record.id)
    return sorted(keys), foreign


async def rechunk(qdrant: RetryingClient, embedder: Embedder, job: RechunkJob, *,
                  page_size: int = DOCUMENT_PAGE, checkpoint: Checkpoint | None = None, resume: bool = False,
                  show_progress: bool = True, max_request_bytes: int = MAX_REQUEST_BYTES) -> RechunkSummary:
    """Every document of ``job.source`` chunked again into ``job.target`` (see the module docstring)."""
    spec, model = job.chunking, job.chunking.model
    assert model is not None, "a re-chunk names its model"
    chunker = embedder.chunker(model, spec.max_tokens, spec.overlap_tokens)
    in_place = job.source == job.target
    keys, foreign = await document_keys(qdrant, job.source, job.id_name if in_place else None)
    if foreign:
        raise InvalidOption(f"collection {job.source}", f"its chunk ids are not those of documents of "
                            f"{job.id_name!r} (point {foreign[0]} and {len(foreign) - 1} more): name it as the "
                            "events do (an alias, where they use one)")
    state = (checkpoint.load() if checkpoint is not None and resume else None) or {}
    summary = RechunkSummary(**state["summary"], resumed=True) if state.get("summary") else RechunkSummary()
    todo = [key for key in keys if "after" not in state or key > state["after"]]
    info = await qdrant.call(f"get_collection({job.target})", partial(qdrant.client.get_collection, job.target))
    cosine = cosine_names(vectors_config(info))
    with PointsProgress(f"re-chunk {job.source} (documents)", len(keys), show_progress) as progress:
        progress.skip_to(len(keys) - len(todo))
        for start in range(0, len(todo), page_size):
            page = todo[start:start + page_size]
            await _page(qdrant, embedder, job, chunker, page, cosine, summary, max_request_bytes)
            if checkpoint is not None:
                checkpoint.save({"kind": "rechunk", "chunking": spec.model_dump(mode="json"), "after": page[-1],
                                 "summary": _counts(summary)})
            progress.advance(len(page))
    return summary


def _counts(summary: RechunkSummary) -> dict[str, Any]:
    counts = asdict(summary)
    counts.pop("resumed")
    return counts


async def _page(qdrant: RetryingClient, embedder: Embedder, job: RechunkJob, chunker: Chunker, page: list[str],
                cosine: set[str], summary: RechunkSummary, max_request_bytes: int) -> None:
    """One page of documents: rebuilt, planned, embedded, written, read back."""
    spec = job.chunking
    vectors_read: bool | list[str] = list(spec.vector_names) if job.reuse_stored else False
    rebuilt, problems, records = await rebuilt_documents(qdrant, job.source, page, cut_short=True,
                                                         vectors=vectors_read if job.source == job.target else False)
    if job.source != job.target:
        records = await read_documents(qdrant, job.target, page, vectors=vectors_read)
    before = records_state(records)
    docs = {key: document_id_of(key) for key in rebuilt}
    planner = DocumentPlanner(job.id_name, spec.text_field, spec.vector, str(spec.model), chunker.chunks,
                              stored_documents(job.id_name, list(docs.values()), before),
                              reuse_stored=job.reuse_stored, vector_names=spec.vector_names)
    planned = [planner.rewrite(position, docs[key], rebuilt[key].text, rebuilt[key].payload)
               for position, key in enumerate(rebuilt)]
    texts = list(planner.to_embed.items())
    dense = await embedder.embed(str(spec.model), "dense", [text for _, text in texts])
    vectors = await text_chunk_vectors(embedder, spec, texts, dense)
    vectors.update({("stored", pid): stored_chunk_vectors(before[pid], spec) for pid in planner.to_read})
    ops = [op for event in planned for op in materialize(event, vectors)]
    for request in requests_for(ops, max_request_bytes):
        await qdrant.call(f"batch_update_points({job.target})", ConfirmedUpdate(partial(
            qdrant.client.batch_update_points, job.target, [to_qdrant(op) for op in request], wait=True)))
    after = records_state(await read_documents(qdrant, job.target, page, vectors=list(spec.vector_names)))
    _tally(summary, planned, problems, _read_back(before, ops, after, cosine))


def _read_back(before: State, ops: list[Op], after: State, cosine: set[str]) -> dict[str, str]:
    """Pure: the documents whose chunks read back differ from what the ops leave, with the first
    difference (none: every document as written, no chunk missing or left over)."""
    expected = expected_state(before, ops)
    touched = touched_vectors(ops)
    by_document: dict[str, list[PointKey]] = {}
    for pid, point in [*expected.items(), *after.items()]:
        owner = str((point.payload.get(CHUNK_KEY) or {}).get("document_id"))
        if pid not in by_document.setdefault(owner, []):
            by_document[owner].append(pid)
    differing: dict[str, str] = {}
    for owner, ids in by_document.items():
        outcome = compare(expected, after, ids, touched, cosine)
        if outcome.mismatches:
            first = outcome.mismatches[0]
            differing[owner] = f"chunk point {first.id}: {first.field} not as written"
    return differing


def _tally(summary: RechunkSummary, planned: list[Any], problems: dict[str, str], differing: dict[str, str]) -> None:
    for event in planned:
        for stats in event.documents.values():
            summary.written += stats.written
            summary.reused += stats.reused
            summary.embedded += stats.embedded
            summary.deleted += stats.deleted
    summary.documents += len(planned) - len(differing)
    summary.not_rebuilt_count += len(problems)
    summary.not_rebuilt += [{"document_id": document_id_of(key), "problem": problem}
                            for key, problem in problems.items()][:LISTED - len(summary.not_rebuilt)]
    summary.mismatched_count += len(differing)
    summary.mismatched += [{"document_id": document_id_of(key), "problem": problem}
                           for key, problem in differing.items()][:LISTED - len(summary.mismatched)]

