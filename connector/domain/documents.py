"""Documents of a chunked collection -> operations on their chunk points. Pure: no IO.

Events address documents (an upsert of document 42, a payload patch of it, its delete); in a
chunked collection (``QCC_CHUNKED_COLLECTIONS``) each document is the set of its chunk points,
ids ``uuid5(CHUNK_NAMESPACE, "{collection}/{document_id}/{index}")``, each with the document's
payload and, under the reserved key ``_chunk``, where it came from (document id, index, count,
its text and span, sha256 of both). :class:`DocumentPlanner` walks a window's events in order
over what the window read of its documents' chunks (found by the document id, never by a
stored count) and turns each event into id-addressed operations on chunk ids:

- a text write (upsert, inline re-embed): the new chunking against the chunks there. A chunk
  whose text (sha256) the document held keeps its vector, copied from where it was (no model
  call); new texts are embedded; then chunks past the new count are deleted. New chunks are
  written before stale ones go, in that order, so the document never has no chunk;
- a payload patch: the same op on each of its chunks (overwrite and clear keep ``_chunk``); a
  row change whose text was not sent, to a document that does not exist, writes nothing there
  (no text, no chunks) and names the document as lacking (:attr:`PlannedEvent.lacking`);
- a delete: every chunk it has (and any index it had in this window);
- a re-embed of stored texts (``ids`` + the text field): every chunk's text embedded again.

The vectors of written chunks are references (:data:`VectorRef`) resolved by the caller once
it embedded the texts and read the stored vectors (:func:`materialize`). A chunk holds the dense
vector and, where the collection has one (``ChunkedField.sparse_vector``), a sparse one of the same
text: a reference stands for all of them, so a chunk is copied only from one that holds them all.

An event planned on the effect of another that then fails (its record's other event refused, its
texts not embeddable) is planned again without it (:func:`plan_events`, from the same read);
one that Qdrant refuses takes the later events of its documents with it (:func:`dependents`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from connector.domain.cdc_mapping import CdcMapping
from connector.domain.changes import (
    ChangeEvent,
    ClearPayloadEvent,
    DeleteEvent,
    DeletePayloadEvent,
    OverwritePayloadEvent,
    ReembedEvent,
    RejectionCode,
    SetPayloadEvent,
    UpsertEvent,
    UpsertPoint,
    filter_of,
    normalize_id,
)
from connector.domain.chunking import Chunk, chunk_set_digest, sha256_text
from connector.domain.operations import Op, PointData, PointKey, Vector, op_from_patch
from connector.domain.semantics import PointState, State, apply_op, copy_json
from connector.errors import ConfigurationError
from connector.settings import CHUNK_KEY, ChunkedField, Settings

__all__ = [
    "CHUNK_KEY",
    "CHUNK_NAMESPACE",
    "DOCUMENT_ID_KEY",
    "DocKey",
    "DocumentPlanner",
    "DocumentState",
    "DocumentStats",
    "PendingUpsert",
    "PlannedEvent",
    "Refusal",
    "VectorRef",
    "chunk_id",
    "chunked_fields",
    "dependents",
    "document_filter",
    "document_key",
    "materialize",
    "plan_events",
    "stored_documents",
    "written_text",
]

# Fixed forever: changing it would move every chunk point of every chunked collection.
CHUNK_NAMESPACE = uuid.UUID("6f0c3b9e-2d4a-5c61-9a7e-0b8f1d2c3e4a")
DOCUMENT_ID_KEY = f"{CHUNK_KEY}.document_id"  # the keyword payload index that finds a document's chunks

DocKey = int | str  # a document id as events name it, normalized (connector.domain.changes.normalize_id)
# Where a written chunk's vectors come from: a text embedded in this window (by its sha256), or
# the vectors a stored chunk held before the window (read before the window is applied).
VectorRef = tuple[Literal["text"], str] | tuple[Literal["stored"], PointKey]


def document_key(document_id: DocKey) -> str:
    """The document id as ``_chunk.document_id`` holds it: text, so one keyword index finds any
    document (42 -> "42"; a UUID in its lower-case hyphenated form)."""
    return str(normalize_id(document_id))


def chunk_id(collection: str, document_id: DocKey, index: int) -> str:
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{collection}/{document_key(document_id)}/{index}"))


def document_filter(document_ids: Sequence[DocKey]) -> dict[str, Any]:
    """The Qdrant filter of every chunk of these documents."""
    return {"must": [{"key": DOCUMENT_ID_KEY, "match": {"any": [document_key(d) for d in document_ids]}}]}


def chunked_fields(settings: Settings, mapping: CdcMapping | None = None) -> dict[str, ChunkedField]:
    """The chunked collections: QCC_CHUNKED_COLLECTIONS, and those of a CDC mapping's text columns
    marked ``chunked``. Where both name a collection, the setting's chunk sizes win; a text field,
    vector or model they disagree on (or two tables of the mapping do) is a ConfigurationError:
    the rows would carry a text the chunk stage does not look for."""
    fields: dict[str, ChunkedField] = {}
    for name, table in (mapping.tables.items() if mapping is not None else ()):
        for text in table.texts.values():
            if text.chunked and table.text_key is not None:  # the text under its payload key, as the rows carry it
                field_ = ChunkedField(text_field=table.text_key, vector=text.vector, model=text.model)
                if table.collection in fields and _what(fields[table.collection]) != _what(field_):
                    raise ConfigurationError(f"QCC_CDC_MAPPING: table {name!r} chunks collection "
                                             f"{table.collection!r} otherwise than another table does "
                                             f"({_said(field_)} against {_said(fields[table.collection])})")
                fields[table.collection] = field_
    for collection, field_ in settings.chunked_collections.items():
        if collection in fields and _what(fields[collection]) != _what(field_):
            raise ConfigurationError(f"QCC_CHUNKED_COLLECTIONS names collection {collection!r} with "
                                     f"{_said(field_)}, its CDC mapping (QCC_CDC_MAPPING) with "
                                     f"{_said(fields[collection])}: make them agree, or leave it to one")
    return {**fields, **settings.chunked_collections}


def _what(field_: ChunkedField) -> tuple[str, str, str | None]:
    return field_.text_field, field_.vector, field_.model


def _said(field_: ChunkedField) -> str:
    return f"text_field {field_.text_field!r}, vector {field_.vector!r}, model {field_.model!r}"


@dataclass
class Slot:
    """A chunk point of a document as the window has left it so far."""

    point_id: PointKey
    meta: dict[str, Any]  # its _chunk
    vector: VectorRef
    vectors_read: frozenset[str] = frozenset()  # the vectors read with it: only those can be copied


@dataclass
class DocumentState:
    """A document's chunk points: ``slots`` by index (at their own ids), ``strays`` (points that
    name the document under an id not their index's: removed by its next write or delete),
    ``payload`` (the document's payload, as its first chunk holds it without ``_chunk``)."""

    slots: dict[int, Slot] = field(default_factory=dict)
    strays: list[PointKey] = field(default_factory=list)
    payload: dict[str, Any] | None = None
    indexes_seen: set[int] = field(default_factory=set)  # every index it had in this window or before

    @property
    def exists(self) -> bool:
        return bool(self.slots)


def written_text(point: UpsertPoint, text_field: str) -> str | None:
    """The text an upsert gives a document: the point's ``text``, else its payload's text field
    (None: none, or not a non-empty string)."""
    text = point.text if point.text is not None else (point.payload or {}).get(text_field)
    return text if isinstance(text, str) and text else None


def stored_documents(collection: str, document_ids: Sequence[DocKey], points: State) -> dict[DocKey, DocumentState]:
    """The documents' chunks as read (by the document-id filter, payload included)."""
    wanted = {document_key(d): normalize_id(d) for d in document_ids}
    documents: dict[DocKey, DocumentState] = {normalize_id(d): DocumentState() for d in document_ids}
    for pid, point in sorted(points.items(), key=lambda kv: str(kv[0])):
        meta = point.payload.get(CHUNK_KEY)
        doc = wanted.get(str(meta.get("document_id"))) if isinstance(meta, dict) else None
        if doc is None or not isinstance(meta, dict):
            continue
        state = documents[doc]
        index = meta.get("index")
        if isinstance(index, int) and pid == chunk_id(collection, doc, index) and isinstance(meta.get("sha256"), str):
            state.slots[index] = Slot(pid, copy_json(meta), ("stored", pid), frozenset(point.vectors))
            state.indexes_seen.add(index)
            if index == 0 or state.payload is None:
                state.payload = {k: copy_json(v) for k, v in point.payload.items() if k != CHUNK_KEY}
        else:
            state.strays.append(pid)
    return documents


@dataclass(frozen=True)
class Refusal:
    """Why an event cannot apply to a chunked collection: its dead letter."""

    code: RejectionCode
    message: str


@dataclass
class PendingUpsert:
    """A chunk point to write once its vector is known."""

    point_id: PointKey
    payload: dict[str, Any]
    vector: VectorRef
    vectors_only: bool = False  # a re-embed of stored texts: update_vectors, the payload left alone


@dataclass
class DocumentStats:
    """What one event did to one document's chunks."""

    written: int = 0  # chunk points written (with their vector)
    reused: int = 0  # of those, with a vector the document held before (no model call)
    embedded: int = 0  # of those, embedded now
    deleted: int = 0  # stale chunk points deleted
    count: int = 0  # chunks after the event
    digest: str = ""  # chunk_set_digest after the event


@dataclass
class PlannedEvent:
    position: int
    steps: list[Op | PendingUpsert] = field(default_factory=list)
    documents: dict[DocKey, DocumentStats] = field(default_factory=dict)
    # documents a row change could not write: missing, and its text not sent (a document is its chunks)
    lacking: list[DocKey] = field(default_factory=list)


Chunking = Callable[[str], list[Chunk]]


class DocumentPlanner:
    """Plans one collection's part of a window, event by event (see the module docstring)."""

    def __init__(self, collection: str, text_field: str, vector: str, model: str, chunking: Chunking,
                 stored: dict[DocKey, DocumentState], *, reuse_stored: bool = True,
                 vector_names: Sequence[str] | None = None) -> None:
        """``collection``: the name chunk ids derive from (the one events use); ``reuse_stored=False``
        embeds every chunk text anew (a bulk re-chunk for another model: stored vectors are the old one's);
        ``vector_names``: every vector a chunk holds (default: ``vector`` alone)."""
        self.collection, self.text_field, self.vector, self.model = collection, text_field, vector, model
        self.chunking = chunking
        self.documents = stored
        held = frozenset(vector_names or (vector,))
        # sha256 -> the vectors of that text: held by a chunk of the window's documents (all of them
        # read: a chunk stored before its collection had a sparse vector is embedded again), or embedded in it
        self.known: dict[str, VectorRef] = {} if not reuse_stored else {
            slot.meta["sha256"]: slot.vector for state in stored.values()
            for slot in state.slots.values() if held <= slot.vectors_read}
        self.to_embed: dict[str, str] = {}  # sha256 -> text, every text the window embeds
        self.to_read: set[PointKey] = set()  # stored chunks whose vectors are copied

    def plan(self, position: int, event: ChangeEvent, keep: Sequence[str] = ()) -> PlannedEvent | Refusal:
        """The steps of one event (its state applied to the documents), or why it cannot apply
        (nothing changed). ``keep``: payload keys a text write leaves as the document holds them
        (the columns a CDC source did not send)."""
        refusal = self._refusal(event)
        if refusal is not None:
            return refusal
        if filter_of(event) is not None:  # a filter over chunk payloads: it reaches chunks as they are
            return PlannedEvent(position, [op_from_patch(event, position)])
        planned = PlannedEvent(position)
        result = self._steps(planned, event, keep)  # refuses before it changes anything: all or nothing
        return result if isinstance(result, Refusal) else planned

    def rewrite(self, position: int, document_id: DocKey, text: str, payload: dict[str, Any]) -> PlannedEvent:
        """A document's text and payload written as new (a bulk re-chunk): the steps an upsert of it
        would take, without an event."""
        planned = PlannedEvent(position)
        self._write(planned, normalize_id(document_id), text, dict(payload))
        return planned

    def _refusal(self, event: ChangeEvent) -> Refusal | None:
        chunked = "a chunked collection's"

        def refuse(message: str) -> Refusal:
            return Refusal("chunked_document", f"{message} ({chunked} documents: docs/design.md, Chunked documents)")

        if isinstance(event, UpsertEvent | ReembedEvent):
            if (event.vector_name or "") != self.vector:
                return refuse(f"vector {event.vector_name!r}: the chunks' texts are embedded into {self.vector!r}")
            if event.model is not None and event.model != self.model:
                return refuse(f"model {event.model!r}: the chunks are embedded by {self.model!r}")
        if isinstance(event, UpsertEvent):
            if any(point.vector is not None for point in event.points):
                return refuse("an upsert with a vector: chunk vectors come from the document's text")
            if any(CHUNK_KEY in (point.payload or {}) for point in event.points):
                return refuse(f"payload key {CHUNK_KEY!r} is the chunks' own")
        elif isinstance(event, ReembedEvent):
            if event.filter is not None:
                return refuse("a re-embed by filter; name the documents by ids")
            if event.points is not None:  # a new text is new chunks, their payload included: not a re-embed
                return refuse("an inline re-embed: write a document's text by an upsert on the patch topic (a "
                              "re-embed by ids with the text field embeds its chunks' texts again)")
            if event.ids is not None and event.text_field != self.text_field:
                return refuse(f"text_field {event.text_field!r}: the documents' text is {self.text_field!r}")
        elif isinstance(event, SetPayloadEvent):
            if (event.key or "").split(".")[0] == CHUNK_KEY or (not event.key and CHUNK_KEY in event.payload):
                return refuse(f"payload key {CHUNK_KEY!r} is the chunks' own")
            if not event.key and self.text_field in event.payload:
                return refuse(f"a set_payload of the text field {self.text_field!r}: write the text by an upsert")
        elif isinstance(event, OverwritePayloadEvent | ClearPayloadEvent):
            if event.filter is not None:
                return refuse(f"a {event.op} by filter would remove the chunks' {CHUNK_KEY!r}; name the documents")
            if isinstance(event, OverwritePayloadEvent) and (
                    CHUNK_KEY in event.payload or self.text_field in event.payload):
                return refuse(f"an overwrite_payload with {CHUNK_KEY!r} or the text field {self.text_field!r}")
        elif isinstance(event, DeletePayloadEvent):
            if any(key.split(".")[0] == CHUNK_KEY for key in event.keys):
                return refuse(f"payload key {CHUNK_KEY!r} is the chunks' own")
        elif not isinstance(event, DeleteEvent):  # update_vectors, delete_vectors
            return refuse(f"{event.op}: chunk vectors come from the document's text")
        return None

    def _steps(self, planned: PlannedEvent, event: ChangeEvent, keep: Sequence[str]) -> Refusal | None:
        position = planned.position
        if isinstance(event, UpsertEvent):
            writes: list[tuple[DocKey, str, dict[str, Any]]] = []
            for point in event.points:  # the same id twice: the last one wins, as in Qdrant
                doc = normalize_id(point.id)
                held = self._document(doc).payload or {}
                payload = {**{key: copy_json(held[key]) for key in keep if key in held}, **(point.payload or {})}
                text = written_text(point, self.text_field)
                payload.pop(self.text_field, None)
                if text is None:
                    return Refusal("text_missing", f"document {doc} has no text: give it as the "
                                   f"point's text or its payload's {self.text_field!r}")
                writes.append((doc, text, payload))
            for doc, text, payload in writes:
                self._write(planned, doc, text, payload)
            return None
        if isinstance(event, ReembedEvent):  # by ids (inline texts are refused): the stored texts again
            docs = [normalize_id(i) for i in event.ids or []]
            absent = [d for d in docs if not self._document(d).exists]
            if absent:
                return Refusal("point_not_found", f"documents not found: {', '.join(map(str, absent[:20]))}")
            for doc in dict.fromkeys(docs):
                self._embed_again(planned, doc)
            return None
        docs = list(dict.fromkeys(normalize_id(i) for i in getattr(event, "ids", None) or []))
        if isinstance(event, DeleteEvent):
            self._delete(planned, docs)
            return None
        absent = [d for d in docs if not self._document(d).exists]
        if absent and self.text_field in keep:  # a row change without its text: nothing to write a document from
            planned.lacking = absent
            docs = [d for d in docs if d not in absent]
        elif absent:
            return Refusal("point_not_found", f"documents not found: {', '.join(map(str, absent[:20]))}")
        template = op_from_patch(event, position)
        for doc in docs:
            state = self._document(doc)
            if state.payload is not None:
                document = PointState(payload=state.payload)
                apply_op({0: document}, _on(template, [0]))
                state.payload = document.payload
            planned.documents[doc] = self._stats(state)
        if isinstance(event, SetPayloadEvent | DeletePayloadEvent):
            ids = [slot.point_id for doc in docs for slot in self._document(doc).slots.values()]
            if ids:
                planned.steps.append(_on(template, ids))
            return None
        for doc in docs:  # overwrite, clear: each chunk keeps its own _chunk
            state = self._document(doc)
            for slot in state.slots.values():
                payload = {**copy_json(state.payload or {}), CHUNK_KEY: copy_json(slot.meta)}
                planned.steps.append(Op("overwrite_payload", ids=[slot.point_id], payload=payload,
                                        sources=[position]))
        return None

    def _document(self, doc: DocKey) -> DocumentState:
        return self.documents.setdefault(doc, DocumentState())

    def _write(self, planned: PlannedEvent, doc: DocKey, text: str, payload: dict[str, Any]) -> None:
        """A document's new text: chunk, reuse, embed; stale chunks deleted after the writes."""
        state = self._document(doc)
        chunks = self.chunking(text)
        known = self.known
        stats = DocumentStats()
        document_sha = sha256_text(text)
        slots: dict[int, Slot] = {}
        for chunk in chunks:
            meta = {"document_id": document_key(doc), "index": chunk.index, "count": len(chunks),
                    "sha256": chunk.sha256, "document_sha256": document_sha, "start": chunk.start, "end": chunk.end,
                    "text": chunk.text}
            held = known.get(chunk.sha256)
            vector: VectorRef = held if held is not None else ("text", chunk.sha256)
            if held is None:
                self.to_embed[chunk.sha256] = chunk.text
                known[chunk.sha256] = vector
                stats.embedded += 1
            else:
                stats.reused += 1
                if vector[0] == "stored":
                    self.to_read.add(vector[1])
            point_id = chunk_id(self.collection, doc, chunk.index)
            slots[chunk.index] = Slot(point_id, meta, vector)
            planned.steps.append(PendingUpsert(point_id, {**copy_json(payload), CHUNK_KEY: meta}, vector))
            stats.written += 1
        stale = [i for i in sorted(state.indexes_seen) if i >= len(chunks)]
        stats.deleted = sum(1 for i in stale if i in state.slots) + len(state.strays)
        stale_ids: list[PointKey] = [chunk_id(self.collection, doc, i) for i in stale]
        self._delete_later(planned, stale_ids + state.strays,
                           [slot.point_id for slot in slots.values()])
        state.slots, state.strays, state.payload = slots, [], payload
        state.indexes_seen.update(slots)
        stats.count, stats.digest = len(slots), _digest(state)
        planned.documents[doc] = _sum(planned.documents.get(doc), stats)

    def _embed_again(self, planned: PlannedEvent, doc: DocKey) -> None:
        """Every chunk's stored text embedded again (a re-embed: the model, not the text, changed)."""
        state = self._document(doc)
        stats = DocumentStats()
        for slot in state.slots.values():
            sha, text = slot.meta["sha256"], slot.meta.get("text")
            if not isinstance(text, str):
                continue
            self.to_embed[sha] = text
            slot.vector = self.known[sha] = ("text", sha)
            planned.steps.append(PendingUpsert(slot.point_id, {}, slot.vector, vectors_only=True))
            stats.written += 1
            stats.embedded += 1
        stats.count, stats.digest = len(state.slots), _digest(state)
        planned.documents[doc] = _sum(planned.documents.get(doc), stats)

    def _delete(self, planned: PlannedEvent, docs: list[DocKey]) -> None:
        ids: list[PointKey] = []
        for doc in docs:
            state = self._document(doc)
            # index 0 always: a delete of a document with no chunk is still one op (it applies, as in Qdrant)
            indexes = sorted(state.indexes_seen | {0})
            ids += [chunk_id(self.collection, doc, i) for i in indexes] + state.strays
            planned.documents[doc] = DocumentStats(deleted=len(state.slots) + len(state.strays), count=0,
                                                   digest=chunk_set_digest([]))
            state.slots, state.strays, state.payload = {}, [], None
        planned.steps.append(Op("delete", ids=list(dict.fromkeys(ids)), sources=[planned.position]))

    @staticmethod
    def _delete_later(planned: PlannedEvent, stale: list[PointKey], written: list[PointKey]) -> None:
        """Stale chunks go after the event's writes (:func:`materialize`): one delete of the event,
        without the ids it writes (the same document written twice in one event)."""
        pending = next((step for step in planned.steps if isinstance(step, Op) and step.kind == "delete"), None)
        if pending is None:
            pending = Op("delete", ids=[], sources=[planned.position])
            planned.steps.insert(0, pending)
        keep = set(written)
        pending.ids = [pid for pid in dict.fromkeys([*(pending.ids or []), *stale]) if pid not in keep]

    @staticmethod
    def _stats(state: DocumentState) -> DocumentStats:
        return DocumentStats(count=len(state.slots), digest=_digest(state))


def plan_events(planner: DocumentPlanner, events: Sequence[tuple[int, ChangeEvent, Sequence[str]]],
                ) -> tuple[list[PlannedEvent], dict[int, Refusal]]:
    """Plan (position, event, keys to keep) in order on a fresh planner: the planned events and the
    refusals by position. To leave out events that failed after an earlier pass, plan again
    without them on a new planner over the same read: the events after them then see the
    documents as they are without them (a patch reaches the chunks there, not those a failed
    write would have left)."""
    planned: list[PlannedEvent] = []
    refused: dict[int, Refusal] = {}
    for position, event, keep in events:
        outcome = planner.plan(position, event, keep)
        if isinstance(outcome, Refusal):
            refused[position] = outcome
        else:
            planned.append(outcome)
    return planned, refused


def dependents(documents: Mapping[int, Mapping[DocKey, object]], failed: int) -> list[int]:
    """The events after ``failed`` that were planned on what it would have left: each later event
    naming one of its documents, or one of such an event's (by position, in order).
    ``documents``: the documents each planned event names, by position (filter events name none)."""
    reached = set(documents.get(failed, {}))
    found: list[int] = []
    for position in sorted(p for p in documents if p > failed):
        named = set(documents[position])
        if named & reached:
            found.append(position)
            reached |= named
    return found


def _digest(state: DocumentState) -> str:
    return chunk_set_digest([state.slots[i].meta["sha256"] for i in sorted(state.slots)])


def _sum(before: DocumentStats | None, now: DocumentStats) -> DocumentStats:
    if before is None:
        return now
    return DocumentStats(before.written + now.written, before.reused + now.reused, before.embedded + now.embedded,
                         before.deleted + now.deleted, now.count, now.digest)


def _on(template: Op, ids: list[PointKey]) -> Op:
    return Op(template.kind, ids=list(ids), payload=copy_json(template.payload), key=template.key,
              keys=template.keys, sources=list(template.sources))


def materialize(planned: PlannedEvent, vectors: Mapping[VectorRef, Mapping[str, Vector]]) -> list[Op]:
    """The event's ops with their vectors (each reference's, by vector name): its chunk writes (one
    upsert, or one update_vectors), then its stale chunks' delete, then its payload ops, in order."""
    writes: dict[PointKey, PointData] = {}
    rewrites: dict[PointKey, PointData] = {}
    deletes = [step for step in planned.steps if isinstance(step, Op) and step.kind == "delete"
               and step.filter is None]
    deleting = {id(step) for step in deletes}
    ops: list[Op] = []
    source = [planned.position]
    for step in planned.steps:
        if isinstance(step, PendingUpsert):
            target = rewrites if step.vectors_only else writes
            target.pop(step.point_id, None)
            target[step.point_id] = PointData(dict(vectors[step.vector]), None if step.vectors_only else step.payload)
        elif id(step) not in deleting:
            ops.append(step)
    first: list[Op] = []
    if writes:
        first.append(Op("upsert", points=writes, sources=list(source)))
    if rewrites:
        first.append(Op("update_vectors", points=rewrites, sources=list(source)))
    return first + [d for d in deletes if d.ids] + ops
