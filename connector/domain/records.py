"""Outbound: what the connector publishes, the verification event of each applied batch and the
dead-letter record of each rejected event (their JSON Schemas in ``schemas/`` come from here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from connector.domain.changes import SCHEMA_VERSION, PointId, RejectionCode, ShardKeySelector, StrictModel


class SourceRecord(StrictModel):
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key: str | None = Field(None, description="Record key as text (UTF-8, or base64 when not text)")




class ErrorInfo(StrictModel):
    code: RejectionCode = Field(description="Stable machine-readable reason, e.g. invalid_json, point_not_found")
    message: str


class DeadLetterRecord(StrictModel):
    """A record the connector could not apply, with everything needed to fix and replay it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["dead_letter"] = "dead_letter"
    error: ErrorInfo
    source: SourceRecord
    event_id: str | None = None
    collection: str | None = None
    batch_id: str | None = Field(None, description="Set when the event failed inside an applied batch")
    original_value_base64: str | None = Field(
        None, description="The record value exactly as consumed (form 'envelope'; see original_form)"
    )
    original_form: Literal["envelope", "record_value", "omitted"] = Field(
        "envelope",
        description="Where the original bytes are: envelope (original_value_base64), record_value (the dead-letter "
        "record's value is the original and this envelope is its header qcc.dead_letter), omitted (larger than "
        "what may be published: find it at source topic/partition/offset; size and sha256 below)",
    )
    original_value_bytes: int | None = None
    original_value_sha256: str | None = None
    failed_at: datetime


class OffsetRange(StrictModel):
    partition: int
    first_offset: int
    last_offset: int


class PointsTouched(StrictModel):
    count: int
    ids: list[PointId] | None = Field(None, description="Listed when at most 100; else see digest")
    digest: str = Field(description="sha256 of the sorted ids, as text")


class Mismatch(StrictModel):
    id: PointId
    field: str
    expected: Any = None
    actual: Any = None


class FilterCheck(StrictModel):
    """How one applied filter-addressed event was verified: the points its filter matched right
    before its operation was sent (after every earlier operation of the window was applied)."""

    partition: int
    offset: int
    op: str
    method: Literal["points", "count", "sample"] = Field(
        description="points: every matched point was read back and compared; count: more matched than "
        "QCC_VERIFY_FILTER_MAX_POINTS, so the first of them were compared and Qdrant counted, right after "
        "the operation, the points that match the filter but are not as written (must be 0); sample: the "
        "first QCC_VERIFY_FILTER_MAX_POINTS matched points were compared, the rest is not expressible as a count"
    )
    matched: int = Field(description="Points the filter matched when the operation was applied")
    checked_points: int = Field(description="Matched points read back and compared")
    ids_digest: str = Field(description="sha256 of the matched ids, sorted (integers first), comma separated")
    count_after: int | None = Field(None, description="With method count: matching points not as written")


class Unavailable(StrictModel):
    """A point that does not hold columns its source did not send (Debezium's unavailable-value
    placeholder: an unchanged TOASTed value): nothing was written for them, nothing invented."""

    id: PointId
    payload_keys: list[str] = Field(description="Payload keys of those columns the point lacks (or holds the "
                                    "placeholder in, written by an earlier version)")
    vectors: list[str] = Field(description="Vectors of those text columns the point lacks")


class TextCut(StrictModel):
    """A text embedded from its first characters only: longer than QCC_CDC_MAX_TEXT_CHARS (the payload holds it
    whole), or longer than the dense model's window, which reads its first tokens only (a chunked collection
    splits such texts instead)."""

    id: PointId
    vector: str
    chars: int = Field(description="The text's length in characters")
    embedded_chars: int = Field(description="How many of its first characters were embedded")


class DocumentChunks(StrictModel):
    """What a batch did to one document of a chunked collection (docs/design.md, "Chunked documents")."""

    document_id: PointId
    written: int = Field(description="Chunk points written")
    reused: int = Field(description="Of those, with the vector a chunk of the same text held (no model call)")
    embedded: int = Field(description="Of those, embedded by the model")
    deleted: int = Field(description="Chunk points deleted: past the new count, or the whole document")
    count: int = Field(description="The document's chunks after the batch (0: deleted)")
    digest: str = Field(description="sha256 of its chunks' sha256 (hex) in index order, each followed by a newline")


class ChunkTotals(StrictModel):
    """The sums over every document of the batch (all of them, also those not listed)."""

    documents: int
    written: int
    reused: int
    embedded: int
    deleted: int


class VerificationOutcome(StrictModel):
    status: Literal["verified", "partial", "mismatch", "skipped"] = Field(
        description="verified: every touched point is as the applied events make it (see unavailable for "
        "what their source did not send); partial: so are they, "
        "but a rejected (dead-lettered) event was applied in part, as a server does with a multi-point "
        "op naming a missing point; mismatch: a point differs otherwise; skipped: not checked (reason)"
    )
    checked_points: int = 0
    mismatches: list[Mismatch] = Field(default_factory=list, description="At most 20 are listed")
    mismatch_count: int = 0
    changed_by_rejected: list[Mismatch] = Field(
        default_factory=list,
        description="Points of dead-lettered events that Qdrant changed anyway (at most 20 listed): "
        "expected is the state without the rejected event",
    )
    changed_by_rejected_count: int = 0
    filters: list[FilterCheck] = Field(
        default_factory=list, description="One per applied filter-addressed event, in window order (at most 100)"
    )
    unavailable: list[Unavailable] = Field(
        default_factory=list, description="Touched points that lack columns their change did not carry (at most "
        "20 listed): checked after the read-back; a later change of the row that carries them writes them")
    unavailable_count: int = 0
    reason: str | None = None


class DeadLetterRef(StrictModel):
    partition: int
    offset: int
    code: RejectionCode
    message: str


class Latency(StrictModel):
    window_seconds: float = Field(description="From the window's first event received to its confirmation")
    embed_seconds: float
    apply_seconds: float
    verify_seconds: float
    max_event_age_seconds: float | None = Field(None, description="Oldest event's produce time to now")


class VerificationEvent(StrictModel):
    """One per applied batch (one window, one collection): what changed, from where, proven how."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["verification"] = "verification"
    batch_id: str = Field(description="Deterministic from topic, offset ranges and collection")
    collection: str | None
    shard_key: ShardKeySelector | None = Field(
        None, description="The shard key the batch was written to and read back from (custom-sharded collections)")
    topic: str
    ranges: list[OffsetRange] = Field(description="Exact runs of the source offsets of this batch's events")
    event_count: int
    applied_event_count: int
    operations: dict[str, int] = Field(description="Applied events per operation type")
    request_operations: int = Field(description="Operations in the Qdrant batch after coalescing")
    qdrant_requests: int = Field(description="batch_update_points calls: 1, more when a failing op was isolated")
    points: PointsTouched
    applied_at: datetime
    latency: Latency
    verification: VerificationOutcome
    dead_letters: list[DeadLetterRef] = Field(description="At most 100 are listed; dead_letter_count has them all")
    dead_letter_count: int = 0
    texts_cut: list[TextCut] = Field(
        default_factory=list, description="Texts embedded from their first characters only (at most 100 listed)")
    texts_cut_count: int = 0
    documents: list[DocumentChunks] = Field(
        default_factory=list, description="Chunked collections: per document the batch changed (at most 100 listed)")
    chunks: ChunkTotals | None = Field(None, description="Chunked collections: the chunk counts of the whole batch")
    lists_omitted: bool = Field(False, description="Listed ids, mismatches and dead letters left out to fit the topic")
    ranges_exact: bool = Field(True, description="False: ranges are one span per partition, to fit the topic")
    worker: str = Field(description="host:pid of the worker that applied it")

