"""Debezium change events decoded (with and without embedded schemas) and planned by a mapping:
upserts for inserts and snapshot rows, only what changed for updates, deletes, truncates, ids."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.domain.cdc_mapping import CdcMapping, PointChange, plan_row_change, point_id
from connector.domain.debezium import NotAChange, RowChange, Skipped, column_value, decode_change

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
    assert change == PointChange("patch", "products", 7, {"price": 24.99})


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
