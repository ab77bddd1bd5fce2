"""Inbound: the change events upstream services publish (payload patches, re-embeds, migration
fences), the single source of their JSON Schemas in ``schemas/``, and the parser.

``parse_change(bytes)`` turns one Kafka record value into a patch or re-embed event, or into
a :class:`Rejection` that names the reason; it never raises on bad input. Checks that need
the collection's configuration (vector names and sizes) live in :mod:`connector.domain.validation`.
What the connector publishes in return is in :mod:`connector.domain.records`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
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
from pydantic_core import PydanticCustomError

from connector.domain.json_decode import decode_event_json
from connector.domain.match_all import matches_everything
from connector.settings import ShardKeyRule

SCHEMA_VERSION: Final = 1

PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$"
NAME_PATTERN = r"^[A-Za-z0-9_\-\.]{1,255}$"
# The validation error of an event whose filter matches every point by itself (its dead letter's
# code is blast_radius_share_exceeded, not schema_violation).
MATCHES_EVERYTHING: Final = "filter_matches_everything"

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
MAX_TEXT_CHARS: Final = 100_000  # the longest text an event carries
Text = Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
ShardKey = Annotated[
    Annotated[StrictInt, Field(ge=0, le=2**64 - 1)] | Annotated[StrictStr, Field(min_length=1, max_length=255)],
    Field(description="A shard key of a custom-sharded collection: an unsigned integer or a string (1 is not '1')"),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparseVector(StrictModel):
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


class ShardKeyWithFallback(StrictModel):
    """Qdrant's target-with-fallback selector: write to ``target`` when it exists, else to ``fallback``."""

    target: ShardKey
    fallback: ShardKey


ShardKeySelector = Annotated[
    ShardKey | Annotated[list[ShardKey], Field(min_length=1, max_length=64)] | ShardKeyWithFallback,
    Field(description="Where in a custom-sharded collection the event applies: a shard key, a list of them "
                      "(the same change in each), or {target, fallback}"),
]


class _Event(StrictModel):
    schema_version: Literal[1] = Field(description="Version of this event format")
    collection: CollectionName
    shard_key: ShardKeySelector | None = Field(
        None, description="Only for custom-sharded collections; may be derived instead (QCC_SHARD_KEYS)"
    )
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
    filter: dict[str, Any] | None = Field(
        None, description="A Qdrant filter object. One that matches every point by itself (no condition, only empty "
        "clauses) is refused for an operation that removes data, unless blast_radius_override")
    blast_radius_override: bool = Field(
        False, description="Apply even if the filter matches more points than the connector's limits (if permitted)"
    )

    @model_validator(mode="after")
    def _ids_xor_filter(self) -> _Selected:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of 'ids' or 'filter'")
        return self

    @model_validator(mode="after")
    def _not_every_point(self) -> _Selected:
        if self.filter is not None and not self.blast_radius_override and self.removes_data() \
                and matches_everything(self.filter):
            op = getattr(self, "op", "operation")
            raise PydanticCustomError(
                MATCHES_EVERYTHING, "the filter {filter} matches every point: a {op} of every point is refused; name "
                "the points by ids or give the filter a condition (blast_radius_override, where "
                "QCC_ALLOW_BLAST_RADIUS_OVERRIDE permits it, means every point)",
                {"filter": json.dumps(self.filter)[:200], "op": op})
        return self

    def removes_data(self) -> bool:
        """Whether the operation removes data: points, payloads, payload keys or vectors. A filter
        that matches too much of a collection is refused for these (docs/design.md, "Policy")."""
        return True


# --- payload patches: one class per Qdrant batch operation ---------------------------------


class UpsertPoint(StrictModel):
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

    def removes_data(self) -> bool:
        """It writes the keys it names; a null removes that key."""
        return any(value is None for value in self.payload.values())


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


class VectorsOfPoint(StrictModel):
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


class TextOfPoint(StrictModel):
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


class FenceRecord(StrictModel):
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



# Why an event is dead-lettered: a closed set, so that consumers of dead letters can rely on it
# (docs/design.md, "Dead-letter codes", says what each means). mypy holds every code written.
RejectionCode = Literal[
    "blast_radius_exceeded",
    "blast_radius_share_exceeded",
    "blast_radius_unknown",
    "chunked_document",
    "collection_not_allowed",
    "empty_record",
    "event_too_large",
    "invalid_filter",
    "invalid_json",
    "invalid_utf8",
    "not_a_change_event",
    "operation_denied",
    "override_denied",
    "point_not_found",
    "poison_record",
    "qdrant_rejected",
    "schema_violation",
    "shard_key_fallback_unsupported",
    "shard_key_required",
    "shard_key_unexpected",
    "text_missing",
    "too_many_ids",
    "too_many_points",
    "unknown_collection",
    "unknown_model",
    "unknown_shard_key",
    "unknown_operation",
    "unknown_vector",
    "unmapped_change",
    "unsupported_schema_version",
    "vector_size_mismatch",
    "wrong_topic",
]


# --- parsing -------------------------------------------------------------------------------


class Rejection(StrictModel):
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


_POINT_NUMBER = re.compile(r"0|[1-9][0-9]{0,19}")
_POINT_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def tombstone_delete(key: bytes | None, shard_keys: Mapping[str, ShardKeyRule] | None = None
                     ) -> DeleteEvent | Rejection:
    """A tombstone (a record without a value), as compacted topics express deletion: it deletes
    the point its key names, ``collection/point-id`` (the key every producer of the connector's
    events gives; an integer id or a UUID). On a collection whose shard key comes from the record
    key (a ``from_key`` rule in ``shard_keys``) the point id is what follows the rule's match, e.g.
    ``tenants/<tenant>/<point-id>``; the shard key is then derived from the key like any event's."""
    try:
        text = key.decode("utf-8") if key is not None else ""
    except UnicodeDecodeError:
        text = ""
    collection, _, point = text.partition("/")
    rule = (shard_keys or {}).get(collection)
    layout = "collection/point-id"
    if rule is not None and rule.from_key is not None:
        layout = f"collection/point-id, or on {collection!r} the point id after the shard key rule {rule.from_key!r}"
        match = re.search(rule.from_key, text)
        if match is not None and match.group(1):  # else no shard key: the window says so (shard_key_required)
            point = text[match.end():].removeprefix("/")
    point_id: int | str | None = None
    if _POINT_NUMBER.fullmatch(point):  # as a producer writes it: no sign, no leading zero, below 2**64
        point_id = int(point) if int(point) < 2**64 else None
    elif _POINT_UUID.fullmatch(point):  # hyphenated only: UUID() also takes braces, urn: and bare hex
        point_id = str(UUID(point))
    if point_id is None or not re.fullmatch(NAME_PATTERN, collection):
        shown = text[:100] if text else repr(key)[:100]
        return Rejection(code="empty_record", message=f"a record without a value (a tombstone) deletes the point its "
                         f"key names, {layout}; its key {shown!r} names none")
    return DeleteEvent(schema_version=SCHEMA_VERSION, collection=collection, op="delete", ids=[point_id])


def parse_change(
    value: bytes | None,
    *,
    expect: Literal["patch", "reembed"],
    max_event_bytes: int = 1_048_576,
    max_ids_per_event: int = 10_000,
    key: bytes | None = None,
    tombstones: Literal["delete", "dead_letter"] = "delete",
    shard_keys: Mapping[str, ShardKeyRule] | None = None,
) -> ChangeEvent | FenceRecord | Rejection:
    """Parse one record value (and, for a tombstone, its ``key``, read with the collection's shard
    key rule if any). Never raises on bad input: returns a :class:`Rejection`."""
    if value is None:
        if expect == "patch" and tombstones == "delete":
            return tombstone_delete(key, shard_keys)
        where = "the re-embed topic takes none" if expect == "reembed" else "QCC_TOMBSTONES=dead_letter"
        return Rejection(code="empty_record", message=f"record has no value (a tombstone; {where})")
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
        everything = any(error["type"] == MATCHES_EVERYTHING for error in exc.errors(include_url=False))
        return reject("blast_radius_share_exceeded" if everything else "schema_violation", _validation_message(exc))
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


def filter_of(event: ChangeEvent) -> dict[str, Any] | None:
    """The Qdrant filter an event addresses its points by, if any. Not ``getattr(event, "filter",
    None)``: on an event without the field, pydantic raises and catches an AttributeError, ~1 µs,
    several times per event on the hot path."""
    return event.filter if isinstance(event, (_Selected, ReembedEvent)) else None


def removes_data(event: ChangeEvent) -> bool:
    """Whether the event removes data: points (delete), a whole payload (clear_payload,
    overwrite_payload), payload keys (delete_payload, a set_payload's null) or vectors
    (delete_vectors). Upserts and vector updates name their points; re-embeds recompute vectors."""
    return isinstance(event, _Selected) and event.removes_data()


def point_ids_of(event: ChangeEvent) -> list[int | str]:
    """The ids an event names explicitly (none for filter-addressed events)."""
    if isinstance(event, (UpsertEvent, UpdateVectorsEvent)):
        return [normalize_id(p.id) for p in event.points]
    if isinstance(event, ReembedEvent) and event.points is not None:
        return [normalize_id(p.id) for p in event.points]
    ids = getattr(event, "ids", None)
    return [normalize_id(i) for i in ids] if ids else []

