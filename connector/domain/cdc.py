"""A Debezium record -> the connector's own change events, so that CDC input goes through the
same windows, ordering, verification and exactly-once state as native events. Pure.

One row change becomes the events of one point (connector/domain/cdc_mapping.py decides what
changed): an insert or snapshot row an ``upsert`` (its first text embedded inline) and one
inline re-embed per further text; an update a ``set_payload`` of the keys that changed, a
re-embed per changed text and a ``delete_vectors`` for texts that became empty; a delete a
``delete``; a truncate, with ``truncate: delete_all``, a delete by an all-matching filter, its
``blast_radius_override`` granted by the mapping (connector/domain/policy.py). A
column that is NULL is no payload key (an update to NULL removes the key, as a ``set_payload``
null does), so a point's payload is the row's non-null mapped columns, however it got there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from connector.domain.cdc_mapping import CdcMapping, PointChange, TableMapping, plan_row_change
from connector.domain.changes import (
    SCHEMA_VERSION,
    ChangeEvent,
    DeleteEvent,
    DeleteVectorsEvent,
    ReembedEvent,
    Rejection,
    SetPayloadEvent,
    TextOfPoint,
    UpsertEvent,
    UpsertPoint,
)
from connector.domain.debezium import NotAChange, RowChange, Skipped, decode_change

__all__ = ["CdcSkip", "cdc_events", "events_for"]

SkipReason = Literal["heartbeat", "schema_change", "tombstone", "truncate", "unchanged"]


@dataclass(frozen=True)
class CdcSkip:
    """A record with nothing to apply, counted by its reason."""

    reason: SkipReason
    collection: str | None = None


def cdc_events(value: bytes | None, mapping: CdcMapping, *, max_event_bytes: int = 1_048_576,
               ) -> list[ChangeEvent] | CdcSkip | Rejection:
    """One record value of a Debezium topic: the events it means, a skip, or why it is refused."""
    if value is not None and len(value) > max_event_bytes:
        return Rejection(code="event_too_large", message=f"event is {len(value)} bytes, the limit is {max_event_bytes}")
    decoded = decode_change(value)
    if isinstance(decoded, Skipped):
        return CdcSkip(decoded.reason)
    if isinstance(decoded, NotAChange):
        return Rejection(code="not_a_change_event", message=decoded.message)
    planned = plan_row_change(decoded, mapping)
    table = mapping.tables.get(decoded.table)
    if isinstance(planned, str) or table is None:
        return Rejection(code="unmapped_change", message=str(planned))
    if "" in getattr(planned, "drop_vectors", ()):
        return Rejection(code="unmapped_change", collection=planned.collection,
                         message=f"the text of the unnamed vector became empty in a row of {decoded.table!r}: "
                                 "Qdrant cannot remove an unnamed vector (map the column to a named vector)")
    try:
        events = events_for(planned, table, _event_id(decoded))
    except ValidationError as exc:  # a value the connector's events cannot carry (an empty key, a huge text)
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return Rejection(code="schema_violation", collection=planned.collection,
                         message=f"row of {decoded.table!r} does not fit an event: {where}: {first['msg']}")
    if not events:
        return CdcSkip("truncate" if decoded.kind == "truncate" else "unchanged", planned.collection)
    return events


def events_for(change: PointChange, table: TableMapping, event_id: str | None = None) -> list[ChangeEvent]:
    """The events of one planned change, in the order they apply; empty when nothing changes."""
    common: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "collection": change.collection, "event_id": event_id}
    models = {spec.vector: spec.model for spec in table.texts.values()}
    ids = [change.point_id] if change.point_id is not None else None
    if change.kind == "delete":
        return [DeleteEvent(**common, op="delete", ids=ids)]
    if change.kind == "delete_all":
        return [DeleteEvent(**common, op="delete", filter={"must": []}, blast_radius_override=True)]
    if change.kind == "nothing":
        return []
    events: list[ChangeEvent] = []
    texts = dict(change.texts)
    if change.kind == "upsert":
        if change.replaces is not None:  # the key changed: the row left its old point
            events.append(DeleteEvent(**common, op="delete", ids=[change.replaces]))
        payload = {k: v for k, v in change.payload.items() if v is not None}
        first = next(iter(texts), None)
        text = texts.pop(first) if first is not None else None
        point = UpsertPoint(id=change.point_id, payload=payload, text=text)
        vector = {"vector_name": first, "model": models.get(first)} if first is not None else {}
        events.append(UpsertEvent(**common, op="upsert", points=[point], **vector))
    elif change.payload:
        events.append(SetPayloadEvent(**common, op="set_payload", ids=ids, payload=change.payload))
    for vector_name, text in texts.items():
        events.append(ReembedEvent(**common, kind="reembed", vector_name=vector_name, model=models.get(vector_name),
                                   points=[TextOfPoint(id=change.point_id, text=text)]))
    if change.drop_vectors:
        events.append(DeleteVectorsEvent(**common, op="delete_vectors", ids=ids,
                                         vector_names=list(change.drop_vectors)))
    return events


def _event_id(change: RowChange) -> str | None:
    """Where in the database log the change was made, echoed in dead letters."""
    lsn = change.position.get("lsn")
    return f"{change.table}@lsn:{lsn}" if lsn is not None else None
