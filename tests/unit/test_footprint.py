"""Which windows may be applied at the same time (connector/stream/window/footprint.py).

The property: a window's footprint holds every point it can change, whatever the points held
before; so two windows with disjoint footprints cannot see each other's writes, in any order.
Windows are random patch events, parsed by the worker's own parser."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given

from connector.domain.operations import Op, Sparse
from connector.domain.semantics import State, apply_all, copy_state
from connector.settings import Settings
from connector.stream.window.embedding import operations_for
from connector.stream.window.footprint import footprint, independent
from connector.stream.window.items import Item, Record
from connector.stream.window.parse import parse_record
from tests.unit.strategies import match_tag, states, windows

SETTINGS = Settings()


def vector_json(vectors: dict[str, Any]) -> dict[str, Any]:
    return {name: {"indices": list(v.indices), "values": list(v.values)} if isinstance(v, Sparse) else list(v)
            for name, v in vectors.items()}


def event_of(op: Op, collection: str = "docs") -> dict[str, Any]:
    """The patch event a producer would send for ``op``."""
    event: dict[str, Any] = {"schema_version": 1, "collection": collection, "op": op.kind}
    if op.points is not None:
        event["points"] = [{"id": pid, **({"vector": vector_json(d.vectors)} if d.vectors else {}),
                            **({"payload": d.payload} if op.kind == "upsert" else {})} for pid, d in op.points.items()]
    elif op.filter is not None:
        event["filter"] = op.filter
    else:
        event["ids"] = list(op.ids or [])
    for name in ("payload", "key"):
        if getattr(op, name) is not None:
            event[name] = getattr(op, name)
    if op.keys is not None:
        event["keys"] = list(op.keys)
    if op.vector_names is not None:
        event["vector_names"] = list(op.vector_names)
    return event


def items_of(events: list[dict[str, Any]]) -> list[Item]:
    return [parse_record(n, Record("patches", 0, n, json.dumps(e).encode(), None), SETTINGS, "patch")
            for n, e in enumerate(events)]


def changed(before: State, after: State) -> set[Any]:
    return {pid for pid in before.keys() | after.keys() if before.get(pid) != after.get(pid)}


@given(states(), windows(max_size=8))
def test_a_window_changes_no_point_outside_its_footprint(initial: State, window: list[Op]) -> None:
    items = items_of([event_of(op) for op in window])
    points = footprint(items)
    ops = operations_for(items, {})
    if any(op.filter is not None for op in ops):
        assert points is None
        return
    assert points is not None
    after = copy_state(initial)
    apply_all(after, ops, match_tag)
    assert {("docs", pid) for pid in changed(initial, after)} <= points


@given(states(), windows(max_size=6, with_filters=False), windows(max_size=6, with_filters=False))
def test_independent_windows_end_the_same_in_either_order(initial: State, first: list[Op], second: list[Op]) -> None:
    a, b = items_of([event_of(op) for op in first]), items_of([event_of(op) for op in second])
    if not independent(footprint(a), footprint(b)):
        return
    one = copy_state(initial)
    apply_all(one, operations_for(a, {}) + operations_for(b, {}))
    other = copy_state(initial)
    apply_all(other, operations_for(b, {}) + operations_for(a, {}))
    assert one == other


def test_what_makes_a_window_depend_on_others() -> None:
    def set_on(ids: list[int], collection: str = "docs") -> dict[str, Any]:
        return {"schema_version": 1, "collection": collection, "op": "set_payload", "ids": ids, "payload": {"a": 1}}

    fence = {"schema_version": 1, "kind": "fence", "collection": "docs", "target": "docs_v2", "migration_id": "m",
             "expires_at": "2030-01-01T00:00:00Z"}
    by_filter = {"schema_version": 1, "collection": "docs", "op": "clear_payload",
                 "filter": {"must": [{"key": "a", "match": {"value": 1}}]}}
    one, two = footprint(items_of([set_on([1, 2])])), footprint(items_of([set_on([3]), set_on([4])]))
    assert one == {("docs", 1), ("docs", 2)}
    assert independent(one, two)
    assert independent(two, one)
    assert not independent(one, footprint(items_of([set_on([2, 9])])))
    assert independent(one, footprint(items_of([set_on([1], "other")])))  # another collection
    assert footprint(items_of([set_on([1]), by_filter])) is None
    assert footprint(items_of([set_on([1]), fence])) is None
    assert footprint(None) is None  # not parsed ahead
    assert not independent(one, None)
    assert not independent(None, one)
    # a rejected event writes nothing
    assert footprint(items_of([{"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [5]}])) == set()
