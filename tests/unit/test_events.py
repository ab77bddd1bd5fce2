"""The parser never raises on bad input, and says why it rejects."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.changes import (
    PATCH_OPS,
    DeleteEvent,
    FenceRecord,
    ReembedEvent,
    Rejection,
    SetPayloadEvent,
    filter_of,
    parse_change,
    point_ids_of,
    tombstone_delete,
)
from connector.settings import Settings, ShardKeyRule
from connector.stream.window.items import Item, Record
from connector.stream.window.parse import parse_record


def _patch(**fields) -> bytes:
    return json.dumps({"schema_version": 1, "collection": "docs", **fields}).encode()


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "empty_record"),
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"\xff", "invalid_utf8"),
        (b"[1,2]", "schema_violation"),
        (b'{"schema_version": 1, "schema_version": 1}', "invalid_json"),
        (
            b'{"schema_version": 1, "collection": "d", "op": "upsert", "points": [{"id": 1, "vector": [Infinity]}]}',
            "invalid_json",
        ),
        (
            _patch(op="delete", ids=[1]).replace(b'"schema_version": 1', b'"schema_version": 9'),
            "unsupported_schema_version",
        ),
        (_patch(op="frobnicate", ids=[1]), "unknown_operation"),
        (_patch(op="delete"), "schema_violation"),
        (_patch(op="delete", ids=[1], extra=1), "schema_violation"),
        (
            _patch(op="update_vectors", points=[{"id": 1, "vector": {"s": {"indices": [1, 2], "values": [1.0]}}}]),
            "schema_violation",
        ),
        (_patch(op="delete", ids=list(range(20))), "too_many_ids"),
        (_patch(op="set_payload", ids=[1], payload={"x": "y" * 5000}), "event_too_large"),
        (_patch(kind="reembed", points=[{"id": 1, "text": "x"}]), "wrong_topic"),
        (b"[" * 50_000 + b"]" * 50_000, "invalid_json"),
    ],
)
def test_rejections_have_codes(value: bytes | None, code: str) -> None:
    limit = 4096 if value is None or len(value) < 10_000 else 1_000_000  # the deep-nesting case is large
    result = parse_change(value, expect="patch", max_event_bytes=limit, max_ids_per_event=10)
    assert isinstance(result, Rejection)
    assert result.code == code, result
    assert result.message


def test_a_valid_patch_keeps_collection_and_normalizes_nothing_it_should_not() -> None:
    event = parse_change(_patch(op="set_payload", ids=[1], key="a.b", payload={"x": None}), expect="patch")
    assert isinstance(event, SetPayloadEvent)
    assert event.key == "a.b"
    assert event.payload == {"x": None}


FLT = {"must": [{"key": "tag", "match": {"value": "x"}}]}


@pytest.mark.parametrize("fields", [
    {"op": "upsert", "points": [{"id": 1, "vector": [0.5]}]},
    {"op": "update_vectors", "points": [{"id": 1, "vector": {"v": [0.5]}}]},
    *({"op": op, "ids": [1], **extra} for op, extra in [
        ("delete", {}), ("set_payload", {"payload": {"a": 1}}), ("overwrite_payload", {"payload": {}}),
        ("delete_payload", {"keys": ["a"]}), ("clear_payload", {}), ("delete_vectors", {"vector_names": ["v"]})]),
    *({"op": op, "filter": FLT, **extra} for op, extra in [
        ("delete", {}), ("set_payload", {"payload": {"a": 1}}), ("clear_payload", {})]),
    {"kind": "reembed", "filter": FLT, "text_field": "body"},
    {"kind": "reembed", "ids": [1], "text_field": "body"},
])
def test_the_filter_of_every_kind_of_event(fields: dict) -> None:
    event = parse_change(_patch(**fields), expect="reembed" if "kind" in fields else "patch")
    assert not isinstance(event, (Rejection, FenceRecord)), event
    assert filter_of(event) == getattr(event, "filter", None) == fields.get("filter")


def test_reembed_by_filter() -> None:
    event = parse_change(
        json.dumps({"schema_version": 1, "kind": "reembed", "collection": "docs", "text_field": "body",
                    "filter": {"must": [{"key": "user_id", "match": {"value": "u-123"}}]}}).encode(),
        expect="reembed",
    )
    assert isinstance(event, ReembedEvent)
    assert event.filter is not None


FUZZ_EXAMPLES = int(os.environ.get("QCC_FUZZ_EXAMPLES", "1500"))  # 100000+ for the on-demand run


# every code parse_change answers with (the dead-letter reasons of the parser)
PARSER_CODES = {"empty_record", "event_too_large", "invalid_utf8", "invalid_json", "schema_violation",
                "unsupported_schema_version", "wrong_topic", "unknown_operation", "too_many_ids",
                "blast_radius_share_exceeded"}


def _accepted_kind_fits(result: object, expect: str) -> bool:
    """An accepted record is a fence (on either topic) or an event of the topic's own kind."""
    if isinstance(result, FenceRecord):
        return True
    return isinstance(result, ReembedEvent) if expect == "reembed" else getattr(result, "kind", None) == "patch"


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(value: bytes) -> None:
    """Bytes that are not UTF-8, not JSON or not a JSON object get that reason, per the
    standard library's own reading; anything accepted was a JSON object of the right kind."""
    for expect in ("patch", "reembed"):
        result = parse_change(value, expect=expect)  # type: ignore[arg-type]
        try:
            document = json.loads(value.decode("utf-8"))
        except UnicodeDecodeError:
            assert isinstance(result, Rejection), result
            assert result.code == "invalid_utf8", result
            continue
        except ValueError:
            assert isinstance(result, Rejection), result
            assert result.code == "invalid_json", result
            continue
        if isinstance(result, Rejection):
            assert result.code in PARSER_CODES, result
            assert result.message, result
            if not isinstance(document, dict):
                assert result.code == "schema_violation", result
        else:
            assert isinstance(document, dict), (value, result)
            assert _accepted_kind_fits(result, expect), (value, result)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@pytest.mark.slow
@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(
    st.fixed_dictionaries(
        {"schema_version": st.just(1), "collection": st.just("docs")},
        optional={
            "op": st.sampled_from(["upsert", "delete", "set_payload", "update_vectors", "x"]),
            "ids": JSON,
            "filter": JSON,
            "payload": JSON,
            "points": JSON,
            "key": JSON,
            "keys": JSON,
            "vector_names": JSON,
            "kind": st.sampled_from(["patch", "reembed"]),
        },
    )
)
def test_arbitrary_json_events_never_raise(document: dict) -> None:
    """Each answer is an event of the topic's kind or a rejection with the reason the document
    shows: not JSON (an infinite number), a kind for the other topic, an op that does not
    exist; any other rejection keeps the collection it names."""
    try:
        json.dumps(document, allow_nan=False)
        standard = True
    except ValueError:  # an infinite float: Python writes Infinity, which is not JSON
        standard = False
    for expect in ("patch", "reembed"):
        result = parse_change(json.dumps(document).encode(), expect=expect)  # type: ignore[arg-type]
        kind = document.get("kind", "patch")
        if not standard:
            assert isinstance(result, Rejection), result
            assert result.code == "invalid_json", result
            continue
        if kind != expect:
            assert isinstance(result, Rejection), result
            assert result.code == "wrong_topic", result
        elif expect == "patch" and document.get("op") not in PATCH_OPS:
            assert isinstance(result, Rejection), result
            assert result.code == "unknown_operation", result
        if isinstance(result, Rejection):
            assert result.code in PARSER_CODES, result
            assert result.message, result
            assert result.collection == "docs", result
        else:
            assert _accepted_kind_fits(result, expect), result
            assert result.collection == "docs", result


@pytest.mark.parametrize(("key", "collection", "point"), [
    (b"docs/42", "docs", 42),
    (b"docs/18446744073709551615", "docs", 2**64 - 1),
    (b"my-coll.v2/550E8400-E29B-41D4-A716-446655440000", "my-coll.v2", "550e8400-e29b-41d4-a716-446655440000"),
])
def test_a_tombstone_deletes_the_point_its_key_names(key: bytes, collection: str, point: int | str) -> None:
    event = parse_change(None, expect="patch", key=key, tombstones="delete")
    assert isinstance(event, DeleteEvent)
    assert (event.collection, point_ids_of(event)) == (collection, [point])


@pytest.mark.parametrize("key", [None, b"", b"docs", b"docs/", b"docs/x", b"docs/-1", b"docs/18446744073709551616",
                                 b"bad name/1", b"/1", b"\xff\xfe/1", b"docs/1/2", "docs/\u0661".encode(),
                                 b"docs/007", b"docs/+7", b"docs/ 7", b"docs/12345678901234567890123456789012",
                                 b"docs/{550e8400-e29b-41d4-a716-446655440000}",
                                 b"docs/550e8400e29b41d4a716446655440000",
                                 b"docs/urn:uuid:550e8400-e29b-41d4-a716-446655440000",
                                 b"docs/ 550e8400-e29b-41d4-a716-446655440000"])
def test_a_tombstone_whose_key_names_no_point_is_dead_lettered(key: bytes | None) -> None:
    rejected = parse_change(None, expect="patch", key=key, tombstones="delete")
    assert isinstance(rejected, Rejection)
    assert rejected.code == "empty_record"
    assert "collection/point-id" in rejected.message


def test_tombstones_dead_lettered_by_setting_and_on_the_reembed_topic() -> None:
    for expect, setting in (("patch", "dead_letter"), ("reembed", "delete")):
        rejected = parse_change(None, expect=expect, key=b"docs/1", tombstones=setting)  # type: ignore[arg-type]
        assert isinstance(rejected, Rejection)
        assert rejected.code == "empty_record"


@given(st.binary(max_size=300) | st.text(max_size=100).map(lambda t: t.encode()))
def test_any_tombstone_key_deletes_one_point_or_is_refused(key: bytes) -> None:
    answer = tombstone_delete(key)
    assert isinstance(answer, (DeleteEvent, Rejection))
    if isinstance(answer, DeleteEvent):  # the key spells exactly that point, as a producer writes it
        assert key.decode().lower() == f"{answer.collection.lower()}/{point_ids_of(answer)[0]}"


TENANT_RULES = {"tenants": ShardKeyRule(from_key="^tenants/([^/]+)/"), "docs": ShardKeyRule(from_payload="tenant")}


def tombstone_item(key: bytes) -> Item:
    settings = Settings(shard_keys=TENANT_RULES)
    return parse_record(0, Record("qdrant.patches", 0, 0, None, key=key), settings, "patch")


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/"), min_size=1, max_size=40),
       st.integers(0, 2**64 - 1) | st.uuids().map(str))
def test_a_tombstone_keyed_by_the_shard_key_rule_deletes_that_tenants_point(tenant: str, point: int | str) -> None:
    """Under a from_key rule the key is collection/<shard key>/<point id>: the rule's group is the
    shard key (derived as for any event) and the point id follows its match."""
    item = tombstone_item(f"tenants/{tenant}/{point}".encode())
    assert item.error is None, item.error
    assert isinstance(item.event, DeleteEvent)
    assert (item.event.collection, point_ids_of(item.event), item.shard_key) == ("tenants", [point], tenant)


@pytest.mark.parametrize(("key", "code", "said"), [
    (b"tenants/t5/x", "empty_record", "the point id after the shard key rule '^tenants/([^/]+)/'"),
    (b"tenants/t5/", "empty_record", "its key 'tenants/t5/' names none"),
    (b"tenants/t5/7/8", "empty_record", "names none"),
    (b"tenants/7", "shard_key_required", "does not match the shard key rule"),  # a point, but no tenant
    (b"docs/t5/7", "empty_record", "collection/point-id"),  # docs' rule reads the payload: no key layout
])
def test_a_tombstone_key_the_rule_cannot_read_is_dead_lettered(key: bytes, code: str, said: str) -> None:
    item = tombstone_item(key)
    assert item.error is not None
    assert (item.error.code, said in item.error.message) == (code, True), item.error


def test_a_collection_without_a_key_rule_keeps_collection_slash_point_id() -> None:
    item = tombstone_item(b"plain/42")
    assert isinstance(item.event, DeleteEvent)
    assert (point_ids_of(item.event), item.shard_key, item.error) == ([42], None, None)
    assert tombstone_delete(b"plain/42", TENANT_RULES) == tombstone_delete(b"plain/42")
