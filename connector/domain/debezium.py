"""Debezium change events, as Kafka Connect's JSON converter writes them (with an embedded schema,
``{"schema": ..., "payload": ...}``, or without, the envelope alone) -> which row of which table
changed how, with column values in JSON terms. Pure.

What the connector does with a row change (which collection, which point, which payload keys and
texts) is the mapping's job (connector/domain/cdc_mapping.py). Heartbeats, schema changes and the
tombstone Debezium writes after each delete are :class:`Skipped`; anything else that is not a
change event is a :class:`NotAChange` with the reason, for the dead letter.

A value Debezium did not send is not data: where PostgreSQL did not log a column (an unchanged
TOASTed value, under the default ``REPLICA IDENTITY``) Debezium writes its unavailable-value
placeholder instead, in the column's own type (:class:`Placeholder`). Such a column is left out of
the row and named in :attr:`RowChange.unavailable`; where the row before holds it (``FULL``
identity), its value after is that one, as it did not change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Any, Literal

__all__ = ["DEBEZIUM_PLACEHOLDER", "NotAChange", "Placeholder", "RowChange", "Skipped", "column_value",
           "decode_change", "placeholder"]

# Debezium's unavailable.value.placeholder when its connector sets none
DEBEZIUM_PLACEHOLDER = "__debezium_unavailable_value"

ChangeKind = Literal["create", "read", "update", "delete", "truncate"]
KINDS: dict[str, ChangeKind] = {"c": "create", "r": "read", "u": "update", "d": "delete", "t": "truncate"}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class RowChange:
    """One row's change: ``before`` and ``after`` (None where Debezium gives none), values converted."""

    kind: ChangeKind
    table: str  # "schema.table" (Postgres, SQL Server) or "database.table" (MySQL)
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    position: dict[str, Any]  # where in the database log: lsn, ts_ms, snapshot... as Debezium says
    # columns of ``after`` whose value Debezium did not send (its placeholder): not in ``after``
    unavailable: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Skipped:
    reason: Literal["heartbeat", "schema_change", "tombstone"]


@dataclass(frozen=True)
class NotAChange:
    message: str


@dataclass(frozen=True)
class Placeholder:
    """Debezium's unavailable-value placeholder in each shape a column carries it: the text for text
    and JSON columns, its bytes for binary columns (base64, base64url or hex, by Debezium's
    ``binary.handling.mode``), a one-element list (or the bytes as numbers) for arrays, a one-entry
    map for hstore."""

    text: str
    binary: frozenset[str]
    lists: tuple[list[Any], ...]

    def matches(self, value: Any, schema: dict[str, Any] | None) -> bool:
        """Whether ``value`` is the placeholder; by the column's type where the record has schemas."""
        kind = schema.get("type") if schema else None
        if isinstance(value, str):
            if kind == "bytes":
                return value in self.binary
            return value == self.text or (kind is None and value in self.binary)
        if isinstance(value, list):
            return kind in (None, "array") and value in self.lists
        if isinstance(value, dict):
            return kind in (None, "map") and value == {self.text: self.text}
        return False


@cache
def placeholder(setting: str = DEBEZIUM_PLACEHOLDER) -> Placeholder:
    """The placeholder Debezium sends for ``unavailable.value.placeholder=setting`` (``hex:...``
    names its bytes, as Debezium reads it)."""
    raw = bytes.fromhex(setting[4:]) if setting.startswith("hex:") else setting.encode()
    text = raw.decode("utf-8", errors="replace")
    binary = frozenset({base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
                        raw.hex(), raw.hex().upper()})
    signed = [b - 256 if b > 127 else b for b in raw]  # Java's bytes, for integer arrays
    name_uuid = str(uuid.UUID(bytes=hashlib.md5(raw, usedforsecurity=False).digest(), version=3))  # uuid[] columns
    return Placeholder(text, binary, ([text], *([b] for b in sorted(binary)), signed, [name_uuid]))


def decode_change(value: bytes | None, unavailable: Placeholder | None = None) -> RowChange | Skipped | NotAChange:
    """One record value of a Debezium topic; never raises on bad input. ``unavailable``: the
    placeholder Debezium sends for a value it does not have (its default unless given)."""
    if value is None:
        return Skipped("tombstone")  # Debezium's follow-up to a delete, for log compaction
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return NotAChange(f"not JSON: {exc}")
    if not isinstance(document, dict):
        return NotAChange("a Debezium record value is a JSON object")
    schema: dict[str, Any] | None = None
    if set(document) == {"schema", "payload"}:  # the JSON converter with schemas.enable=true
        schema, document = document["schema"], document["payload"]
        if not isinstance(document, dict):
            return NotAChange("the embedded payload is not an object")
    if "ddl" in document or "tableChanges" in document:
        return Skipped("schema_change")
    if "op" not in document:
        if set(document) <= {"ts_ms"}:
            return Skipped("heartbeat")
        return NotAChange("no 'op': not a Debezium change event (is the unwrap transform in front of it?)")
    kind = KINDS.get(document["op"]) if isinstance(document["op"], str) else None
    if kind is None:
        return NotAChange(f"unknown op {document['op']!r}")
    source = document.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("table"), str):
        return NotAChange("no source.table")
    owner = source.get("schema") or source.get("db")
    table = f"{owner}.{source['table']}" if owner else source["table"]
    marker = unavailable or placeholder()
    try:
        before, _ = _row(document.get("before"), _field_schema(schema, "before"), marker)
        after, unsent = _row(document.get("after"), _field_schema(schema, "after"), marker)
    except (ValueError, TypeError) as exc:
        return NotAChange(f"a column value does not fit its schema: {exc}")
    if after is not None and before is not None:
        for column in [c for c in unsent if c in before]:  # unchanged: its value after is its value before
            after[column] = before[column]
            unsent.discard(column)
    if kind in ("create", "read", "update") and after is None:
        return NotAChange(f"a {kind} without 'after'")
    if kind == "delete" and before is None:
        return NotAChange("a delete without 'before' (set REPLICA IDENTITY so that Debezium sends the key)")
    position = {k: v for k, v in source.items() if k in ("lsn", "ts_ms", "snapshot", "txId", "file", "pos")}
    return RowChange(kind, table, before, after, position, frozenset(unsent))


def _field_schema(schema: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if schema is None:
        return None
    return next((f for f in schema.get("fields", []) if f.get("field") == name), None)


def _row(row: Any, schema: dict[str, Any] | None, unavailable: Placeholder) -> tuple[dict[str, Any] | None, set[str]]:
    """The row's values, without those Debezium did not send; and the columns of those."""
    if row is None:
        return None, set()
    if not isinstance(row, dict):
        raise TypeError("a row is an object")
    fields = {f.get("field"): f for f in (schema or {}).get("fields", [])}
    values: dict[str, Any] = {}
    unsent: set[str] = set()
    for column, value in row.items():
        if unavailable.matches(value, fields.get(column)):
            unsent.add(column)
        else:
            values[column] = column_value(value, fields.get(column))
    return values, unsent


def column_value(value: Any, schema: dict[str, Any] | None) -> Any:
    """A column's value in JSON terms by its Kafka Connect schema (none: as it came): decimals as
    numbers, dates as ``YYYY-MM-DD``, times as ``HH:MM:SS[.ffffff]``, timestamps as RFC 3339 in UTC,
    JSON columns parsed, arrays element by element."""
    if value is None or schema is None:
        return value
    name = schema.get("name")
    if name == "org.apache.kafka.connect.data.Decimal":
        return _number(_unscaled(value), int(schema.get("parameters", {}).get("scale", 0)))
    if name == "io.debezium.data.VariableScaleDecimal":
        return _number(_unscaled(value["value"]), int(value["scale"]))
    if name in ("io.debezium.time.Date", "org.apache.kafka.connect.data.Date"):
        return (date(1970, 1, 1) + timedelta(days=int(value))).isoformat()
    if name in TIME_UNITS:
        return (EPOCH + timedelta(microseconds=int(value) * TIME_UNITS[name])).time().isoformat()
    if name in TIMESTAMP_UNITS:
        moment = EPOCH + timedelta(microseconds=int(value) * TIMESTAMP_UNITS[name])
        return moment.isoformat().replace("+00:00", "Z")
    if name == "io.debezium.data.Json" and isinstance(value, str):
        return json.loads(value)
    if schema.get("type") == "array" and isinstance(value, list):
        return [column_value(item, schema.get("items")) for item in value]
    return value


# units in microseconds; the nano kinds lose their last three digits (Qdrant keeps microseconds)
TIME_UNITS = {"io.debezium.time.Time": 1000, "org.apache.kafka.connect.data.Time": 1000,
              "io.debezium.time.MicroTime": 1, "io.debezium.time.NanoTime": 0.001}
TIMESTAMP_UNITS = {"io.debezium.time.Timestamp": 1000, "org.apache.kafka.connect.data.Timestamp": 1000,
                   "io.debezium.time.MicroTimestamp": 1, "io.debezium.time.NanoTimestamp": 0.001}


def _unscaled(value: Any) -> int:
    """Kafka Connect's decimal: the unscaled value, big-endian two's complement, base64 in JSON."""
    if isinstance(value, int | float):  # decimal.handling.mode=double or a converter that decoded it
        raise TypeError("a number where a base64 decimal was declared")
    return int.from_bytes(base64.b64decode(value), "big", signed=True)


def _number(unscaled: int, scale: int) -> int | float:
    exact = Decimal(unscaled).scaleb(-scale)
    return int(exact) if scale <= 0 else float(exact)  # Qdrant keeps numbers as 64-bit floats
