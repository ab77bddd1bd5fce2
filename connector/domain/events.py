"""Event models (the single source of the JSON Schemas in ``schemas/``) and the parser.

``parse_change(bytes)`` turns one Kafka record value into a patch or re-embed event, or into
a :class:`Rejection` that names the reason; it never raises on bad input. Checks that need
the collection's configuration (vector names and sizes) live in :mod:`connector.domain.validation`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, get_args
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from connector.domain.json_decode import decode_event_json

SCHEMA_VERSION: Final = 1

PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$"
NAME_PATTERN = r"^[A-Za-z0-9_\-\.]{1,255}$"

PointId = Annotated[
    Annotated[StrictInt, Field(ge=0, le=2**64 - 1)] | UUID,
    Field(description="An unsigned integer or a UUID"),
]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
DenseVector = Annotated[list[FiniteFloat], Field(min_length=1, max_length=65_536)]
IdList = Annotated[list[PointId], Field(min_length=1, max_length=1_000_000)]
Payload = dict[str, Any]
CollectionName = Annotated[StrictStr, Field(pattern=NAME_PATTERN)]
VectorName = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_\-\.]{0,255}$")]
Text = Annotated[StrictStr, Field(min_length=1, max_length=100_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparseVector(_Strict):
    """A sparse vector: parallel lists of unique indices and their values."""

    indices: Annotated[
        list[Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]],
        Field(max_length=65_536, json_schema_extra={"uniqueItems": True}),
    ]
    values: Annotated[list[FiniteFloat], Field(max_length=65_536)]

    @model_validator(mode="after")
    def _same_length(self) -> SparseVector:
        if len(self.indices) != len(self.values):
            raise ValueError("indices and values must have the same length")
        if len(set(self.indices)) != len(self.indices):
            raise ValueError("indices must be unique")
        return self


NamedVectors = Annotated[
    dict[VectorName, DenseVector | SparseVector], Field(min_length=1, max_length=64)
]
VectorInput = Annotated[
    DenseVector | NamedVectors,
    Field(description="A dense vector for the unnamed vector, or an object of named dense/sparse vectors"),
]


class _Event(_Strict):
    schema_version: Literal[1] = Field(description="Version of this event format")
    collection: CollectionName
    event_id: Annotated[StrictStr, Field(max_length=200)] | None = Field(
        None, description="Producer's id for the event, echoed in dead-letter records"
    )
    produced_at: datetime | None = Field(None, description="When the producer made the event (latency)")


def _one_of_required(*alternatives: list[str], exclusive: tuple[str, ...]) -> dict[str, Any]:
    """JSON Schema for 'exactly one of these address forms', mirroring the model validators."""
    return {
        "oneOf": [
            {"required": names, "not": {"anyOf": [{"required": [other]} for other in exclusive if other not in names]}}
            for names in alternatives
        ]
    }


class _Selected(_Event):
    """An operation addressed either by point ids or by a Qdrant filter, never both."""

    model_config = ConfigDict(json_schema_extra=_one_of_required(["ids"], ["filter"], exclusive=("ids", "filter")))

    ids: IdList | None = None
    filter: dict[str, Any] | None = Field(None, description="A Qdrant filter object")
    blast_radius_override: bool = Field(
        False, description="Apply even if the filter matches more points than the connector's limit (if permitted)"
    )

    @model_validator(mode="after")
    def _ids_xor_filter(self) -> _Selected:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of 'ids' or 'filter'")
        return self


# --- payload patches: one class per Qdrant batch operation ---------------------------------


class UpsertPoint(_Strict):
    model_config = ConfigDict(json_schema_extra={"not": {"required": ["vector", "text"]}})

    id: PointId
    vector: VectorInput | None = None
    text: Text | None = Field(None, description="Text to embed into the event's vector_name")
    payload: Payload | None = None

    @model_validator(mode="after")
    def _vector_xor_text(self) -> UpsertPoint:
        if self.vector is not None and self.text is not None:
            raise ValueError("give 'vector' or 'text', not both")
        return self


class UpsertEvent(_Event):
    """Create or fully replace points."""

    kind: Literal["patch"] = "patch"
    op: Literal["upsert"]
    points: Annotated[list[UpsertPoint], Field(min_length=1, max_length=100_000)]
    vector_name: VectorName | None = Field(None, description="Vector that 'text' is embedded into")
    model: Annotated[StrictStr, Field(max_length=200)] | None = None


class DeleteEvent(_Selected):
    """Delete points."""

    kind: Literal["patch"] = "patch"
    op: Literal["delete"]


class SetPayloadEvent(_Selected):
    """Merge keys into the payload (a null value removes the key); ``key`` targets a nested object."""

    kind: Literal["patch"] = "patch"
    op: Literal["set_payload"]
    payload: Annotated[Payload, Field(min_length=1)]
    key: Annotated[StrictStr, Field(pattern=PATH_PATTERN, max_length=1000)] | None = None


class OverwritePayloadEvent(_Selected):
    """Replace the whole payload."""

    kind: Literal["patch"] = "patch"
    op: Literal["overwrite_payload"]
    payload: Payload


class DeletePayloadEvent(_Selected):
    """Remove payload keys (dotted paths reach nested keys)."""

    kind: Literal["patch"] = "patch"
    op: Literal["delete_payload"]
    keys: Annotated[
        list[Annotated[StrictStr, Field(pattern=PATH_PATTERN, max_length=1000)]],
        Field(min_length=1, max_length=1000),
    ]


class ClearPayloadEvent(_Selected):
    """Remove every payload key."""

    kind: Literal["patch"] = "patch"
    op: Literal["clear_payload"]


class VectorsOfPoint(_Strict):
    id: PointId
    vector: VectorInput


class UpdateVectorsEvent(_Event):
    """Replace the given vectors of existing points; payload and other vectors stay."""

    kind: Literal["patch"] = "patch"
    op: Literal["update_vectors"]
    points: Annotated[list[VectorsOfPoint], Field(min_length=1, max_length=100_000)]


class DeleteVectorsEvent(_Selected):
    """Remove named vectors from points."""

    kind: Literal["patch"] = "patch"
    op: Literal["delete_vectors"]
    vector_names: Annotated[list[Annotated[StrictStr, Field(pattern=NAME_PATTERN)]], Field(min_length=1, max_length=64)]


_PatchEvents = (
    UpsertEvent
    | DeleteEvent
    | SetPayloadEvent
    | OverwritePayloadEvent
    | DeletePayloadEvent
    | ClearPayloadEvent
    | UpdateVectorsEvent
    | DeleteVectorsEvent
)
PatchEvent = Annotated[_PatchEvents, Field(discriminator="op")]
PatchOp = Literal[
    "upsert",
    "delete",
    "set_payload",
    "overwrite_payload",
    "delete_payload",
    "clear_payload",
    "update_vectors",
    "delete_vectors",
]
PATCH_OPS: tuple[PatchOp, ...] = get_args(PatchOp)


# --- re-embed ------------------------------------------------------------------------------


class TextOfPoint(_Strict):
    id: PointId
    text: Text


class ReembedEvent(_Event):
    """Compute new vectors for points; their payload is never touched.

    Address points by ``points`` (ids with inline text), or by ``ids`` or ``filter`` together
    with ``text_field``, the payload key that holds the text.
    """

    model_config = ConfigDict(
        json_schema_extra=_one_of_required(
            ["points"],
            ["ids", "text_field"],
            ["filter", "text_field"],
            exclusive=("points", "ids", "filter", "text_field"),
        )
    )

    kind: Literal["reembed"]
    op: Literal["reembed"] = "reembed"
    vector_name: VectorName | None = Field(None, description="Target vector; unset means the unnamed vector")
    model: Annotated[StrictStr, Field(max_length=200)] | None = Field(None, description="Unset: the default model")
    points: Annotated[list[TextOfPoint], Field(min_length=1, max_length=100_000)] | None = None
    ids: IdList | None = None
    filter: dict[str, Any] | None = None
    text_field: Annotated[StrictStr, Field(pattern=PATH_PATTERN, max_length=1000)] | None = None

    @model_validator(mode="after")
    def _one_address(self) -> ReembedEvent:
        given = [name for name in ("points", "ids", "filter") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'points', 'ids' or 'filter'")
        if given[0] == "points" and self.text_field is not None:
            raise ValueError("'text_field' goes with 'ids' or 'filter', not with inline 'points'")
        if given[0] != "points" and self.text_field is None:
            raise ValueError("'ids' and 'filter' need 'text_field', the payload key holding the text")
        return self


ChangeEvent = _PatchEvents | ReembedEvent
PATCH_ADAPTER: TypeAdapter[_PatchEvents] = TypeAdapter(PatchEvent)
REEMBED_ADAPTER: TypeAdapter[ReembedEvent] = TypeAdapter(ReembedEvent)


class FenceRecord(_Strict):
    """A control record of a migration, written to every partition of both input topics.

    A worker that reaches it stops the partition until the alias ``collection`` points at
    ``target`` (the migration switched it) or ``expires_at`` passes (the migration gave up).
    Everything before the fence went to the old collection, everything after goes to the new.
    """

    schema_version: Literal[1]
    kind: Literal["fence"]
    collection: CollectionName = Field(description="The alias being switched")
    target: CollectionName = Field(description="The collection the alias will point at")
    migration_id: Annotated[StrictStr, Field(max_length=100)]
    expires_at: datetime


FENCE_ADAPTER: TypeAdapter[FenceRecord] = TypeAdapter(FenceRecord)


# --- what the connector publishes ------------------------------------------------------------


class SourceRecord(_Strict):
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key: str | None = Field(None, description="Record key as text (UTF-8, or base64 when not text)")


# Why an event is dead-lettered: a closed set, so that consumers of dead letters can rely on it
# (docs/design.md, "Dead-letter codes", says what each means). mypy holds every code written.
RejectionCode = Literal[
    "blast_radius_exceeded",
    "blast_radius_unknown",
    "collection_not_allowed",
    "empty_record",
    "event_too_large",
    "invalid_filter",
    "invalid_json",
    "invalid_utf8",
    "operation_denied",
    "override_denied",
    "point_not_found",
    "poison_record",
    "qdrant_rejected",
    "schema_violation",
    "text_missing",
    "too_many_ids",
    "too_many_points",
    "unknown_collection",
    "unknown_model",
    "unknown_operation",
    "unknown_vector",
    "unsupported_schema_version",
    "vector_size_mismatch",
    "wrong_topic",
]


class ErrorInfo(_Strict):
    code: RejectionCode = Field(description="Stable machine-readable reason, e.g. invalid_json, point_not_found")
    message: str


class DeadLetterRecord(_Strict):
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


class OffsetRange(_Strict):
    partition: int
    first_offset: int
    last_offset: int


class PointsTouched(_Strict):
    count: int
    ids: list[PointId] | None = Field(None, description="Listed when at most 100; else see digest")
    digest: str = Field(description="sha256 of the sorted ids, as text")


class Mismatch(_Strict):
    id: PointId
    field: str
    expected: Any = None
    actual: Any = None


class FilterCheck(_Strict):
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


class VerificationOutcome(_Strict):
    status: Literal["verified", "partial", "mismatch", "skipped"] = Field(
        description="verified: every touched point is as the applied events make it; partial: so are they, "
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
    reason: str | None = None


class DeadLetterRef(_Strict):
    partition: int
    offset: int
    code: RejectionCode
    message: str


class Latency(_Strict):
    window_seconds: float = Field(description="From the window's first event received to its confirmation")
    embed_seconds: float
    apply_seconds: float
    verify_seconds: float
    max_event_age_seconds: float | None = Field(None, description="Oldest event's produce time to now")


class VerificationEvent(_Strict):
    """One per applied batch (one window, one collection): what changed, from where, proven how."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["verification"] = "verification"
    batch_id: str = Field(description="Deterministic from topic, offset ranges and collection")
    collection: str | None
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
    lists_omitted: bool = Field(False, description="Listed ids, mismatches and dead letters left out to fit the topic")
    ranges_exact: bool = Field(True, description="False: ranges are one span per partition, to fit the topic")
    worker: str = Field(description="host:pid of the worker that applied it")


# --- parsing -------------------------------------------------------------------------------


class Rejection(_Strict):
    """Why a record cannot become an event; it goes to the dead-letter topic as is."""

    code: RejectionCode
    message: str
    collection: str | None = None
    event_id: str | None = None


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "event"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_change(
    value: bytes | None,
    *,
    expect: Literal["patch", "reembed"],
    max_event_bytes: int = 1_048_576,
    max_ids_per_event: int = 10_000,
) -> ChangeEvent | FenceRecord | Rejection:
    """Parse one record value. Never raises on bad input: returns a :class:`Rejection`."""
    if value is None:
        return Rejection(code="empty_record", message="record has no value (tombstone)")
    if len(value) > max_event_bytes:
        return Rejection(
            code="event_too_large", message=f"event is {len(value)} bytes, the limit is {max_event_bytes}"
        )
    try:
        document = decode_event_json(value)
    except UnicodeDecodeError as exc:
        return Rejection(code="invalid_utf8", message=f"record value is not UTF-8: {exc.reason} at byte {exc.start}")
    except RecursionError:
        return Rejection(code="invalid_json", message="JSON nests too deeply")
    except ValueError as exc:
        return Rejection(code="invalid_json", message=f"not valid JSON: {exc}")
    if not isinstance(document, dict):
        return Rejection(code="schema_violation", message=f"an event is a JSON object, got {type(document).__name__}")
    collection = document.get("collection") if isinstance(document.get("collection"), str) else None
    event_id = document.get("event_id") if isinstance(document.get("event_id"), str) else None

    def reject(code: RejectionCode, message: str) -> Rejection:
        return Rejection(code=code, message=message, collection=collection, event_id=event_id)

    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        return reject("unsupported_schema_version", f"schema_version must be {SCHEMA_VERSION}, got {version!r}")
    kind = document.get("kind", "patch")
    if kind == "fence":
        try:
            return FENCE_ADAPTER.validate_python(document)
        except ValidationError as exc:
            return reject("schema_violation", _validation_message(exc))
    if kind != expect:
        return reject("wrong_topic", f"a {kind!r} event arrived on the {expect} topic")
    if expect == "patch":
        op = document.get("op")
        if op not in PATCH_OPS:
            return reject("unknown_operation", f"op must be one of {', '.join(PATCH_OPS)}; got {op!r}")
    try:
        adapter = PATCH_ADAPTER if expect == "patch" else REEMBED_ADAPTER
        event: ChangeEvent = adapter.validate_python(document)
    except ValidationError as exc:
        return reject("schema_violation", _validation_message(exc))
    except RecursionError:
        return reject("schema_violation", "event nests too deeply")
    ids = point_ids_of(event)
    if len(ids) > max_ids_per_event:
        return reject("too_many_ids", f"event names {len(ids)} points, the limit is {max_ids_per_event}")
    return event


def normalize_id(point_id: int | UUID | str) -> int | str:
    """Point ids as Qdrant returns them: ints, or UUIDs in lower-case hyphenated text."""
    if isinstance(point_id, int):
        return point_id
    return str(UUID(str(point_id)))


def point_ids_of(event: ChangeEvent) -> list[int | str]:
    """The ids an event names explicitly (none for filter-addressed events)."""
    if isinstance(event, (UpsertEvent, UpdateVectorsEvent)):
        return [normalize_id(p.id) for p in event.points]
    if isinstance(event, ReembedEvent) and event.points is not None:
        return [normalize_id(p.id) for p in event.points]
    ids = getattr(event, "ids", None)
    return [normalize_id(i) for i in ids] if ids else []

