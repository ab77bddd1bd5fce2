"""Which batches wrote a chunked document's chunk sets, from the trail alone. Pure.

A verification event of a chunked collection lists, per document its batch changed, what it did
(``documents``: chunks written, reused, embedded, deleted, the count after the batch and the
``digest`` of the chunk set it left; docs/design.md, "Chunked documents"), at most 100 of them
(``chunks.documents`` counts them all). The history of one document is every batch of its
collection that lists it, in publish order; its chunk set now is the one the last of them left,
proven when that batch was verified and no batch may have changed the document unlisted: one that
lists fewer documents than it changed, or one that applied a filter-addressed event (a delete by
filter, a CDC truncate) whose filter matched any point. Those events are planned without
documents, so no batch lists what they did; the read-back records, per filter event, how many
points it matched (``verification.filters``, at most 100): none matched changed nothing. A batch
applied without verification records no filter event, so it may have applied one. Such an event
in the last listed batch itself may have come after the document's own events in its window. With
an offset, the question narrows to the batches whose ranges hold that offset: the last of them is
the offset's final word (a replay covers offsets again), and its entry for the document is the
chunk set that offset's batch left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

__all__ = ["LISTED_FILTERS", "DocumentBatch", "DocumentQuestion", "FilterEvent", "answer", "document_batch",
           "parse_document"]

LISTED_FILTERS = 100  # filter events one verification event lists at most (connector/stream/window/filters.py)


@dataclass(frozen=True)
class DocumentQuestion:
    collection: str
    document_id: int | str  # as events name it: an integer, or a UUID in lower-case hyphenated text
    offset: int | None = None
    partition: int | None = None

    @property
    def name(self) -> str:
        return f"{self.collection}/{self.document_id}"


def parse_document(value: str) -> DocumentQuestion:
    """``COLLECTION/ID`` (an unsigned integer or a UUID); ValueError saying what is expected."""
    collection, _, document = value.partition("/")
    if not collection or not document:
        raise ValueError("give COLLECTION/ID, e.g. articles/42")
    if document.isdecimal():
        return DocumentQuestion(collection, int(document))
    try:
        return DocumentQuestion(collection, str(UUID(document)))
    except ValueError:
        raise ValueError(f"the document id {document!r} is neither an unsigned integer nor a UUID") from None


def _same_id(listed: Any, document_id: int | str) -> bool:
    if isinstance(document_id, int):
        return isinstance(listed, int) and listed == document_id
    try:
        return isinstance(listed, str) and str(UUID(listed)) == document_id
    except ValueError:
        return False


@dataclass(frozen=True)
class FilterEvent:
    """A filter-addressed event a batch applied whose filter matched points (``verification.filters``)."""

    partition: int
    offset: int
    op: str
    matched: int  # points its filter matched as it was applied

    def to_json(self) -> dict[str, Any]:
        return {"partition": self.partition, "offset": self.offset, "op": self.op, "matched": self.matched}


@dataclass(frozen=True)
class DocumentBatch:
    """A batch of the document's collection, as far as the question needs it."""

    batch_id: str
    topic: str
    ranges: tuple[tuple[int, int, int], ...]  # (partition, first offset, last offset)
    applied_at: str
    status: str
    entry: dict[str, Any] | None  # what it did to the document (its ``documents`` row), None: not listed
    lists_all: bool  # it lists every document it changed (else the document may be among those left out)
    order: tuple[Any, ...] = ()
    filters: tuple[FilterEvent, ...] = ()  # its filter events that matched points: they may have changed any document
    filters_unknown: str | None = None  # why it may have applied filter events it does not list

    def unlisted_change(self, document_had_chunks: bool = True) -> str | None:
        """What may have changed documents this batch does not list (a clause: "lists fewer ..."), or None."""
        if not self.lists_all:
            return "lists fewer documents than it changed"
        return self.filter_change(document_had_chunks)

    def filter_change(self, document_had_chunks: bool = True) -> str | None:
        """The filter events by which this batch may have changed any document (a clause), or None.
        A filter reaches only points that exist: none of a document without chunks."""
        if not document_had_chunks:
            return None
        if self.filters:
            first = self.filters[0]
            more = f" (and {len(self.filters) - 1} more filter events)" if len(self.filters) > 1 else ""
            return (f"applied a {first.op} by filter at offset {first.partition}:{first.offset} that matched "
                    f"{first.matched} points{more}")
        return self.filters_unknown

    def covers(self, offset: int, partition: int | None) -> bool:
        return any(first <= offset <= last and partition in (None, p) for p, first, last in self.ranges)

    def to_json(self) -> dict[str, Any]:
        row = {"batch_id": self.batch_id, "topic": self.topic, "ranges": [list(r) for r in self.ranges],
               "applied_at": self.applied_at, "status": self.status, "listed": self.entry is not None}
        if self.entry is not None:
            row |= {key: self.entry.get(key) for key in ("written", "reused", "embedded", "deleted", "count",
                                                         "digest")}
        elif not self.lists_all:
            row["lists_all"] = False
        if self.filters:
            row["filters"] = [f.to_json() for f in self.filters]
        if self.filters_unknown is not None:
            row["filters_unknown"] = self.filters_unknown
        return row


def document_batch(record: dict[str, Any], order: tuple[Any, ...], question: DocumentQuestion) -> DocumentBatch | None:
    """A verification event as the question reads it; None when it is of no interest to it: another
    collection's, or one that neither lists the document nor may hold it unlisted nor covers the offset."""
    if record.get("kind") != "verification" or record.get("collection") != question.collection:
        return None
    listed = record.get("documents") or []
    entry = next((row for row in listed if _same_id(row.get("document_id"), question.document_id)), None)
    changed = int((record.get("chunks") or {}).get("documents", 0))
    batch = DocumentBatch(
        batch_id=str(record["batch_id"]), topic=str(record["topic"]),
        ranges=tuple((int(r["partition"]), int(r["first_offset"]), int(r["last_offset"])) for r in record["ranges"]),
        applied_at=str(record.get("applied_at", "")), status=str(record["verification"]["status"]),
        entry=dict(entry) if entry is not None else None, lists_all=len(listed) >= changed, order=order,
        filters=_filter_events(record), filters_unknown=_filters_unknown(record))
    covering = question.offset is not None and batch.covers(question.offset, question.partition)
    return batch if entry is not None or batch.unlisted_change() or covering else None


def _filter_events(record: dict[str, Any]) -> tuple[FilterEvent, ...]:
    """The batch's filter events that matched points (one that matched none changed nothing)."""
    return tuple(FilterEvent(int(f["partition"]), int(f["offset"]), str(f["op"]), int(f["matched"]))
                 for f in record["verification"].get("filters") or [] if int(f["matched"]))


def _filters_unknown(record: dict[str, Any]) -> str | None:
    outcome = record["verification"]
    if outcome["status"] == "skipped" and int(record.get("applied_event_count", 0)):
        return "was applied without verification (it records no filter event)"
    if len(outcome.get("filters") or []) >= LISTED_FILTERS:
        return f"lists {LISTED_FILTERS} filter events, as many as an event lists (more may be left out)"
    return None


def answer(question: DocumentQuestion, batches: Sequence[DocumentBatch], unreadable: int = 0) -> dict[str, Any]:
    """What the trail says of the document (the report ``audit --document`` prints): the batches
    that wrote it, the chunk set the last one (or the offset's final word) left, whether that is
    proven, and the verdict in one line. ``unreadable``: trail records the audit could not read;
    any of them may have changed the document, so nothing is proven while there are some."""
    report = _answer(question, batches)
    report["unreadable_trail_records"] = unreadable
    if unreadable and report["proven"]:
        report["proven"] = False
        report["verdict"] += (f"; but {unreadable} record{'s' if unreadable > 1 else ''} of the trail could not be "
                              "read, and may have changed it: not proven")
    return report


def _answer(question: DocumentQuestion, batches: Sequence[DocumentBatch]) -> dict[str, Any]:
    ordered = sorted(batches, key=lambda b: b.order)
    report: dict[str, Any] = {"collection": question.collection, "document_id": question.document_id}
    if question.offset is None:
        writes = [b for b in ordered if b.entry is not None]
        report["batches"] = [b.to_json() for b in ordered]
        final = writes[-1] if writes else None
        had_chunks = final is None or final.entry is None or final.entry.get("count") != 0
        unlisted_after = [b for b in ordered if b.entry is None and b.unlisted_change(had_chunks)
                          and (final is None or b.order > final.order)]
        report["final"] = final.to_json() if final is not None else None
        report["proven"], report["verdict"] = _verdict(question, final, unlisted_after, None)
        return report
    covering = [b for b in ordered if b.covers(question.offset, question.partition)]
    report |= {"offset": question.offset, "partition": question.partition,
               "batches": [b.to_json() for b in covering]}
    word = covering[-1] if covering else None
    report["final"] = word.to_json() if word is not None and word.entry is not None else None
    report["proven"], report["verdict"] = _verdict(question, word, [], covering)
    return report


def _verdict(question: DocumentQuestion, final: DocumentBatch | None, unlisted_after: list[DocumentBatch],
             covering: list[DocumentBatch] | None) -> tuple[bool, str]:
    at = f" at offset {question.offset}" if question.offset is not None else ""
    if final is None:
        if covering is not None:
            return False, f"no verification event of {question.collection} covers offset {question.offset}"
        if unlisted_after:
            first = unlisted_after[0]
            return False, (f"no batch lists document {question.name}, and {len(unlisted_after)} batches of it may have "
                           f"changed it unlisted (first: {first.batch_id}, which {first.unlisted_change()}): "
                           "not proven")
        return False, f"no batch of the trail changed document {question.name}"
    if final.entry is None:
        change = final.unlisted_change()
        if change is None:
            return True, f"the batch{at} ({final.batch_id}) did not change document {question.name}"
        return False, (f"the batch{at} ({final.batch_id}) {change}: it may have changed document "
                       f"{question.name}; not proven")
    left = (f"document {question.name}: {final.entry.get('count')} chunks, digest {final.entry.get('digest')}, "
            f"left by batch {final.batch_id}{at}")
    if final.status != "verified":
        return False, f"{left}, whose read-back says {final.status!r}: not proven"
    own = final.filter_change(document_had_chunks=final.entry.get("count") != 0)
    if own is not None:  # its window's order of that event and the document's is not recorded
        return False, (f"{left}; that batch also {own}, maybe after the document's events, and may have changed "
                       "it: not proven")
    if unlisted_after:
        later = unlisted_after[0]
        return False, (f"{left}; a later batch ({later.batch_id}) {later.unlisted_change()} and may have changed "
                       "it: not proven")
    return True, f"{left}, verified"
