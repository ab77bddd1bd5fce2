"""The policy: collections per topic, denied operations, the blast-radius guard."""

from __future__ import annotations

import json

from connector.domain.changes import parse_change
from connector.domain.policy import check_blast_radius, check_policy, operation_name
from connector.settings import Settings


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
