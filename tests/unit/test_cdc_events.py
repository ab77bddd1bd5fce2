"""Debezium records -> the connector's own events (connector/domain/cdc.py): what each row change
becomes, and, over random histories of a table, that the windows' choice of form
(connector/stream/window/rows.py) and those events applied to the reference model
(connector/domain/semantics.py) leave the collection equal to the table, embedding a text only
when it changed: with columns Debezium did not send (its placeholder) never written, and points
lost from Qdrant healed by the row's next change."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.cdc import CdcSkip, RowEvents, cdc_events
from connector.domain.cdc_mapping import CdcMapping
from connector.domain.changes import ChangeEvent, ReembedEvent, Rejection, UpsertEvent, normalize_id
from connector.domain.debezium import DEBEZIUM_PLACEHOLDER
from connector.domain.operations import Op, Vector, op_from_patch, update_vectors_op
from connector.domain.semantics import PointState, State, apply_all, copy_state
from connector.settings import Settings
from connector.stream.window.items import Item, Record
from connector.stream.window.parse import parse_cdc_record
from connector.stream.window.rows import choose

MAPPING = CdcMapping.model_validate({"tables": {"public.products": {
    "collection": "products", "key": ["id"],
    "payload": {"title": "title", "description": "description", "price": "price"},
    "texts": {"description": {"vector": "body"}, "title": {"vector": "title", "model": "some/model"}}}},
    "truncate": "delete_all"})
SOURCE = {"connector": "postgresql", "db": "shop", "schema": "public", "table": "products", "lsn": 4096}
SETTINGS = Settings()


def record(op: str, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"before": before, "after": after, "source": SOURCE, "op": op}).encode()


def row_events(value: bytes | None, **options: int) -> RowEvents:
    parsed = cdc_events(value, MAPPING, **options)
    assert isinstance(parsed, RowEvents), parsed
    return parsed


def events(value: bytes | None) -> list[ChangeEvent]:
    return row_events(value).events


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
    update = row_events(record("u", ROW, {**ROW, "price": 24.5}))
    [patch] = update.events
    assert patch.op == "set_payload"
    assert patch.model_dump(include={"ids", "payload"}) == {
        "ids": [7], "payload": {"price": 24.5}}
    # beside it the whole row, for a point that does not hold the row before
    assert update.whole == events(record("c", after={**ROW, "price": 24.5}))
    assert update.holds == {"title": "Lamp", "description": "A warm desk lamp", "price": 19.99}


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
    unchanged = row_events(record("u", ROW, dict(ROW)))  # skipped where the point holds the row (rows.py)
    assert unchanged.events == []
    assert unchanged.whole == events(record("c", after=ROW))
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
    odd = json.dumps({"before": None, "after": ROW, "op": "c", "source": {**SOURCE, "lsn": "9" * 300}}).encode()
    unfit = cdc_events(odd, MAPPING)  # its position in the log is too long for an event id
    assert isinstance(unfit, Rejection)
    assert unfit.code == "schema_violation"
    assert "public.products" in unfit.message


def test_a_text_over_the_limit_is_embedded_from_its_first_characters_and_costs_nothing_else() -> None:
    long = "word " * 20_001  # 100,005 characters: more than an event's text may hold
    upsert, reembed = events(record("c", after={**ROW, "description": long}))
    assert isinstance(upsert, UpsertEvent)
    assert upsert.points[0].text == long[:100_000]
    assert (upsert.points[0].payload or {})["description"] == long  # the payload keeps it whole
    assert isinstance(reembed, ReembedEvent)
    assert row_events(record("c", after={**ROW, "description": long})).cut == {"body": len(long)}
    shorter = row_events(record("u", ROW, {**ROW, "title": "Desk lamp"}), max_text_chars=4)
    assert [e.points[0].text for e in shorter.events if isinstance(e, ReembedEvent) and e.points] == ["Desk"]
    assert shorter.cut == {"title": 9, "body": 16}  # the whole row's description too


# --- random histories against the reference model -------------------------------------------------


def fake_embedding(text: str) -> Vector:
    """A deterministic stand-in for a model, so the model's state can be compared exactly."""
    return (float(len(text)), float(sum(map(ord, text)) % 997))


def ops_of(items: list[Item], embedded: list[str]) -> list[Op]:
    """The ops a window sends for its items (the chosen forms), embedding inline texts."""
    ops: list[Op] = []
    for item in items:
        event = item.event
        if event is None or item.skipped or item.error is not None:
            continue
        if isinstance(event, ReembedEvent):
            assert event.points is not None
            embedded += [p.text for p in event.points]
            vectors = {normalize_id(p.id): fake_embedding(p.text) for p in event.points}
            ops.append(update_vectors_op(vectors, event.vector_name or "", item.position))
            continue
        texts = {normalize_id(p.id): p.text for p in getattr(event, "points", []) if getattr(p, "text", None)}
        embedded += list(texts.values())
        ops.append(op_from_patch(event, item.position, {pid: fake_embedding(t) for pid, t in texts.items()}))
    return ops


TEXTS = (("title", "title"), ("description", "body"))  # column, vector
text_value = st.one_of(st.none(), st.sampled_from(["", "  ", "lamp", "desk lamp", "a warm lamp"]))
row_value = st.fixed_dictionaries({"id": st.integers(0, 3), "title": text_value, "description": text_value,
                                   "price": st.one_of(st.none(), st.sampled_from([1.5, 2.0, 19.99]))})
# write: an insert or an update (the identity and which unchanged texts Debezium sends as its
# placeholder drawn beside it); price: an update of the price alone; delete; lose: the point
# deleted behind the connector's back
action = st.one_of(st.tuples(st.sampled_from(["write", "price"]), row_value, st.booleans(),
                             st.sets(st.sampled_from(["title", "description"]))),
                   st.tuples(st.sampled_from(["delete", "lose"]), row_value, st.just(False), st.just(frozenset())))


def present(row: dict[str, Any]) -> dict[str, Any]:
    """A row's point as the connector should hold it: non-null columns, a vector per non-empty text."""
    return {"payload": {k: v for k, v in row.items() if k != "id" and v is not None},
            "vectors": {vector: fake_embedding(row[column]) for column, vector in TEXTS
                        if isinstance(row.get(column), str) and row[column].strip()}}


@settings(max_examples=300, deadline=None)
@given(st.lists(action, max_size=25), st.lists(st.integers(1, 6), max_size=10), st.sets(st.integers(0, 3)))
def test_the_collection_follows_the_table(history: list[tuple[str, dict[str, Any], bool, set[str]]],
                                          windows: list[int], never_written: set[int]) -> None:
    """Windows of random row changes, of rows some of which never reached Qdrant or were lost from it:
    every point ends as the row, but for columns Debezium never sent while the point lacked them,
    which it lacks (nothing invented: the placeholder is never a value), and no event names a
    point that is not there (nothing dead-lettered for it)."""
    table: dict[int, dict[str, Any]] = {pid: {"id": pid, "title": "lamp", "description": "desk lamp", "price": 2.0}
                                         for pid in never_written}  # rows whose first record was lost
    held: dict[int, dict[str, Any]] = {}  # what the point should hold: the columns sent since it was written
    unseen = set(never_written)  # rows not in Qdrant until their next change
    state: State = {}
    embedded: list[str] = []
    expected_embeddings = 0
    values: list[bytes | None] = []
    sizes = iter(windows)

    def flush() -> None:
        """Apply the records so far as windows, of the drawn sizes."""
        nonlocal values
        while values:
            size = next(sizes, len(values))
            window, values = values[:size], values[size:]
            items: list[Item] = []
            for offset, value in enumerate(window):
                items += parse_cdc_record(len(items), Record("t", 0, offset, value), SETTINGS, MAPPING)
            assert all(item.error is None for item in items), [item.error for item in items]
            choose(items, copy_state(state))
            assert not apply_all(state, ops_of(items, embedded))  # no op names a point that is not there

    for act, drawn, full, toasted in history:
        pid, old = drawn["id"], table.get(drawn["id"])
        row = {**old, "price": drawn["price"]} if act == "price" and old is not None else drawn
        if act == "lose":
            flush()
            state.pop(pid, None)
            held.pop(pid, None)
            unseen.add(pid)
            continue
        if act == "delete":
            if old is not None:
                values.append(record("d", before=old))
                del table[pid]
                held.pop(pid, None)
                unseen.discard(pid)
            continue
        unseen.discard(pid)
        # PostgreSQL logs an unchanged TOASTed value as unchanged: Debezium sends its placeholder
        unsent = {c for c in toasted if old is not None and old[c] == row[c] and row[c]}
        after = {**row, **dict.fromkeys(unsent, DEBEZIUM_PLACEHOLDER)}
        table[pid] = row
        if old is None:
            values.append(record("c", None, row))
            held[pid] = dict(row)
            expected_embeddings += len(present(row)["vectors"])
            continue
        before = old if full else None
        values.append(record("u", before, after))
        point = held.get(pid)
        sent = {c: v for c, v in row.items() if c not in unsent or full}  # FULL: the value before is the value
        if point is None or (full and point != old):  # the whole row: the point is missing, or not the row before
            held[pid] = sent
            expected_embeddings += len(present(sent)["vectors"])
        else:
            expected_embeddings += sum(1 for column, _ in TEXTS if column in sent and (sent[column] or "").strip()
                                       and (not full or sent[column] != old[column]))
            held[pid] = {**point, **sent}
    flush()
    assert {pid: {"payload": p.payload, "vectors": p.vectors} for pid, p in state.items()} == {
        pid: present(row) for pid, row in held.items()}
    assert sorted(state) == sorted(pid for pid in table if pid not in unseen)
    for pid, point in held.items():  # where a point holds a column, it holds the table's value
        assert all(table[pid][column] == value for column, value in point.items()), (table[pid], point)
    assert DEBEZIUM_PLACEHOLDER not in str([(p.payload, embedded) for p in state.values()])
    assert len(embedded) == expected_embeddings  # one embedding per text that changed or was missing


def test_a_window_picks_the_whole_row_for_a_missing_point_and_the_change_for_one_that_holds_it() -> None:
    items: list[Item] = []
    for offset, value in enumerate([record("u", ROW, {**ROW, "price": 2.0}),  # 7 is not in Qdrant: the whole row
                                    record("u", {**ROW, "price": 2.0}, {**ROW, "price": 3.0}),  # then it holds it
                                    record("u", {**ROW, "id": 8}, {**ROW, "id": 8})]):  # 8 holds it: unchanged
        items += parse_cdc_record(len(items), Record("t", 0, offset, value), SETTINGS, MAPPING)
    choose(items, {8: PointState(payload={"title": "Lamp", "description": "A warm desk lamp", "price": 19.99})})
    taken = [(item.record.offset, item.event.op if item.event else None) for item in items if not item.skipped]
    assert taken == [(0, "upsert"), (0, "reembed"), (1, "set_payload")]
    assert [item.skip_reason for item in items if item.record.offset == 2 and item.part_of is None] == ["unchanged"]
