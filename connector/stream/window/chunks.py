"""Stages 3-4 of a chunked collection (``QCC_CHUNKED_COLLECTIONS``): its events address
documents; this reads the chunks of the window's documents (by the document id, one scroll), plans
their chunk operations (connector/domain/documents.py), embeds only the chunk texts no chunk held,
and after the apply checks that no other chunk of those documents remains.

Collections not declared chunked never come here: their windows make no extra read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from qdrant_client import models as qm

from connector.domain.changes import normalize_id, point_ids_of
from connector.domain.documents import (
    CHUNK_KEY,
    DOCUMENT_ID_KEY,
    DocKey,
    DocumentPlanner,
    DocumentStats,
    PlannedEvent,
    Refusal,
    VectorRef,
    document_filter,
    materialize,
    stored_documents,
)
from connector.domain.operations import Op, PointKey, Vector
from connector.domain.records import Mismatch, VerificationOutcome
from connector.domain.schema import CollectionSchema
from connector.domain.semantics import PointState, State, StoredVector
from connector.domain.sharding import Selector
from connector.embedding.embedder import Embedder
from connector.qdrant.reads import READ_CHUNK, scroll_pages
from connector.qdrant.retrying import RetryingClient
from connector.settings import ChunkedField, Settings
from connector.stream.window.items import Item, fail
from connector.stream.window.rows import Prefetched

__all__ = ["ChunkStage", "DocumentWindow"]

log = logging.getLogger(__name__)
SCROLL_PAGE = 512
LISTED_STALE = 20


@dataclass
class DocumentWindow:
    """A chunked collection's part of a window, planned: its chunk ops in window order, what each
    event did to each document, and what was read (the chunks there before)."""

    ops: list[Op] = field(default_factory=list)
    documents: dict[int, dict[DocKey, DocumentStats]] = field(default_factory=dict)  # by event position
    prefetched: Prefetched = field(default_factory=Prefetched)
    owners: dict[PointKey, DocKey] = field(default_factory=dict)  # chunk id -> its document (read or written)


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
        """The window's chunk ops; items that cannot apply fail (their dead letter says why)."""
        await self.ensure_index(schema.name)
        model = spec.model or self.settings.dense_model
        docs = list(dict.fromkeys(pid for item in live if item.event is not None
                                  for pid in point_ids_of(item.event)))
        writes_text = any(getattr(item.event, "op", None) in ("upsert", "reembed") for item in live)
        stored = await self.read_chunks(schema.name, docs, shard_key, vectors=[spec.vector] if writes_text else [])
        chunker = self.embedder.chunker(model, spec.max_tokens, spec.overlap_tokens)
        id_name = self.ids_from.get(collection, collection)
        planner = DocumentPlanner(id_name, spec.text_field, spec.vector, model, chunker.chunks,
                                  stored_documents(id_name, docs, stored))
        planned: list[PlannedEvent] = []
        for item in live:
            if item.event is None or item.error is not None:
                continue
            outcome = planner.plan(item.position, item.event)
            if isinstance(outcome, Refusal):
                fail(item, outcome.code, outcome.message)
            else:
                planned.append(outcome)
        vectors: dict[VectorRef, Vector] = {("stored", pid): _floats(stored[pid].vectors[spec.vector])
                                            for pid in planner.to_read if spec.vector in stored[pid].vectors}
        texts = list(planner.to_embed.items())
        embedded = await self.embedder.embed(model, "dense", [text for _, text in texts])
        size = schema.dense[spec.vector].size if spec.vector in schema.dense else None
        if embedded and size is not None and len(embedded[0]) != size:
            for item in live:
                if any(p.position == item.position for p in planned):
                    fail(item, "vector_size_mismatch", f"model {model!r} makes {len(embedded[0])}-dimensional "
                         f"vectors; {spec.vector or 'the unnamed vector'} has {size}")
            return DocumentWindow(prefetched=Prefetched(frozenset(stored), stored))
        vectors.update({("text", sha): vector for (sha, _), vector in zip(texts, embedded, strict=True)})
        window = DocumentWindow(prefetched=Prefetched(frozenset(stored), stored))
        window.owners = {pid: point.payload[CHUNK_KEY]["document_id"] for pid, point in stored.items()}
        for event in planned:
            ops = materialize(event, spec.vector, vectors)
            window.ops += ops
            window.documents[event.position] = event.documents
            for op in ops:
                for pid, data in (op.points or {}).items():
                    if data.payload is not None:
                        window.owners[pid] = data.payload[CHUNK_KEY]["document_id"]
        return window

    async def ensure_index(self, collection: str) -> None:
        """The keyword index on ``_chunk.document_id`` that finds a document's chunks: created when
        missing (once per worker and collection). Safe: an index changes no point, and a server in
        strict mode refuses filters on unindexed keys."""
        if collection in self._indexed or self.settings.qdrant_url is None:  # local mode has no payload index
            return
        client = self.qdrant.client
        info = await self.qdrant.call(f"get_collection({collection})", partial(client.get_collection, collection))
        if DOCUMENT_ID_KEY not in (info.payload_schema or {}):
            log.info("collection %s: creating the keyword index on %s (chunked documents)", collection,
                     DOCUMENT_ID_KEY)
            await self.qdrant.call(f"create_payload_index({collection}, {DOCUMENT_ID_KEY})", partial(
                client.create_payload_index, collection, DOCUMENT_ID_KEY, qm.PayloadSchemaType.KEYWORD, wait=True))
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
                                                                vectors=_named(record.vector))
        return state

    async def check(self, collection: str, window: DocumentWindow, applied: list[Op], rejected_ids: set[PointKey],
                    outcome: VerificationOutcome, shard_key: Selector | None) -> VerificationOutcome:
        """After the read-back: no chunk of the window's documents but those it should have left
        (a stale chunk remaining, or one missing, is a mismatch)."""
        applied_positions = {s for op in applied for s in op.sources}
        docs = list(dict.fromkeys(doc for position, stats in window.documents.items()
                                  if position in applied_positions for doc in stats))
        if not docs:
            return outcome
        keys = {str(d) for d in docs}
        expected = {pid for pid, doc in window.owners.items() if doc in keys and pid in window.prefetched.ids}
        for op in applied:
            if op.kind == "upsert":
                expected.update(pid for pid in op.point_ids() if window.owners.get(pid) in keys)
            elif op.kind == "delete":
                expected.difference_update(op.point_ids())
        found = set(await self.read_chunks(collection, docs, shard_key, payload=False))
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
            if outcome.status == "verified":
                update["status"] = "partial"
        return outcome.model_copy(update=update)


def _floats(vector: object) -> tuple[float, ...]:
    return tuple(float(x) for x in vector)  # type: ignore[attr-defined]  # a dense vector: a sequence of floats


def _named(vector: object) -> dict[str, StoredVector]:
    """A record's vectors by name (dense ones as read: lists of floats, copied into tuples later)."""
    if vector is None:
        return {}
    if isinstance(vector, dict):
        return dict(vector)
    return {"": vector}  # type: ignore[dict-item]  # the unnamed dense vector, a list of floats
