"""The policy: collections per topic, denied operations, the blast-radius guard and the share of the
collection an operation that removes data may match."""

from __future__ import annotations

import json
from typing import get_args

import pytest
from pydantic import ValidationError

from connector.domain.changes import PatchEvent, ReembedEvent, Rejection, parse_change, removes_data
from connector.domain.policy import check_blast_radius, check_policy, check_share, operation_name, share_guarded
from connector.kafka.producer import build_event
from connector.settings import OPERATION_NAMES, Settings


def _event(**fields):
    return parse_change(json.dumps({"schema_version": 1, "collection": "docs", **fields}).encode(), expect="patch")


TAGGED = {"must": [{"key": "tag", "match": {"value": "x"}}]}
CLEAR_BY_FILTER = {"op": "clear_payload", "filter": TAGGED}


def test_operation_names_tell_filter_addressing_apart() -> None:
    assert operation_name(_event(op="delete", ids=[1])) == "delete"
    assert operation_name(_event(op="delete", filter=TAGGED)) == "delete:filter"


def test_topics_may_change_only_their_collections() -> None:
    settings = Settings(topic_collections={"billing.patches": ["invoices"]})
    rejection = check_policy(_event(op="delete", ids=[1]), "billing.patches", settings)
    assert rejection is not None
    assert rejection.code == "collection_not_allowed"
    assert check_policy(_event(op="delete", ids=[1]), "other.patches", settings) is None


def test_denied_operations() -> None:
    settings = Settings(denied_operations=["clear_payload", "delete:filter"])
    assert check_policy(_event(**CLEAR_BY_FILTER), "t", settings).code == "operation_denied"
    assert check_policy(_event(op="delete", filter=TAGGED), "t", settings).code == "operation_denied"
    assert check_policy(_event(op="delete", ids=[1]), "t", settings) is None


def test_blast_radius_guard_and_its_override() -> None:
    strict = Settings(filter_blast_radius=100)
    event = _event(**CLEAR_BY_FILTER)
    assert check_blast_radius(event, 100, strict) is None
    rejection = check_blast_radius(event, 5_000_000, strict)
    assert rejection is not None
    assert rejection.code == "blast_radius_exceeded"
    assert "5000000" in rejection.message
    overriding = _event(**CLEAR_BY_FILTER, blast_radius_override=True)
    assert check_policy(overriding, "t", strict).code == "override_denied"
    permissive = Settings(filter_blast_radius=100, allow_blast_radius_override=True)
    assert check_policy(overriding, "t", permissive) is None
    assert check_blast_radius(overriding, 5_000_000, permissive) is None
    assert check_blast_radius(event, 5_000_000, Settings(filter_blast_radius=None)) is None


EVERYTHING = [{}, {"must": []}, {"should": [], "must_not": []}, {"must": [{"must": []}]}]
REMOVING = [("delete", {}), ("clear_payload", {}), ("overwrite_payload", {"payload": {"a": 1}}),
            ("delete_payload", {"keys": ["a"]}), ("delete_vectors", {"vector_names": ["v"]}),
            ("set_payload", {"payload": {"a": None, "b": 1}})]


@pytest.mark.parametrize(("op", "extra"), REMOVING)
@pytest.mark.parametrize("flt", EVERYTHING)
def test_a_filter_that_matches_every_point_cannot_remove_data(op: str, extra: dict, flt: dict) -> None:
    """Refused by the event's own validation: produce refuses it, the worker dead-letters it."""
    rejected = _event(op=op, filter=flt, **extra)
    assert isinstance(rejected, Rejection)
    assert rejected.code == "blast_radius_share_exceeded"
    assert f"a {op} of every point is refused" in rejected.message
    with pytest.raises(ValidationError, match="matches every point"):
        build_event({"collection": "docs", "op": op, "filter": flt, **extra})
    overriding = _event(op=op, filter=flt, blast_radius_override=True, **extra)  # the policy decides then
    assert not isinstance(overriding, Rejection)
    assert check_policy(overriding, "t", Settings()).code == "override_denied"


def test_what_removes_no_data_may_address_every_point() -> None:
    """A set_payload without a null writes the keys it names; a re-embed recomputes vectors."""
    setting = _event(op="set_payload", filter={}, payload={"archived": True})
    assert not isinstance(setting, Rejection)
    assert not removes_data(setting)
    reembed = parse_change(json.dumps({"schema_version": 1, "kind": "reembed", "collection": "docs", "filter": {},
                                       "text_field": "body"}).encode(), expect="reembed")
    assert not isinstance(reembed, Rejection)
    assert not removes_data(reembed)
    assert [removes_data(_event(op=op, filter=TAGGED, **extra)) for op, extra in REMOVING] == [True] * 6


def test_the_share_of_the_collection_an_operation_removing_data_may_match() -> None:
    half, all_only = Settings(), Settings(filter_max_share=1)
    delete = _event(op="delete", filter=TAGGED)
    assert share_guarded(delete, half)
    assert check_share(delete, 0, 0, half) is None  # nothing to remove
    assert check_share(delete, 25, 50, half) is None  # half is not more than half
    more = check_share(delete, 26, 50, half)
    assert more is not None
    assert (more.code, more.collection) == ("blast_radius_share_exceeded", "docs")
    assert "26 of 50 points, more than QCC_FILTER_MAX_SHARE=0.5" in more.message
    every = check_share(delete, 50, 50, all_only)
    assert every is not None
    assert "every point (50 of 50)" in every.message
    assert check_share(delete, 49, 50, all_only) is None
    assert check_share(delete, 51, 50, all_only) is not None  # points went between the two counts
    assert not share_guarded(_event(op="set_payload", filter=TAGGED, payload={"a": 1}), half)
    assert not share_guarded(_event(op="delete", ids=[1]), half)


def test_an_override_lifts_both_limits_only_where_permitted() -> None:
    overriding = _event(op="delete", filter=TAGGED, blast_radius_override=True)
    strict = Settings(filter_blast_radius=10)
    assert share_guarded(overriding, strict)
    assert check_blast_radius(overriding, 11, strict) is not None
    permissive = Settings(filter_blast_radius=10, allow_blast_radius_override=True)
    assert not share_guarded(overriding, permissive)
    assert check_blast_radius(overriding, 11, permissive) is None
    # a CDC mapping's truncate: delete_all is the operator's own override
    assert check_policy(overriding, "shop.public.items", strict, mapped=True) is None
    assert not share_guarded(overriding, strict, mapped=True)
    assert check_blast_radius(overriding, 11, strict, mapped=True) is None


def test_denied_operations_must_name_operations() -> None:
    with pytest.raises(ValidationError, match=r"unknown operation 'clear_payloads' \(did you mean 'clear_payload'\?\), "
                                              r"'delete:filtr' \(did you mean 'delete:filter'\?\)"):
        Settings(denied_operations=["clear_payloads", "delete:filtr"])
    with pytest.raises(ValidationError, match=r"'upsert:filter' \(a filter never addresses upsert\)"):
        Settings(denied_operations=["upsert:filter"])
    assert Settings(denied_operations=list(OPERATION_NAMES)).denied_operations == list(OPERATION_NAMES)


def test_the_operation_names_are_the_events() -> None:
    """What operation_name can answer for some event, and only that, is a name the setting takes."""
    classes = [*get_args(get_args(PatchEvent)[0]), ReembedEvent]
    ops = [get_args(cls.model_fields["op"].annotation)[0] for cls in classes]
    by_filter = [f"{op}:filter" for cls, op in zip(classes, ops, strict=True) if "filter" in cls.model_fields]
    assert sorted(OPERATION_NAMES) == sorted(ops + by_filter)


def test_the_blast_radius_limit_is_lifted_by_none_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCC_FILTER_BLAST_RADIUS", "none")
    assert Settings().filter_blast_radius is None
    monkeypatch.setenv("QCC_FILTER_BLAST_RADIUS", "")
    with pytest.raises(ValidationError):
        Settings()
