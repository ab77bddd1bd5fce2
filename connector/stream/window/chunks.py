"""Stages 3-4 of a chunked collection (``QCC_CHUNKED_COLLECTIONS``): its events address
documents; this reads the chunks of the window's documents (by the document id, one scroll),
splits the texts written (in the embedding thread: the event loop goes on), plans their chunk
operations (connector/domain/documents.py), embeds only the chunk texts no chunk held, and after
the apply checks that no other chunk of those documents remains and which columns a CDC source
did not send their chunks lack.

Collections not declared chunked never come here: their windows make no extra read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.domain.changes import RejectionCode, UpsertEvent, normalize_id, point_ids_of
from connector.domain.chunking import Chunk
from connector.domain.documents import (
    CHUNK_KEY,
    DOCUMENT_ID_KEY,
    DocKey,
    DocumentPlanner,
    DocumentStats,
    PendingUpsert,
    PlannedEvent,
    Refusal,
    VectorRef,
    document_filter,
    document_key,
    materialize,
    plan_events,
    stored_documents,
    written_text,
)
from connector.domain.operations import Op, PointKey, Vector
from connector.domain.records import Mismatch, Unavailable, VerificationOutcome
from connector.domain.schema import CollectionSchema, schema_from_info
from connector.domain.semantics import PointState, State
from connector.domain.sharding import Selector
from connector.domain.verifier import FilterMatch
from connector.embedding.chunk_vectors import stored_chunk_vectors, text_chunk_vectors
from connector.embedding.embedder import Embedder
from connector.errors import ConfigurationError
from connector.qdrant.catalog import ensure_document_index
from connector.qdrant.reads import READ_CHUNK, scroll_pages
from connector.qdrant.retrying import RetryingClient
from connector.qdrant.wires.models import stored_vectors
from connector.settings import ChunkedField, Settings
from connector.stream.window.items import Item, fail
from connector.stream.window.rows import Prefetched

__all__ = ["ChunkStage", "DocumentWindow", "assemble", "check_chunk_vectors", "chunks_left"]

log = logging.getLogger(__name__)
SCROLL_PAGE = 512
LISTED_STALE = 20
START_CHECK_SECONDS = 5.0  # the start check asks once: a Qdrant that does not answer by then is checked by the windows


@dataclass
class DocumentWindow:
    """A chunked collection's part of a window, planned: its chunk ops in window order, what each
    event did to each document, and what was read (the chunks there before)."""

    ops: list[Op] = field(default_factory=list)
    documents: dict[int, dict[DocKey, DocumentStats]] = field(default_factory=dict)  # by event position
    prefetched: Prefetched = field(default_factory=Prefetched)
    owners: dict[PointKey, DocKey] = field(default_factory=dict)  # chunk id -> its document (read or written)
    text_field: str = ""  # the documents' text field (the chunks hold the text under _chunk, not as a key)
    vector: str = ""  # the chunks' vector
    lacking: dict[int, list[DocKey]] = field(default_factory=dict)  # by event position: documents left unwritten


class ChunkStage:
    def __init__(self, settings: Settings, qdrant: RetryingClient, embedder: Embedder,
                 chunked: dict[str, ChunkedField], ids_from: Mapping[str, str] | None = None) -> None:
        """``ids_from``: collection -> the name its chunk ids derive from, where events that reach it
        name another (a migration's tail writes the alias's documents into the new collection)."""
        self.settings, self.qdrant, self.embedder, self.chunked = settings, qdrant, embedder, chunked
        self.ids_from = dict(ids_from or {})
        self._indexed: set[str] = set()

    def spec(self, collection: str | None) -> ChunkedField | None:
        return self.chunked.get(collection or "")

    async def plan(self, collection: str, spec: ChunkedField, schema: CollectionSchema, live: list[Item],
                   shard_key: Selector | None) -> DocumentWindow:
        """The window's chunk ops; items that cannot apply fail (their dead letter says why). An item
        that fails once later items were planned on its effect (its record's other event refused,
        its texts of a size the collection's vector does not take) is left out and the rest planned
        again from the same read, until none fails (docs/design.md, "Chunked documents")."""
        await self.ensure_index(schema.name)
        model = spec.model or self.settings.dense_model
        docs = list(dict.fromkeys(pid for item in live if item.event is not None
                                  for pid in point_ids_of(item.event)))
        writes_text = any(getattr(item.event, "op", None) in ("upsert", "reembed") for item in live)
        if writes_text and spec.sparse_vector and spec.sparse_vector not in schema.sparse:
            # a collection made after the start check without it: a setting to fix, never the events' fault
            # (the worker stops, exit 78, and replays the window once the collection has it)
            raise ConfigurationError(missing_sparse_vector(schema.name, spec))
        names = list(spec.vector_names)
        stored = await self.read_chunks(schema.name, docs, shard_key, vectors=names if writes_text else [])
        chunker = self.embedder.chunker(model, spec.max_tokens, spec.overlap_tokens)
        id_name = self.ids_from.get(collection, collection)
        texts = [text for item in live if isinstance(item.event, UpsertEvent) for point in item.event.points
                 if (text := written_text(point, spec.text_field)) is not None]
        chunkings = await self.embedder.chunk_texts(chunker, texts)  # CPU work, in the embedding thread

        def chunking(text: str) -> list[Chunk]:
            return chunkings[text] if text in chunkings else chunker.chunks(text)

        size = schema.dense[spec.vector].size if spec.vector in schema.dense else None
        vectors: dict[VectorRef, dict[str, Vector]] = {}
        unfit: str | None = None  # why the model's vectors do not fit the collection's
        by_position = {item.position: item for item in live}
        while True:  # each pass leaves out more events, or is the last
            planner = DocumentPlanner(id_name, spec.text_field, spec.vector, model, chunking,
                                      stored_documents(id_name, docs, stored), vector_names=names)
            planned, refused = plan_events(planner, [
                (item.position, item.event, item.row.unavailable_keys if item.row is not None else ())
                for item in live if item.event is not None and item.error is None])
            fresh = [(sha, text) for sha, text in planner.to_embed.items() if ("text", sha) not in vectors]
            if fresh and unfit is None:
                embedded = await self.embedder.embed(model, "dense", [text for _, text in fresh])
                if size is not None and len(embedded[0]) != size:
                    unfit = (f"model {model!r} makes {len(embedded[0])}-dimensional vectors; "
                             f"{spec.vector or 'the unnamed vector'} has {size}")
                else:
                    vectors.update(await text_chunk_vectors(self.embedder, spec, fresh, embedded))
            failing = _failing(planned, refused, vectors, unfit, by_position)
            if not failing:
                break
            for position, (code, message) in failing.items():  # left out of the next pass: it never applies
                fail(by_position[position], code, message)
        for position, refusal in refused.items():
            fail(by_position[position], refusal.code, refusal.message)
        vectors.update({("stored", pid): stored_chunk_vectors(stored[pid], spec) for pid in planner.to_read})
        return assemble(planned, stored, vectors, spec.vector, spec.text_field)


    async def ensure_index(self, collection: str) -> None:
        """The keyword index that finds a document's chunks, created when missing (once per worker
        and collection; connector/qdrant/catalog.py)."""
        if collection in self._indexed or self.settings.qdrant_url is None:  # local mode has no payload index
            return
        if await ensure_document_index(self.qdrant, collection):
            log.info("collection %s: created the keyword index on %s (chunked documents)", collection, DOCUMENT_ID_KEY)
        self._indexed.add(collection)

    async def read_chunks(self, collection: str, docs: Sequence[DocKey], shard_key: Selector | None, *,
                          vectors: list[str] | bool = False, payload: bool = True) -> State:
        """Every chunk point of these documents (by the document-id filter, never by a stored count)."""
        state: State = {}
        for start in range(0, len(docs), READ_CHUNK):
            flt = qm.Filter.model_validate(document_filter(list(docs[start:start + READ_CHUNK])))
            async for page, _ in scroll_pages(self.qdrant, collection, scroll_filter=flt, with_payload=payload,
                                              with_vectors=vectors or False, page_size=SCROLL_PAGE,
                                              shard_key=shard_key):
                for record in page:
                    state[normalize_id(record.id)] = PointState(payload=dict(record.payload or {}),
                                                                vectors=stored_vectors(record.vector))
        return state

    async def check(self, collection: str, window: DocumentWindow, applied: list[Op], rejected_ids: set[PointKey],
                    outcome: VerificationOutcome, shard_key: Selector | None,
                    matches: Mapping[int, FilterMatch] | None = None) -> VerificationOutcome:
        """After the read-back: no chunk of the window's documents but those it should have left
        (a stale chunk remaining, or one missing, is a mismatch). ``matches``: what each filter op
        matched as it was applied (connector/stream/window/filters.py): a delete by filter removed those."""
        applied_positions = {s for op in applied for s in op.sources}
        docs = list(dict.fromkeys(doc for position, stats in window.documents.items()
                                  if position in applied_positions for doc in stats))
        if not docs:
            return outcome
        expected = chunks_left(window, applied, {document_key(d) for d in docs}, matches or {})
        found = set(await self.read_chunks(collection, docs, shard_key, payload=False))
        return chunk_check_outcome(outcome, found, expected, rejected_ids)

    async def not_held(self, collection: str, window: DocumentWindow, items: Sequence[Item], applied: set[int],
                       placeholder: str, shard_key: Selector | None) -> list[Unavailable]:
        """The documents written by applied CDC row changes whose chunks lack a column the change
        did not carry (a payload key absent, or holding ``placeholder``), read after the window; the
        text is the chunks' own, never a key. Not a vector: a document that exists holds its text.
        A document a change could not write (missing, its text not sent: ``window.lacking``) and
        still without chunks after the window lacks its vector and every column of the row."""
        wanted: dict[DocKey, set[str]] = {}
        unwritten: dict[DocKey, set[str]] = {}
        for item in items:
            row = item.row
            if row is None or row.point_id is None or item.error is not None:
                continue
            keys = set(row.unavailable_keys) - {window.text_field}
            if item.position in window.lacking:
                sent = getattr(item.event, "payload", None) or {}
                for doc in window.lacking[item.position]:
                    unwritten.setdefault(doc, set()).update(keys | set(sent))
            elif keys and item.position in applied:
                wanted.setdefault(normalize_id(row.point_id), set()).update(keys)
        if not wanted and not unwritten:
            return []
        chunks: dict[str, list[PointState]] = {}
        for point in (await self.read_chunks(collection, list({**wanted, **unwritten}), shard_key)).values():
            chunks.setdefault(str(point.payload[CHUNK_KEY].get("document_id")), []).append(point)
        found: list[Unavailable] = []
        for doc, keys in unwritten.items():
            if not chunks.get(document_key(doc)):  # else a later change of the window wrote it: checked below
                found.append(Unavailable(id=doc, payload_keys=sorted(keys), vectors=[window.vector]))
            else:
                wanted.setdefault(doc, set()).update(keys)
        for doc, keys in wanted.items():
            held = chunks.get(document_key(doc), [])  # none: deleted later in the window, nothing to hold
            absent = sorted(k for k in keys if any(p.payload.get(k, placeholder) == placeholder for p in held))
            if absent:
                found.append(Unavailable(id=doc, payload_keys=absent, vectors=[]))
        return found


def chunk_check_outcome(outcome: VerificationOutcome, found: set[PointKey], expected: set[PointKey],
                        rejected_ids: set[PointKey]) -> VerificationOutcome:
    """``outcome`` with the chunk check's findings: a chunk found that should be gone, or missing,
    is a mismatch, unless a refused event's point (then it was changed by the rejected: ``partial``,
    where nothing else made it a mismatch). No IO."""
    differences = [Mismatch(id=pid, field="exists", expected=False, actual=True) for pid in found - expected]
    differences += [Mismatch(id=pid, field="exists", expected=True, actual=False) for pid in expected - found]
    stale = [m for m in differences if m.id not in rejected_ids]
    by_rejected = [m for m in differences if m.id in rejected_ids]
    update: dict[str, object] = {"checked_points": outcome.checked_points}
    if stale:
        update |= {"status": "mismatch", "mismatches": (outcome.mismatches + stale)[:LISTED_STALE],
                   "mismatch_count": outcome.mismatch_count + len(stale)}
    if by_rejected:
        update |= {"changed_by_rejected": (outcome.changed_by_rejected + by_rejected)[:LISTED_STALE],
                   "changed_by_rejected_count": outcome.changed_by_rejected_count + len(by_rejected)}
        if update.get("status", outcome.status) == "verified":  # a mismatch stays one
            update["status"] = "partial"
    return outcome.model_copy(update=update)


def _failing(planned: Sequence[PlannedEvent], refused: Mapping[int, Refusal], vectors: Mapping[VectorRef, object],
             unfit: str | None, items: Mapping[int, Item]) -> dict[int, tuple[RejectionCode, str]]:
    """The planned events that cannot apply after all, with why: those whose record has an event
    refused or failed (a record applies whole or not at all), and those that embed a text when the
    model's vectors do not fit (``unfit``; a patch or delete needs no vector). No IO."""
    records: dict[int, tuple[RejectionCode, str]] = {
        items[position].record_position: (refusal.code, refusal.message) for position, refusal in refused.items()}
    for item in items.values():
        if item.error is not None:
            records.setdefault(item.record_position, (item.error.code, item.error.message))
    failing: dict[int, tuple[RejectionCode, str]] = {}
    for event in planned:
        partner = records.get(items[event.position].record_position)
        if partner is not None:
            failing[event.position] = partner
        elif unfit is not None and any(isinstance(step, PendingUpsert) and step.vector[0] == "text"
                                       and step.vector not in vectors for step in event.steps):
            failing[event.position] = ("vector_size_mismatch", unfit)
    return failing


def assemble(planned: Sequence[PlannedEvent], stored: State, vectors: Mapping[VectorRef, Mapping[str, Vector]],
             vector_name: str, text_field: str) -> DocumentWindow:
    """The planned events' ops with their vectors, in window order; what each did to each document;
    the document of each chunk point read (``stored``) or written. No IO."""
    window = DocumentWindow(prefetched=Prefetched(frozenset(stored), stored), text_field=text_field,
                            vector=vector_name)
    window.owners = {pid: point.payload[CHUNK_KEY]["document_id"] for pid, point in stored.items()}
    for event in planned:
        ops = materialize(event, vectors)
        window.ops += ops
        window.documents[event.position] = event.documents
        if event.lacking:
            window.lacking[event.position] = event.lacking
        for op in ops:
            for pid, data in (op.points or {}).items():
                if data.payload is not None:
                    window.owners[pid] = data.payload[CHUNK_KEY]["document_id"]
    return window


def chunks_left(window: DocumentWindow, applied: Sequence[Op], documents: set[str],
                matches: Mapping[int, FilterMatch]) -> set[PointKey]:
    """The chunk points of ``documents`` (as ``_chunk.document_id`` holds them) that the applied ops
    leave: those read before the window, plus those written, minus those deleted by id or matched
    by a delete by filter as it was applied (``matches``, by the op's id()). No IO."""
    left = {pid for pid, doc in window.owners.items() if doc in documents and pid in window.prefetched.ids}
    for op in applied:
        if op.kind == "upsert":
            left.update(pid for pid in op.point_ids() if window.owners.get(pid) in documents)
        elif op.kind == "delete" and op.filter is not None:
            match = matches.get(id(op))
            left.difference_update(match.ids if match is not None else ())
        elif op.kind == "delete":
            left.difference_update(op.point_ids())
    return left


async def check_chunk_vectors(client: AsyncQdrantClient, embedder: Embedder, chunked: Mapping[str, ChunkedField],
                              default_model: str) -> None:
    """At the worker's start: each chunked collection that exists has its chunks' dense vector, of
    the size their model makes, and their sparse vector if they have one; else ConfigurationError
    (one line, exit 78): a model that does not fit is a setting to fix, not a fault of the events. A
    Qdrant that does not answer a collection's read within START_CHECK_SECONDS (the rest are not
    asked), or a collection made later, is left to the windows (which then fail only the events that
    embed, as for any collection)."""
    for collection, spec in chunked.items():
        asked = asyncio.ensure_future(_collection_info(client, collection))
        done, _ = await asyncio.wait({asked}, timeout=START_CHECK_SECONDS)
        if asked not in done or asked.exception() is not None:  # not answering now, a key that may not read...
            asked.cancel()
            log.info("chunked collections not checked at start (%s)", f"no answer within {START_CHECK_SECONDS} s"
                     if asked not in done else repr(asked.exception()))
            return
        info = asked.result()
        if info is None:  # made later: the windows check it
            continue
        model = spec.model or default_model
        vector = f"vector {spec.vector!r}" if spec.vector else "the unnamed vector"
        schema = schema_from_info(collection, info)
        if spec.sparse_vector and spec.sparse_vector not in schema.sparse:
            raise ConfigurationError(missing_sparse_vector(collection, spec))
        dense = schema.dense.get(spec.vector)
        if dense is None:
            raise ConfigurationError(f"chunked collection {collection!r} has no dense {vector.removeprefix('the ')} "
                                     "for its chunks (their vector in QCC_CHUNKED_COLLECTIONS or the CDC mapping)")
        size = len(embedder.embed_sync(model, "dense", ["the size of a vector"])[0])  # type: ignore[arg-type]
        if size != dense.size:
            raise ConfigurationError(f"chunked collection {collection!r}: model {model!r} makes {size}-dimensional "
                                     f"vectors, {vector} has {dense.size} (set the model in QCC_CHUNKED_COLLECTIONS "
                                     "or the CDC mapping to one that fits, or recreate the collection)")


def missing_sparse_vector(collection: str, spec: ChunkedField) -> str:
    return (f"chunked collection {collection!r} has no sparse vector {spec.sparse_vector!r} for its chunks (add "
            f"it, such as by create-collection --sparse {spec.sparse_vector}, or drop sparse_vector from "
            "QCC_CHUNKED_COLLECTIONS)")


async def _collection_info(client: AsyncQdrantClient, collection: str) -> qm.CollectionInfo | None:
    if not await client.collection_exists(collection):
        return None
    return await client.get_collection(collection)
