"""Debezium records -> the connector's own events (connector/domain/cdc.py): what each row change
becomes, and, over random histories of a table, that applying those events to the reference model
(connector/domain/semantics.py) leaves the collection equal to the table, embedding a text only
when it changed."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.cdc import CdcSkip, cdc_events
from connector.domain.cdc_mapping import CdcMapping
from connector.domain.changes import ChangeEvent, ReembedEvent, Rejection, UpsertEvent, normalize_id
from connector.domain.operations import Op, Vector, op_from_patch, update_vectors_op
from connector.domain.semantics import State, apply_all

MAPPING = CdcMapping.model_validate({"tables": {"public.products": {
    "collection": "products", "key": ["id"],
    "payload": {"title": "title", "description": "description", "price": "price"},
    "texts": {"description": {"vector": "body"}, "title": {"vector": "title", "model": "some/model"}}}},
    "truncate": "delete_all"})
SOURCE = {"connector": "postgresql", "db": "shop", "schema": "public", "table": "products", "lsn": 4096}


def record(op: str, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"before": before, "after": after, "source": SOURCE, "op": op}).encode()


def events(value: bytes | None) -> list[ChangeEvent]:
    parsed = cdc_events(value, MAPPING)
    assert isinstance(parsed, list), parsed
    return parsed


ROW = {"id": 7, "title": "Lamp", "description": "A warm desk lamp", "price": 19.99}


def test_an_insert_is_one_upsert_and_a_re_embed_per_further_text() -> None:
    upsert, reembed = events(record("c", after=ROW))
    assert isinstance(upsert, UpsertEvent)
    assert upsert.vector_name == "body"
    assert upsert.model is None
    assert upsert.points[0].text == "A warm desk lamp"
    assert upsert.points[0].payload == {
        "title": "Lamp", "description": "A warm desk lamp", "price": 19.99}
    assert isinstance(reembed, ReembedEvent)
    assert reembed.vector_name == "title"
    assert reembed.model == "some/model"
    assert reembed.points is not None
    assert reembed.points[0].text == "Lamp"
    assert upsert.event_id == "public.products@lsn:4096"


def test_a_price_update_is_one_set_payload_and_no_embedding() -> None:
    [patch] = events(record("u", ROW, {**ROW, "price": 24.5}))
    assert patch.op == "set_payload"
    assert patch.model_dump(include={"ids", "payload"}) == {
        "ids": [7], "payload": {"price": 24.5}}


def test_a_text_update_re_embeds_that_text_only() -> None:
    patch, reembed = events(record("u", ROW, {**ROW, "title": "Desk lamp"}))
    assert patch.op == "set_payload"
    assert isinstance(reembed, ReembedEvent)
    assert reembed.vector_name == "title"


def test_a_column_set_to_null_removes_the_key_and_its_vector() -> None:
    patch, drop = events(record("u", ROW, {**ROW, "description": None}))
    assert patch.model_dump(include={"payload"}) == {"payload": {"description": None}}  # null removes the key
    assert drop.op == "delete_vectors"
    assert drop.model_dump(include={"vector_names"}) == {"vector_names": ["body"]}
    [upsert, _] = events(record("c", after={**ROW, "price": None}))
    assert isinstance(upsert, UpsertEvent)
    assert "price" not in (upsert.points[0].payload or {})


def test_deletes_key_moves_and_truncates() -> None:
    [delete] = events(record("d", before=ROW))
    assert delete.op == "delete"
    assert delete.model_dump(include={"ids"}) == {"ids": [7]}
    moved = events(record("u", ROW, {**ROW, "id": 8}))
    assert [e.op for e in moved] == ["delete", "upsert", "reembed"]
    assert [normalize_id(i) for i in getattr(moved[0], "ids", [])] == [7]
    [everything] = events(record("t"))
    assert everything.op == "delete"
    assert everything.model_dump(include={"filter"}) == {"filter": {"must": []}}


def test_what_has_nothing_to_apply_is_skipped_with_its_reason() -> None:
    assert cdc_events(record("u", ROW, dict(ROW)), MAPPING) == CdcSkip("unchanged", "products")
    assert cdc_events(None, MAPPING) == CdcSkip("tombstone")
    assert cdc_events(b'{"ts_ms": 1}', MAPPING) == CdcSkip("heartbeat")
    skip_truncates = MAPPING.model_copy(update={"truncate": "skip"})
    assert cdc_events(record("t"), skip_truncates) == CdcSkip("truncate", "products")


def test_what_cannot_be_taken_is_refused_with_a_code() -> None:
    other = json.dumps({"before": None, "after": ROW, "op": "c", "source": {**SOURCE, "table": "orders"}}).encode()
    values = (other, b"[1]", b"\xff", record("c", after=ROW) * 3)
    refused = [cdc_events(v, MAPPING, max_event_bytes=300) for v in values]
    assert all(isinstance(r, Rejection) for r in refused)
    assert [r.code for r in refused if isinstance(r, Rejection)] == [
        "unmapped_change", "not_a_change_event", "not_a_change_event", "event_too_large"]
    huge = cdc_events(record("c", after={**ROW, "title": "x" * 100_001}), MAPPING)
    assert isinstance(huge, Rejection)
    assert huge.code == "schema_violation"
    assert "public.products" in huge.message


# --- random histories against the reference model -------------------------------------------------

def fake_embedding(text: str) -> Vector:
    """A deterministic stand-in for a model, so the model's state can be compared exactly."""
    return (float(len(text)), float(sum(map(ord, text)) % 997))


def ops_of(parsed: list[ChangeEvent], embedded: list[str]) -> list[Op]:
    """The ops the window would send for one record's events, embedding inline texts."""
    ops: list[Op] = []
    for position, event in enumerate(parsed):
        if isinstance(event, ReembedEvent):
            assert event.points is not None
            embedded += [p.text for p in event.points]
            vectors = {normalize_id(p.id): fake_embedding(p.text) for p in event.points}
            ops.append(update_vectors_op(vectors, event.vector_name or "", position))
            continue
        texts = {normalize_id(p.id): p.text for p in getattr(event, "points", []) if getattr(p, "text", None)}
        embedded += list(texts.values())
        ops.append(op_from_patch(event, position, {pid: fake_embedding(t) for pid, t in texts.items()}))
    return ops


text_value = st.one_of(st.none(), st.sampled_from(["", "  ", "lamp", "desk lamp", "a warm lamp"]))
row_value = st.fixed_dictionaries({"id": st.integers(0, 3), "title": text_value, "description": text_value,
                                   "price": st.one_of(st.none(), st.sampled_from([1.5, 2.0, 19.99]))})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["write", "delete"]), row_value), max_size=25), st.booleans())
def test_the_collection_follows_the_table(history: list[tuple[str, dict[str, Any]]], full_before: bool) -> None:
    table: dict[int, dict[str, Any]] = {}
    state: State = {}
    embedded: list[str] = []
    text_changes = 0
    for action, row in history:
        old = table.get(row["id"])
        if action == "delete":
            if old is None:
                continue
            value = record("d", before=old)
            del table[row["id"]]
        else:
            value = record("u" if old else "c", old if (old and full_before) else None, row)
            table[row["id"]] = row
            if old is None or not full_before:
                text_changes += sum(1 for c in ("title", "description") if (row[c] or "").strip())
            else:
                text_changes += sum(1 for c in ("title", "description")
                                    if (row[c] or "").strip() and row[c] != old[c])
        parsed = cdc_events(value, MAPPING)
        if isinstance(parsed, CdcSkip):
            continue
        assert isinstance(parsed, list), parsed
        assert not apply_all(state, ops_of(parsed, embedded))  # no op names a point that is not there
    expected = {pid: ({k: v for k, v in row.items() if k != "id" and v is not None},
                      {vector: fake_embedding(row[column]) for column, vector in (("title", "title"),
                       ("description", "body")) if (row[column] or "").strip()})
                for pid, row in table.items()}
    assert {pid: (p.payload, p.vectors) for pid, p in state.items()} == expected
    assert len(embedded) == text_changes  # one embedding per text that changed, none for anything else
