"""A Debezium record -> the connector's own change events, so that CDC input goes through the
same windows, ordering, verification and exactly-once state as native events. Pure.

One row change becomes the events of one point (connector/domain/cdc_mapping.py decides what
changed): an insert or snapshot row an ``upsert`` (its first text embedded inline) and one
inline re-embed per further text; an update a ``set_payload`` of the keys that changed, a
re-embed per changed text and a ``delete_vectors`` for texts that became empty, with the whole
row beside them (:attr:`RowEvents.whole`), which the window applies instead where the point does
not hold the row as it was before (so a row dead-lettered once is healed by its next change); a
delete a ``delete``; a truncate, with ``truncate: delete_all``, a delete by an all-matching
filter, its ``blast_radius_override`` granted by the mapping (connector/domain/policy.py). A
column that is NULL is no payload key (an update to NULL removes the key, as a ``set_payload``
null does), so a point's payload is the row's non-null mapped columns, however
it got there. A column Debezium did not send (its unavailable-value placeholder) is neither
written nor embedded. A text longer than ``max_text_chars`` is embedded from its first
``max_text_chars`` characters (:attr:`RowEvents.cut`); the payload keeps it whole. A chunked
column's text is never cut (its chunks cover it whole), and a row without one (NULL, empty) has no
chunk points: its document is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from connector.domain.cdc_mapping import CdcMapping, PointChange, TableMapping, TextColumn, plan_row_change
from connector.domain.changes import (
    MAX_TEXT_CHARS,
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
from connector.domain.debezium import NotAChange, RowChange, Skipped, decode_change, placeholder

__all__ = ["CdcSkip", "RowEvents", "cdc_events", "events_for"]

SkipReason = Literal["heartbeat", "schema_change", "tombstone", "truncate", "unchanged"]


@dataclass(frozen=True)
class CdcSkip:
    """A record with nothing to apply, counted by its reason."""

    reason: SkipReason
    collection: str | None = None


@dataclass(frozen=True)
class RowEvents:
    """The events of one row change, in the order they apply.

    ``whole`` (an update's): the events of the whole row, applied instead of ``events`` where the
    point does not hold the row as it was before the change: it is missing, or the mapped keys of
    its payload differ from ``holds`` (None values: absent); without ``holds``, only where it is
    missing. ``events`` may then be empty: a change of no mapped column, skipped where the point
    holds the row. ``unavailable_keys`` and ``unavailable_vectors``: what the source did not send
    (neither form writes them). ``cut``: vector -> the length of its text, for texts embedded from
    their first ``max_text_chars`` characters."""

    events: list[ChangeEvent]
    point_id: int | str | None = None
    whole: list[ChangeEvent] | None = None
    holds: dict[str, Any] | None = None
    unavailable_keys: tuple[str, ...] = ()
    unavailable_vectors: tuple[str, ...] = ()
    cut: dict[str, int] = field(default_factory=dict)


def cdc_events(value: bytes | None, mapping: CdcMapping, *, max_event_bytes: int = 1_048_576,
               max_text_chars: int = MAX_TEXT_CHARS) -> RowEvents | CdcSkip | Rejection:
    """One record value of a Debezium topic: the events it means, a skip, or why it is refused."""
    if value is not None and len(value) > max_event_bytes:
        return Rejection(code="event_too_large", message=f"event is {len(value)} bytes, the limit is {max_event_bytes}")
    decoded = decode_change(value, placeholder(mapping.unavailable_value_placeholder))
    if isinstance(decoded, Skipped):
        return CdcSkip(decoded.reason)
    if isinstance(decoded, NotAChange):
        return Rejection(code="not_a_change_event", message=decoded.message)
    planned = plan_row_change(decoded, mapping)
    table = mapping.tables.get(decoded.table)
    if isinstance(planned, str) or table is None:
        return Rejection(code="unmapped_change", message=str(planned))
    if "" in planned.drop_vectors:
        return Rejection(code="unmapped_change", collection=planned.collection,
                         message=f"the text of the unnamed vector is empty in an update of a row of {decoded.table!r}: "
                                 "Qdrant cannot remove an unnamed vector (map the column to a named vector)")
    event_id = _event_id(decoded)
    cut = {vector: len(text) for vector, text in {**planned.texts, **(planned.whole or planned).texts}.items()
           if len(text) > max_text_chars and table.chunked is None}
    try:
        events = events_for(planned, table, event_id, max_text_chars)
        whole = events_for(planned.whole, table, event_id, max_text_chars) if planned.whole is not None else None
    except ValidationError as exc:  # a value the connector's events cannot carry (a log position too long, say)
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return Rejection(code="schema_violation", collection=planned.collection,
                         message=f"row of {decoded.table!r} does not fit an event: {where}: {first['msg']}")
    if not events and not whole:
        return CdcSkip("truncate" if decoded.kind == "truncate" else "unchanged", planned.collection)
    return RowEvents(events, planned.point_id, whole, planned.holds, planned.unavailable_keys,
                     planned.unavailable_vectors, cut)


def events_for(change: PointChange, table: TableMapping, event_id: str | None = None,
               max_text_chars: int = MAX_TEXT_CHARS) -> list[ChangeEvent]:
    """The events of one planned change (not its ``whole``), in the order they apply; empty when
    nothing changes. Texts longer than ``max_text_chars`` are cut to it."""
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
    if change.replaces is not None:  # the key changed: the row left its old point
        events.append(DeleteEvent(**common, op="delete", ids=[change.replaces]))
    if change.kind == "upsert" and table.chunked is not None and table.text_key is not None:
        return [*events, _document_write(change, table.texts[table.chunked], table.text_key, common)]
    texts = {vector: text[:max_text_chars] for vector, text in change.texts.items()}
    if change.kind == "upsert":
        first = next(iter(texts), None)
        text = texts.pop(first) if first is not None else None
        point = UpsertPoint(id=change.point_id, payload={k: v for k, v in change.payload.items() if v is not None},
                            text=text)
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


def _document_write(change: PointChange, spec: TextColumn, key: str, common: dict[str, Any]) -> ChangeEvent:
    """A chunked table's row: an upsert of its document with the text whole under its payload key
    ``key`` (the chunk stage splits it, so nothing is cut), or, for a row without text (NULL,
    empty), a delete of its document: a document with no text has no chunk points."""
    text = change.texts.get(spec.vector)
    if text is None:
        return DeleteEvent(**common, op="delete", ids=[change.point_id])
    payload = {k: v for k, v in change.payload.items() if v is not None and k != key}
    return UpsertEvent(**common, op="upsert", points=[UpsertPoint(id=change.point_id, payload={**payload, key: text})],
                       vector_name=spec.vector, model=spec.model)


def _event_id(change: RowChange) -> str | None:
    """Where in the database log the change was made, echoed in dead letters."""
    lsn = change.position.get("lsn")
    return f"{change.table}@lsn:{lsn}" if lsn is not None else None
