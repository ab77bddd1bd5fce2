"""Debezium change events decoded (with and without embedded schemas) and planned by a mapping:
upserts for inserts and snapshot rows, only what changed for updates (with the whole row beside
it), deletes, truncates, ids; Debezium's unavailable-value placeholder in every column type it
takes, never a value."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.domain.cdc_mapping import CdcMapping, PointChange, plan_row_change, point_id
from connector.domain.debezium import (
    DEBEZIUM_PLACEHOLDER,
    NotAChange,
    RowChange,
    Skipped,
    column_value,
    decode_change,
    placeholder,
)
from connector.errors import ConfigurationError
from connector.stream.cdc_mapping_file import load_cdc_mapping

ROW_SCHEMA = {"type": "struct", "optional": True, "name": "shop.public.products.Value", "fields": [
    {"field": "id", "type": "int32", "optional": False},
    {"field": "title", "type": "string", "optional": True},
    {"field": "description", "type": "string", "optional": True},
    {"field": "price", "type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
     "parameters": {"scale": "2", "connect.decimal.precision": "10"}},
    {"field": "released", "type": "int32", "optional": True, "name": "io.debezium.time.Date"},
    {"field": "updated_at", "type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp"},
    {"field": "attrs", "type": "string", "optional": True, "name": "io.debezium.data.Json"},
    {"field": "tags", "type": "array", "optional": True, "items": {"type": "string", "optional": True}},
]}
SOURCE = {"version": "3.6.1.Final", "connector": "postgresql", "name": "shop", "ts_ms": 1764700000000,
          "snapshot": "false", "db": "shop", "schema": "public", "table": "products", "lsn": 33_554_432}


def cents(value: int) -> str:
    return base64.b64encode(value.to_bytes(8, "big", signed=True).lstrip(b"\x00") or b"\x00").decode()


def row(**overrides: Any) -> dict[str, Any]:
    base = {"id": 7, "title": "Lamp", "description": "A warm desk lamp", "price": cents(1999), "released": 20_000,
            "updated_at": 1_764_700_000_123_456, "attrs": '{"color": "red"}', "tags": ["home", "light"]}
    return {**base, **overrides}


def envelope(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, *,
             schemas: bool = True) -> bytes:
    payload = {"before": before, "after": after, "source": SOURCE, "op": op, "ts_ms": 1764700000500}
    if not schemas:
        return json.dumps(payload).encode()
    schema = {"type": "struct", "name": "shop.public.products.Envelope",
              "fields": [{**ROW_SCHEMA, "field": "before"}, {**ROW_SCHEMA, "field": "after"},
                         {"field": "source", "type": "struct", "fields": []},
                         {"field": "op", "type": "string"}, {"field": "ts_ms", "type": "int64", "optional": True}]}
    return json.dumps({"schema": schema, "payload": payload}).encode()


MAPPING = CdcMapping.model_validate({"tables": {"public.products": {
    "collection": "products", "key": ["id"],
    "payload": {"title": "title", "price": "price", "released": "released", "updated_at": "updated_at",
                "attrs": "attrs", "tags": "tags", "description": "description"},
    "texts": {"description": {"vector": "dense"}, "title": {"vector": "title"}}}}})


def decoded(value: bytes) -> RowChange:
    change = decode_change(value)
    assert isinstance(change, RowChange), change
    return change


def test_an_insert_with_schemas_has_its_values_in_json_terms() -> None:
    change = decoded(envelope("c", None, row()))
    assert (change.kind, change.table, change.before) == ("create", "public.products", None)
    assert change.after == {"id": 7, "title": "Lamp", "description": "A warm desk lamp", "price": 19.99,
                            "released": "2024-10-04", "updated_at": "2025-12-02T18:26:40.123456Z",
                            "attrs": {"color": "red"}, "tags": ["home", "light"]}
    assert change.position["lsn"] == 33_554_432


def test_without_schemas_values_come_as_they_are() -> None:
    change = decoded(envelope("r", None, row(), schemas=False))
    assert change.kind == "read"
    assert change.after is not None
    assert change.after["price"] == cents(1999)  # no schema says it is a decimal
    assert change.after["released"] == 20_000


@pytest.mark.parametrize(("value", "skipped"), [
    (None, "tombstone"),
    (json.dumps({"ts_ms": 1764700000000}).encode(), "heartbeat"),
    (json.dumps({"source": SOURCE, "databaseName": "shop", "ddl": "ALTER TABLE products ADD c int",
                 "tableChanges": []}).encode(), "schema_change"),
])
def test_heartbeats_schema_changes_and_tombstones_are_skipped(value: bytes | None, skipped: str) -> None:
    assert decode_change(value) == Skipped(skipped)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "reason"), [
    (b"\xff", "not JSON"), (b"[1]", "JSON object"), (b'{"before": null}', "no 'op'"),
    (json.dumps({"op": "x", "source": SOURCE}).encode(), "unknown op"),
    (json.dumps({"op": "c", "after": {"id": 1}}).encode(), "no source.table"),
    (json.dumps({"op": "c", "after": None, "source": SOURCE}).encode(), "without 'after'"),
    (json.dumps({"op": "d", "before": None, "source": SOURCE}).encode(), "REPLICA IDENTITY"),
    (envelope("c", None, row(price="not base64!")), "does not fit its schema"),
])
def test_what_is_not_a_change_says_why(value: bytes, reason: str) -> None:
    result = decode_change(value)
    assert isinstance(result, NotAChange)
    assert reason in result.message


@given(st.integers(min_value=-(10**30), max_value=10**30), st.integers(min_value=0, max_value=12))
def test_decimals_decode_to_their_value(unscaled: int, scale: int) -> None:
    raw = base64.b64encode(unscaled.to_bytes((unscaled.bit_length() + 8) // 8 or 1, "big", signed=True)).decode()
    value = column_value(raw, {"name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": str(scale)}})
    assert value == (unscaled if scale == 0 else pytest.approx(unscaled / 10**scale, rel=1e-15))


def test_times_of_every_precision() -> None:
    assert column_value(3_723_000, {"name": "io.debezium.time.Time"}) == "01:02:03"
    assert column_value(3_723_000_001, {"name": "io.debezium.time.MicroTime"}) == "01:02:03.000001"
    assert column_value(1_000, {"name": "io.debezium.time.Timestamp"}) == "1970-01-01T00:00:01Z"
    assert column_value(1_500_000, {"name": "io.debezium.time.NanoTimestamp"}) == "1970-01-01T00:00:00.001500Z"
    assert column_value({"scale": 3, "value": cents(-12345)}, {"name": "io.debezium.data.VariableScaleDecimal"}) \
        == pytest.approx(-12.345)


def plan(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> PointChange:
    planned = plan_row_change(decoded(envelope(op, before, after)), MAPPING)
    assert isinstance(planned, PointChange), planned
    return planned


def test_an_insert_or_snapshot_row_is_an_upsert_with_every_text() -> None:
    for op in ("c", "r"):
        change = plan(op, None, row())
        assert (change.kind, change.collection, change.point_id) == ("upsert", "products", 7)
        assert change.texts == {"dense": "A warm desk lamp", "title": "Lamp"}
        assert change.payload["price"] == 19.99


def test_a_price_update_changes_one_key_and_embeds_nothing() -> None:
    change = plan("u", row(), row(price=cents(2499)))
    assert (change.kind, change.point_id, change.payload, change.texts, change.drop_vectors) == (
        "patch", 7, {"price": 24.99}, {}, ())
    # beside it the whole row, for a point that does not hold the row before (holds)
    assert change.whole == plan("c", None, row(price=cents(2499)))
    assert change.holds == {"title": "Lamp", "price": 19.99, "released": "2024-10-04",
                            "updated_at": "2025-12-02T18:26:40.123456Z", "attrs": {"color": "red"},
                            "tags": ["home", "light"], "description": "A warm desk lamp"}


def test_a_text_update_embeds_only_that_text() -> None:
    change = plan("u", row(), row(description="A cold desk lamp", tags=["home"]))
    assert change.kind == "patch"
    assert change.payload == {"description": "A cold desk lamp", "tags": ["home"]}
    assert change.texts == {"dense": "A cold desk lamp"}


def test_a_text_emptied_drops_its_vector() -> None:
    change = plan("u", row(), row(title=None))
    assert change.drop_vectors == ("title",)
    assert change.texts == {}
    assert change.payload == {"title": None}


def test_an_update_without_before_is_the_whole_row() -> None:
    change = plan("u", None, row())  # Postgres without REPLICA IDENTITY FULL
    assert change.kind == "upsert"
    assert set(change.texts) == {"dense", "title"}


def test_a_key_update_moves_the_point() -> None:
    change = plan("u", row(), row(id=8))
    assert (change.kind, change.point_id, change.replaces) == ("upsert", 8, 7)


def test_delete_and_truncate() -> None:
    assert plan("d", row(), None) == PointChange("delete", "products", 7)
    truncate = json.dumps({"op": "t", "source": SOURCE, "before": None, "after": None}).encode()
    assert plan_row_change(decoded(truncate), MAPPING) == PointChange("nothing", "products")
    wiping = MAPPING.model_copy(update={"truncate": "delete_all"})
    assert plan_row_change(decoded(truncate), wiping) == PointChange("delete_all", "products")


def test_what_the_mapping_cannot_take_says_why() -> None:
    other = {**SOURCE, "table": "orders"}
    unmapped = RowChange("create", "public.orders", None, {"id": 1}, other)
    assert "no mapping for table 'public.orders'" in str(plan_row_change(unmapped, MAPPING))
    keyless = RowChange("create", "public.products", None, {"title": "x"}, SOURCE)
    assert "lacks key column id" in str(plan_row_change(keyless, MAPPING))


@given(st.lists(st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=20)),
                min_size=1, max_size=3))
def test_point_ids_are_integers_or_stable_uuids(key: list[Any]) -> None:
    pid = point_id("public.t", key)
    assert pid == point_id("public.t", list(key))  # the same row, the same point, every run
    if len(key) == 1 and isinstance(key[0], int) and 0 <= key[0] < 2**64:
        assert pid == key[0]
    else:
        assert uuid.UUID(str(pid)).version == 5
        assert pid != point_id("public.other", key)


# --- Debezium's unavailable-value placeholder --------------------------------------------------

BYTES_SCHEMA = {"type": "struct", "optional": True, "fields": [
    {"field": "id", "type": "int32"}, {"field": "body", "type": "string", "optional": True},
    {"field": "blob", "type": "bytes", "optional": True},
    {"field": "doc", "type": "string", "optional": True, "name": "io.debezium.data.Json"},
    {"field": "tags", "type": "array", "optional": True, "items": {"type": "string"}},
    {"field": "counts", "type": "array", "optional": True, "items": {"type": "int32"}},
    {"field": "extra", "type": "map", "optional": True, "keys": {"type": "string"}, "values": {"type": "string"}},
    {"field": "price", "type": "int32", "optional": True}]}


def toasted(before: dict[str, Any] | None, after: dict[str, Any], *, schemas: bool = True,
            unavailable: str = DEBEZIUM_PLACEHOLDER) -> RowChange:
    """An update as Debezium 3.6 writes it for the table of BYTES_SCHEMA (checked against the real one in tests/cdc)."""
    payload = {"before": before, "after": after, "op": "u", "source": SOURCE}
    schema = {"type": "struct", "fields": [{**BYTES_SCHEMA, "field": "before"}, {**BYTES_SCHEMA, "field": "after"},
                                           {"field": "source", "type": "struct", "fields": []},
                                           {"field": "op", "type": "string"}]}
    value = json.dumps({"schema": schema, "payload": payload} if schemas else payload).encode()
    change = decode_change(value, placeholder(unavailable))
    assert isinstance(change, RowChange), change
    return change


def unavailable_row(setting: str = DEBEZIUM_PLACEHOLDER) -> dict[str, Any]:
    """Every column as Debezium sends it when PostgreSQL did not log its (TOASTed, unchanged) value."""
    raw = bytes.fromhex(setting[4:]) if setting.startswith("hex:") else setting.encode()
    text = raw.decode(errors="replace")  # Java's new String(bytes)
    java_bytes = [b - 256 if b > 127 else b for b in raw]  # an int[] placeholder: the bytes, signed
    return {"id": 7, "body": text, "blob": base64.b64encode(raw).decode(), "doc": text, "tags": [text],
            "counts": java_bytes, "extra": {text: text}, "price": 25}


@pytest.mark.parametrize("schemas", [True, False])
@pytest.mark.parametrize("setting", [DEBEZIUM_PLACEHOLDER, "n/a", "hex:00ff10"])
def test_a_placeholder_in_any_column_type_is_no_value(schemas: bool, setting: str) -> None:
    change = toasted(None, unavailable_row(setting), schemas=schemas, unavailable=setting)
    assert change.after == {"id": 7, "price": 25}
    assert change.unavailable == {"body", "blob", "doc", "tags", "counts", "extra"}


def test_other_placeholders_and_real_values_are_values() -> None:
    row = {"id": 7, "body": "some text", "blob": base64.b64encode(b"bytes").decode(), "doc": '{"a": 1}',
           "tags": ["a", DEBEZIUM_PLACEHOLDER], "counts": [1, 2], "extra": {"k": "v"}, "price": 25}
    change = toasted(None, row)
    assert change.unavailable == frozenset()
    assert change.after is not None
    assert change.after["doc"] == {"a": 1}
    # a placeholder the mapping does not name is a value: Debezium would not send it
    other = toasted(None, {**row, "body": "n/a"})
    assert other.after is not None
    assert other.after["body"] == "n/a"
    # with schemas, a text column holding the placeholder's base64 is text, not an unsent binary value
    encoded = base64.b64encode(DEBEZIUM_PLACEHOLDER.encode()).decode()
    assert toasted(None, {**row, "body": encoded}).unavailable == frozenset()
    assert toasted(None, {**row, "blob": DEBEZIUM_PLACEHOLDER}).unavailable == frozenset()


def test_an_unsent_value_is_the_value_before_when_the_row_before_has_it() -> None:
    """REPLICA IDENTITY FULL: the row before is whole (Debezium 3.6 fills the row after from it too)."""
    before = {"id": 7, "body": "a long text", "blob": None, "doc": '{"a": 1}', "tags": ["x"], "counts": None,
              "extra": None, "price": 20}
    change = toasted(before, {**before, "body": DEBEZIUM_PLACEHOLDER, "doc": DEBEZIUM_PLACEHOLDER, "price": 25})
    assert change.unavailable == frozenset()
    assert change.after is not None
    assert (change.after["body"], change.after["doc"], change.after["price"]) == ("a long text", {"a": 1}, 25)
    # a value not sent in the row before is unknown there: left out, so the value after counts as changed
    blind = toasted({**before, "body": DEBEZIUM_PLACEHOLDER}, {**before, "price": 25})
    assert blind.before is not None
    assert "body" not in blind.before
    assert blind.unavailable == frozenset()


TOAST_MAPPING = CdcMapping.model_validate({"tables": {"public.products": {
    "collection": "products", "key": ["id"],
    "payload": {"body": "body", "doc": "doc", "price": "price", "tags": "tags"},
    "texts": {"body": {"vector": "body"}}}}})


def test_without_the_row_before_a_row_with_unsent_columns_is_a_merge() -> None:
    """PostgreSQL's default REPLICA IDENTITY: an update of the price of a row with a TOASTed text."""
    change = toasted(None, {**unavailable_row(), "price": 26, "tags": None})
    planned = plan_row_change(change, TOAST_MAPPING)
    assert isinstance(planned, PointChange)
    # the columns sent are set (a NULL removes its key); nothing of those not sent is written or embedded
    assert (planned.kind, planned.payload, planned.texts, planned.drop_vectors) == (
        "patch", {"price": 26, "tags": None}, {}, ())
    assert (planned.unavailable_keys, planned.unavailable_vectors, planned.holds) == (("body", "doc"), ("body",), None)
    # where the point does not exist, the whole row as far as it was sent
    assert planned.whole == PointChange("upsert", "products", 7, {"price": 26}, unavailable_keys=("body", "doc"),
                                        unavailable_vectors=("body",))
    # a text sent is embedded, an emptied one loses its vector
    sent = plan_row_change(toasted(None, {**unavailable_row(), "body": "new text"}), TOAST_MAPPING)
    assert isinstance(sent, PointChange)
    assert (sent.kind, sent.texts, sent.payload["body"]) == ("patch", {"body": "new text"}, "new text")
    emptied = plan_row_change(toasted(None, {**unavailable_row(), "body": None}), TOAST_MAPPING)
    assert isinstance(emptied, PointChange)
    assert (emptied.drop_vectors, emptied.payload["body"]) == (("body",), None)


def test_a_chunked_text_column_not_sent_is_named_by_its_key_mapped_or_not() -> None:
    """The chunk stage learns from the key that the text was not sent (a document without chunks then
    writes nothing instead of failing): the key is the column's name where ``payload`` leaves it out."""
    for payload, key in (({"price": "price"}, "body"), ({"price": "price", "body": "content"}, "content")):
        mapping = CdcMapping.model_validate({"tables": {"public.products": {
            "collection": "products", "key": ["id"], "payload": payload, "texts": {"body": {"chunked": True}}}}})
        planned = plan_row_change(toasted(None, {**unavailable_row(), "price": 26}), mapping)
        assert isinstance(planned, PointChange)
        assert key in planned.unavailable_keys, (payload, planned)


def test_with_the_row_before_a_change_of_nothing_mapped_still_carries_the_whole_row() -> None:
    before = {"id": 7, "body": "text", "blob": None, "doc": None, "tags": None, "counts": None, "extra": None,
              "price": 20}
    planned = plan_row_change(toasted(before, {**before, "counts": [1]}), TOAST_MAPPING)
    assert isinstance(planned, PointChange)
    assert (planned.kind, planned.payload, planned.texts) == ("patch", {}, {})
    assert planned.holds == {"body": "text", "doc": None, "price": 20, "tags": None}
    assert planned.whole is not None
    assert (planned.whole.kind, planned.whole.payload, planned.whole.texts) == (
        "upsert", {"body": "text", "price": 20}, {"body": "text"})


def test_a_placeholder_debezium_could_not_read_is_refused_with_the_mapping(tmp_path: Path) -> None:
    """At start, as any mistake in the mapping file: one line, exit 78 (docs/errors.md)."""
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("tables: {public.t: {collection: t, key: [id]}}\nunavailable_value_placeholder: hex:zz\n")
    with pytest.raises(ConfigurationError, match="unavailable_value_placeholder: Value error, after 'hex:'"):
        load_cdc_mapping(mapping)
    mapping.write_text("tables: {public.t: {collection: t, key: [id]}}\nunavailable_value_placeholder: hex:5f5F\n")
    assert load_cdc_mapping(mapping).unavailable_value_placeholder == "hex:5f5F"
