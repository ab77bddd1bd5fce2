"""The CDC mapping file and what one row change means for Qdrant. Pure.

A mapping names, per table, the collection, the primary key columns, the columns that become
payload keys and the text columns that become named vectors::

    tables:
      public.products:
        collection: products
        key: [id]
        payload: {title: title, price: price, tags: tags}   # unset: every column, same names
        texts: {description: {vector: dense}}               # embedded; unset: no vectors
    truncate: skip                                          # or delete_all
    unavailable_value_placeholder: __debezium_unavailable_value   # Debezium's, unless its connector sets another

:func:`plan_row_change` turns a decoded change (connector/domain/debezium.py) into a
:class:`PointChange`: an insert or snapshot row is an upsert with every text embedded; an update
only the payload keys whose value changed and only the texts that changed (``before`` against
``after``), so a price update costs no embedding; a delete deletes the point. An update is a
``patch`` with the whole row beside it (``whole``), applied instead where the point does not hold
the row as it was before the change (a row dead-lettered once, a point deleted behind the
connector's back): a later change of a row heals it. A row with columns Debezium did not send
(``unavailable``) is a merge: the columns it sent, set; the others neither written nor embedded.
Qdrant takes integer and UUID point ids only: a single non-negative integer key is the id, any
other key (text, composite) a UUID derived from the table and the key's values, the same on every run.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import Field, StrictStr, ValidationError, field_validator, model_validator

from connector.domain.changes import NAME_PATTERN, StrictModel
from connector.domain.debezium import DEBEZIUM_PLACEHOLDER, RowChange, placeholder
from connector.settings import ChunkedField

__all__ = ["CdcMapping", "PointChange", "TableMapping", "TextColumn", "plan_row_change", "point_id"]

# the namespace of derived point ids: changing it would move every point of a text-keyed table
POINT_ID_NAMESPACE = uuid.UUID("6f1c3a52-1d0e-4c55-9a57-0f6b3c2e9d41")
Column = Annotated[StrictStr, Field(min_length=1, max_length=255)]


class TextColumn(StrictModel):
    vector: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_\-\.]{0,255}$")] = Field(
        "", description="The named vector its text is embedded into; empty: the unnamed vector")
    model: StrictStr | None = Field(None, description="Unset: the connector's default model for the vector")
    chunked: bool = Field(False, description="The collection holds chunked documents: the text is split into "
                          "chunk points (docs/design.md, \"Chunked documents\"); a row change writes the whole row")


class TableMapping(StrictModel):
    collection: Annotated[StrictStr, Field(pattern=NAME_PATTERN)]
    key: Annotated[list[Column], Field(min_length=1, description="The primary key columns, in order")]
    payload: dict[Column, Annotated[StrictStr, Field(min_length=1)]] | None = Field(
        None, description="Column -> payload key; unset: every column under its own name")
    texts: dict[Column, TextColumn] = Field(default_factory=dict, description="Text column -> its vector")

    @model_validator(mode="after")
    def _one_chunked_text(self) -> TableMapping:
        if any(text.chunked for text in self.texts.values()) and len(self.texts) > 1:
            raise ValueError("a table with a chunked text column maps no other text column (its points are the "
                             "chunks of that one text)")
        column, key = self.chunked, self.text_key
        if column is None or key is None:
            return self
        spec = self.texts[column]
        try:  # the collection's text field is this key (connector/domain/documents.py, chunked_fields)
            ChunkedField(text_field=key, vector=spec.vector, model=spec.model)
        except ValidationError:
            raise ValueError(f"chunked column {column!r}: its payload key {key!r} cannot be a chunked collection's "
                             "text field (a top-level key of letters, digits, _ and -, first a letter or _, not "
                             f"_chunk): map it to one in payload, e.g. {{{column}: body}}") from None
        others = [c for c, k in (self.payload or {}).items() if k == key and c != column]
        if others:
            raise ValueError(f"chunked column {column!r}: its payload key {key!r} is column {others[0]!r}'s too")
        return self

    @property
    def chunked(self) -> str | None:
        """The chunked text column, if any."""
        return next((column for column, text in self.texts.items() if text.chunked), None)

    @property
    def text_key(self) -> str | None:
        """The payload key a chunked column's text is found under in the row's events: its name in
        ``payload``, else the column's own (the chunks keep it under ``_chunk``, never as a key)."""
        column = self.chunked
        if column is None:
            return None
        return (self.payload or {}).get(column, column)


class CdcMapping(StrictModel):
    tables: Annotated[dict[StrictStr, TableMapping], Field(min_length=1)] = Field(
        description="Debezium's schema.table (database.table for MySQL) -> its mapping")
    truncate: Literal["skip", "delete_all"] = Field(
        "skip", description="A TRUNCATE: skipped (counted), or every point of the collection deleted")
    unavailable_value_placeholder: Annotated[StrictStr, Field(min_length=1)] = Field(
        DEBEZIUM_PLACEHOLDER, description="Debezium's unavailable.value.placeholder, as its connector sets it "
        "('hex:...' too): a column holding it was not sent (an unchanged TOASTed value) and is never written")

    @field_validator("unavailable_value_placeholder")
    @classmethod
    def _placeholder_as_debezium_reads_it(cls, value: str) -> str:
        try:
            placeholder(value)
        except ValueError:
            raise ValueError("after 'hex:' Debezium reads hexadecimal digits, two per byte") from None
        return value


@dataclass(frozen=True)
class PointChange:
    """What one row change asks of one collection.

    ``upsert``: the whole point (``payload``; ``texts`` every vector to embed). ``patch``: ``payload``
    holds the keys to set (None: the column is gone), ``texts`` the texts to embed, and
    ``drop_vectors`` the vectors whose text is empty: with the row before, what changed; without it
    (a merge), every column that was sent. ``whole`` is the upsert a patch becomes where the point
    does not hold the row before the change: the point is missing, or its payload differs from
    ``holds`` (the mapped keys before; None values: absent), or, without ``holds``, only missing.
    ``delete``: the point. ``delete_all``: every point (a truncate). ``replaces``: a key update
    moved the row, delete this point first. ``unavailable_keys`` and ``unavailable_vectors``: the
    payload keys and vectors of columns the source did not send, which neither form writes."""

    kind: Literal["upsert", "patch", "delete", "delete_all", "nothing"]
    collection: str
    point_id: int | str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # vector name -> text
    drop_vectors: tuple[str, ...] = ()
    replaces: int | str | None = None
    whole: PointChange | None = None
    holds: dict[str, Any] | None = None
    unavailable_keys: tuple[str, ...] = ()
    unavailable_vectors: tuple[str, ...] = ()


def point_id(table: str, key_values: list[Any]) -> int | str:
    """A single non-negative integer key is the point id; any other key a UUID of table and values."""
    if len(key_values) == 1:
        value = key_values[0]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64:
            return value
    text = json.dumps([table, key_values], separators=(",", ":"), sort_keys=True, default=str)
    return str(uuid.uuid5(POINT_ID_NAMESPACE, text))


def plan_row_change(change: RowChange, mapping: CdcMapping) -> PointChange | str:
    """The change for Qdrant, or why the mapping cannot take it (a dead letter's message)."""
    table = mapping.tables.get(change.table)
    if table is None:
        return f"no mapping for table {change.table!r}"
    if change.kind == "truncate":
        kind: Literal["delete_all", "nothing"] = "delete_all" if mapping.truncate == "delete_all" else "nothing"
        return PointChange(kind, table.collection)
    row = change.before if change.kind == "delete" else change.after
    assert row is not None  # decode_change refuses changes without the row they need
    missing = [c for c in table.key if c not in row]
    if missing:
        return f"row of {change.table!r} lacks key column {', '.join(missing)}"
    pid = point_id(change.table, [row[c] for c in table.key])
    if change.kind == "delete":
        return PointChange("delete", table.collection, pid)
    payload, texts = _payload(table, row), _texts(table, row)
    before = change.before
    old = point_id(change.table, [before.get(c) for c in table.key]) if before is not None else pid
    replaces = old if change.kind == "update" and old != pid else None  # the key itself changed: the row moved
    unsent_keys, unsent_vectors = _unsent(table, change.unavailable)
    whole = PointChange("upsert", table.collection, pid, {k: v for k, v in payload.items() if v is not None}, texts,
                        replaces=replaces, unavailable_keys=unsent_keys, unavailable_vectors=unsent_vectors)
    if table.chunked is not None:
        # a chunked document: its whole row, whose text the chunk stage compares chunk by chunk; a text
        # the source did not send is unchanged: the columns sent go to every chunk, nothing else
        if table.chunked in change.unavailable:
            return replace(whole, kind="patch", payload=payload, texts={})
        return whole
    if change.kind == "update" and before is not None and replaces is None:
        old_payload, old_texts = _payload(table, before), _texts(table, before)
        changed = {k: v for k, v in payload.items() if k not in old_payload or old_payload[k] != v}
        changed |= {k: None for k in old_payload if k not in payload}
        new_texts = {v: t for v, t in texts.items() if old_texts.get(v) != t}
        dropped = tuple(sorted(v for v in old_texts if v not in texts))
        # where columns were not sent, the whole row only for a missing point: an upsert would wipe them
        return replace(whole, kind="patch", payload=changed, texts=new_texts, drop_vectors=dropped, whole=whole,
                       holds=None if change.unavailable else old_payload)
    if change.unavailable:
        # without the row before, a merge: an upsert would wipe what the point holds of the columns not sent
        empty = tuple(sorted(spec.vector for column, spec in table.texts.items()
                             if column in row and spec.vector not in texts))
        return replace(whole, kind="patch", payload=payload, drop_vectors=empty, whole=whole)
    # an insert, a snapshot row, or an update without the row before (Postgres without REPLICA
    # IDENTITY FULL) or to another key: the whole row
    return whole


def _payload(table: TableMapping, row: dict[str, Any]) -> dict[str, Any]:
    if table.payload is None:
        return dict(row)
    return {key: row[column] for column, key in table.payload.items() if column in row}


def _unsent(table: TableMapping, columns: frozenset[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The payload keys and vectors of the mapped columns the source did not send (a chunked text
    column's key is its ``text_key``, mapped in ``payload`` or not)."""
    keys = set(columns) if table.payload is None else {table.payload[c] for c in columns if c in table.payload}
    if table.chunked in columns and table.text_key is not None:
        keys.add(table.text_key)
    vectors = {table.texts[c].vector for c in columns if c in table.texts}
    return tuple(sorted(keys)), tuple(sorted(vectors))


def _texts(table: TableMapping, row: dict[str, Any]) -> dict[str, str]:
    """Vector name -> text, for the text columns that hold a non-empty string."""
    return {spec.vector: row[column] for column, spec in table.texts.items()
            if isinstance(row.get(column), str) and row[column].strip()}
