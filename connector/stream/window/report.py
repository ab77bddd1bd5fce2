"""The last stage: a collection's part of a window -> its verification event and dead letters.

Pure: batch ids are deterministic from the source (a replay of the same window gets the same
id), offset ranges are exact runs, and every list an event carries is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from connector.domain.changes import ReembedEvent, UpsertEvent, normalize_id
from connector.domain.documents import DocKey, DocumentStats
from connector.domain.operations import Op, PointKey
from connector.domain.records import (
    ChunkTotals,
    DeadLetterRecord,
    DeadLetterRef,
    DocumentChunks,
    Latency,
    OffsetRange,
    PointsTouched,
    SourceRecord,
    TextCut,
    VerificationEvent,
    VerificationOutcome,
)
from connector.stream.window.items import Item, Record, ids_of

__all__ = ["Timings", "batch_id_for", "dead_letter_for", "offset_ranges", "points_touched", "report_batch",
           "texts_cut"]

LISTED_IDS = 100
LISTED_DEAD_LETTERS = 100
LISTED_MESSAGE_CHARS = 500
WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Timings:
    """Seconds spent per stage of one collection's batch."""

    embed: float = 0.0
    apply: float = 0.0
    verify: float = 0.0


def batch_id_for(topic: str, ranges: Sequence[OffsetRange], collection: str | None) -> str:
    """Deterministic from the source: a replay of the same window gets the same id."""
    spans = ",".join(f"{r.partition}:{r.first_offset}-{r.last_offset}" for r in ranges)
    return hashlib.sha256(f"{topic}|{spans}|{collection or ''}".encode()).hexdigest()[:32]


def offset_ranges(records: Sequence[Record]) -> list[OffsetRange]:
    """Exact runs of consecutive offsets per partition: a range holds only these records."""
    by_partition: dict[int, list[int]] = defaultdict(list)
    for record in records:
        by_partition[record.partition].append(record.offset)
    ranges: list[OffsetRange] = []
    for partition, offsets in sorted(by_partition.items()):
        offsets.sort()
        first = previous = offsets[0]
        for offset in offsets[1:]:
            if offset != previous + 1:
                ranges.append(OffsetRange(partition=partition, first_offset=first, last_offset=previous))
                first = offset
            previous = offset
        ranges.append(OffsetRange(partition=partition, first_offset=first, last_offset=previous))
    return ranges


def points_touched(ids: Sequence[PointKey]) -> PointsTouched:
    ordered = sorted(ids, key=lambda i: (isinstance(i, str), str(i) if isinstance(i, str) else i))
    digest = hashlib.sha256(",".join(str(i) for i in ordered).encode()).hexdigest()
    return PointsTouched(count=len(ordered), ids=ordered if len(ordered) <= LISTED_IDS else None, digest=digest)


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(key).decode()


def dead_letter_for(item: Item, batch_id: str | None) -> DeadLetterRecord:
    if item.error is None:
        raise ValueError("only a failed item is dead-lettered")
    event = item.event
    rec = item.record
    return DeadLetterRecord(
        error=item.error,
        source=SourceRecord(topic=rec.topic, partition=rec.partition, offset=rec.offset,
                            timestamp_ms=rec.timestamp_ms, key=_key_text(rec.key)),
        event_id=getattr(event, "event_id", None),
        collection=getattr(event, "collection", None),
        batch_id=batch_id,
        original_value_base64=base64.b64encode(rec.value or b"").decode(),
        failed_at=datetime.now(timezone.utc),
    )


def texts_cut(items: Sequence[Item], applied_positions: set[int]) -> list[TextCut]:
    """The texts of applied events that were embedded from their first characters only: CDC texts
    over QCC_CDC_MAX_TEXT_CHARS, and any text over the dense model's window (the fewer characters
    read counts where both cut)."""
    cuts: dict[tuple[PointKey, str], TextCut] = {}
    for item in items:
        if item.position not in applied_positions:
            continue
        event, row = item.event, item.row
        if row is not None and row.cut and isinstance(event, UpsertEvent | ReembedEvent) and event.points:
            point, vector = event.points[0], event.vector_name or ""  # a row change's events name one point
            if point.text is not None and vector in row.cut:
                cuts[(normalize_id(point.id), vector)] = TextCut(id=normalize_id(point.id), vector=vector,
                                                                 chars=row.cut[vector], embedded_chars=len(point.text))
        for (pid, vector), (chars, read) in item.cut_by_model.items():
            known = cuts.get((pid, vector))
            cuts[(pid, vector)] = TextCut(id=pid, vector=vector, chars=known.chars if known else chars,
                                          embedded_chars=min(read, known.embedded_chars) if known else read)
    return list(cuts.values())


def document_report(documents: Mapping[int, Mapping[DocKey, DocumentStats]] | None, applied_positions: set[int],
                    ) -> tuple[list[DocumentChunks], ChunkTotals | None]:
    """Per document, what the applied events did (summed; count and digest after the last), the
    first LISTED_IDS listed, and the totals."""
    if documents is None:
        return [], None
    summed: dict[DocKey, DocumentChunks] = {}
    for position in sorted(documents):
        if position not in applied_positions:
            continue
        for doc, stats in documents[position].items():
            before = summed.get(doc)
            summed[doc] = DocumentChunks(
                document_id=doc, written=stats.written + (before.written if before else 0),
                reused=stats.reused + (before.reused if before else 0),
                embedded=stats.embedded + (before.embedded if before else 0),
                deleted=stats.deleted + (before.deleted if before else 0), count=stats.count, digest=stats.digest)
    rows = list(summed.values())
    totals = ChunkTotals(documents=len(rows), written=sum(r.written for r in rows), reused=sum(r.reused for r in rows),
                         embedded=sum(r.embedded for r in rows), deleted=sum(r.deleted for r in rows))
    return rows[:LISTED_IDS], totals


def report_batch(
    collection: str | None,
    items: list[Item],
    applied: list[Op],
    requests: int,
    outcome: VerificationOutcome,
    timings: Timings,
    started: float,
    documents: Mapping[int, Mapping[DocKey, DocumentStats]] | None = None,
) -> tuple[VerificationEvent, list[DeadLetterRecord]]:
    """The verification event of these items (all of one collection and shard key) and their dead letters;
    ``documents``: in a chunked collection, what each event (by position) did to each document."""
    # a record that means several events (CDC) is one record here: counted, ranged and dead-lettered once
    records = [item.record for item in items if item.part_of is None]
    ranges = offset_ranges(records)
    batch_id = batch_id_for(records[0].topic, ranges, collection)
    applied_positions = {s for op in applied for s in op.sources}
    operations: dict[str, int] = defaultdict(int)
    for item in items:
        if item.position in applied_positions and item.event is not None:
            operations[item.event.op] += 1
    applied_records = {item.record_position for item in items if item.position in applied_positions}
    failed = [item for item in items if item.error is not None and item.part_of is None]
    stamps = [r.timestamp_ms for r in records if r.timestamp_ms]
    cut = texts_cut(items, applied_positions)
    listed_documents, chunk_totals = document_report(documents, applied_positions)
    now = datetime.now(timezone.utc)
    verification = VerificationEvent(
        batch_id=batch_id,
        collection=collection,
        shard_key=items[0].shard_key,
        topic=records[0].topic,
        ranges=ranges,
        event_count=len(records),
        applied_event_count=len(applied_records),
        operations=dict(operations),
        request_operations=len(applied),
        qdrant_requests=requests,
        points=points_touched(ids_of(applied)),
        applied_at=now,
        latency=Latency(
            window_seconds=time.monotonic() - started,
            embed_seconds=timings.embed,
            apply_seconds=timings.apply,
            verify_seconds=timings.verify,
            max_event_age_seconds=(now.timestamp() * 1000 - min(stamps)) / 1000 if stamps else None,
        ),
        verification=outcome,
        dead_letters=[
            DeadLetterRef(partition=i.record.partition, offset=i.record.offset, code=i.error.code,
                          message=i.error.message[:LISTED_MESSAGE_CHARS])
            for i in failed[:LISTED_DEAD_LETTERS]
            if i.error is not None
        ],
        dead_letter_count=len(failed),
        texts_cut=cut[:LISTED_IDS],
        texts_cut_count=len(cut),
        documents=listed_documents,
        chunks=chunk_totals,
        worker=WORKER,
    )
    return verification, [dead_letter_for(item, batch_id) for item in failed]
