"""Shard keys: what an event names or a rule derives, what must exist, and the requests that carry it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from qdrant_client import models as qm

from connector.domain.changes import PATCH_OPS, ShardKeyWithFallback, parse_change
from connector.domain.operations import op_from_patch
from connector.domain.sharding import derive_selector, group_key, keys_that_must_exist, shard_key_refusal
from connector.qdrant.wires.models import to_requests
from connector.settings import Settings, ShardKeyRule


def event(op: str = "set_payload", **fields: Any) -> Any:
    body: dict[str, Any] = {"schema_version": 1, "kind": "patch", "op": op, "collection": "docs", **fields}
    if op == "set_payload":
        body.setdefault("payload", {"tenant": "t1", "a": 1})
        if "filter" not in body:
            body.setdefault("ids", [1])
    parsed = parse_change(json.dumps(body).encode(), expect="patch")
    assert not hasattr(parsed, "code"), parsed
    return parsed


def upsert(*tenants: Any) -> Any:
    points = [{"id": i, "vector": [0.1, 0.2], "payload": {"tenant": t} if t is not None else {}}
              for i, t in enumerate(tenants)]
    return event("upsert", points=points)


@pytest.mark.parametrize("given", ["t1", 7, ["a", 2], {"target": "t1", "fallback": "default"}])
def test_an_event_takes_every_form_qdrant_takes(given: Any) -> None:
    derived = derive_selector(event(shard_key=given), b"docs/other/1", ShardKeyRule(from_key="^docs/([^/]+)/"))
    assert derived.problem is None
    dumped = derived.selector.model_dump() if isinstance(derived.selector, ShardKeyWithFallback) else derived.selector
    assert dumped == given  # the event's own key wins over the rule


@pytest.mark.parametrize("given", ["", -1, 2**64, [], True, {"target": "a"}, {"target": "a", "fallback": "b", "x": 1}])
def test_a_malformed_shard_key_is_a_schema_violation(given: Any) -> None:
    body = {"schema_version": 1, "kind": "patch", "op": "delete", "collection": "docs", "ids": [1], "shard_key": given}
    parsed = parse_change(json.dumps(body).encode(), expect="patch")
    assert getattr(parsed, "code", None) == "schema_violation"


def test_a_rule_derives_the_key_from_the_record_key_or_the_payload() -> None:
    by_key = ShardKeyRule(from_key="^docs/([^/]+)/")
    assert derive_selector(event(), b"docs/tenant-9/42", by_key).selector == "tenant-9"
    missed = derive_selector(event(), b"42", by_key)
    assert missed.selector is None
    assert "does not match" in (missed.problem or "")
    assert derive_selector(event(), None, by_key).problem is not None

    by_payload = ShardKeyRule(from_payload="tenant")
    assert derive_selector(upsert("t1", "t1"), None, by_payload).selector == "t1"
    assert derive_selector(upsert(5), None, by_payload).selector == 5
    assert "different shard keys" in (derive_selector(upsert("t1", "t2"), None, by_payload).problem or "")
    assert "missing" in (derive_selector(upsert(None), None, by_payload).problem or "")
    assert "not a shard key" in (derive_selector(upsert(""), None, by_payload).problem or "")
    assert derive_selector(event(), None, by_payload).selector == "t1"  # set_payload's own payload
    assert derive_selector(event("delete", ids=[1]), None, by_payload).problem is not None
    assert derive_selector(event(), None, None).selector is None  # no rule, no key: none


def test_a_fallback_makes_target_with_fallback() -> None:
    rule = ShardKeyRule(from_key="^([^/]+)/", fallback="default")
    selector = derive_selector(event(), b"t7/1", rule).selector
    assert selector == ShardKeyWithFallback(target="t7", fallback="default")
    assert keys_that_must_exist(selector) == ["default"]
    assert derive_selector(event(), b"default/1", rule).selector == "default"


@pytest.mark.parametrize("rule", [{}, {"from_key": "x", "from_payload": "y"}, {"from_key": "no-group"},
                                  {"from_key": "(unclosed"}])
def test_a_bad_rule_is_refused_with_the_settings(rule: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCC_SHARD_KEYS", json.dumps({"docs": rule}))
    with pytest.raises(ValidationError):
        Settings()


def test_equal_selectors_group_together_and_others_apart() -> None:
    assert group_key(None) is None
    assert group_key("a") == group_key("a") != group_key(["a"])
    assert group_key(1) != group_key("1")  # Qdrant tells 1 from "1"
    fb = ShardKeyWithFallback(target="a", fallback="b")
    assert group_key(fb) == group_key(ShardKeyWithFallback(target="a", fallback="b")) != group_key("a")


def test_refusals_follow_qdrant() -> None:
    assert shard_key_refusal(None, False, frozenset()) is None
    assert shard_key_refusal("a", False, frozenset()).code == "shard_key_unexpected"
    assert shard_key_refusal(None, True, frozenset({"a"})).code == "shard_key_required"
    assert shard_key_refusal("a", True, frozenset({"a"})) is None
    missing = shard_key_refusal(["a", "b", 3], True, frozenset({"a"}))
    assert missing.code == "unknown_shard_key"
    assert missing.missing == ["b", 3]
    assert shard_key_refusal(ShardKeyWithFallback(target="new", fallback="a"), True, frozenset({"a"})) is None


def shard_keys_in(request: qm.UpdateOperation) -> list[Any]:
    """Every shard_key field of a request, wherever the operation keeps its selector."""
    return [part.get("shard_key") for part in request.model_dump().values() if isinstance(part, dict)]


BY_POINTS = ("upsert", "update_vectors")
ADDRESSES = [(op, False) for op in PATCH_OPS] + [(op, True) for op in PATCH_OPS if op not in BY_POINTS]


@pytest.mark.parametrize(("op", "by_filter"), ADDRESSES)
def test_every_request_carries_the_batch_shard_key(op: str, by_filter: bool) -> None:
    fields: dict[str, Any] = {"filter": {"must": [{"key": "a", "match": {"value": 1}}]}} if by_filter else {"ids": [1]}
    if op in BY_POINTS:
        fields = {"points": [{"id": 1, "vector": [0.5, 0.5]}]}
    extra = {"set_payload": {"payload": {"a": None, "b": 1}}, "overwrite_payload": {"payload": {"a": 1}},
             "delete_payload": {"keys": ["a"]}, "delete_vectors": {"vector_names": ["v"]}}.get(op, {})
    one = op_from_patch(event(op, **fields, **extra), 0)
    fallback = ShardKeyWithFallback(target="t", fallback="d")
    for selector, expected in [("t1", "t1"), ([1, "b"], [1, "b"]), (fallback, {"target": "t", "fallback": "d"})]:
        requests = to_requests(one, selector)
        assert requests
        assert all(keys == [expected] for keys in map(shard_keys_in, requests)), requests
    assert all(keys == [None] for keys in map(shard_keys_in, to_requests(one)))
