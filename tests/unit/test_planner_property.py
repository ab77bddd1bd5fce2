"""The planner's contract: the plan has exactly the effect of the events one by one."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from hypothesis import example, given, settings

from connector.domain.operations import NEEDS_EXISTING_POINT, Op
from connector.domain.planner import ids_to_read, plan, screen_existence
from connector.domain.semantics import PointState, State, apply_all, apply_op
from connector.domain.verifier import FilterMatch, expected_state, resolve_filters
from tests.unit.strategies import match_tag, states, windows


def one_by_one(state: State, window: list[Op]) -> list[int]:
    """Reference: each event applies entirely, or is rejected when it names a missing point."""
    rejected = []
    for op in window:
        if not op.by_filter and op.kind in NEEDS_EXISTING_POINT and any(p not in state for p in op.point_ids()):
            rejected.append(op.sources[0])
            continue
        apply_op(state, op, match_tag)
    return rejected


# random windows seldom make a filter op match a point that a later op would carry past it
CROSSING_A_FILTER = (
    {1: PointState(), 2: PointState()},
    [Op("set_payload", ids=[1], payload={"tag": "x"}, sources=[0]),
     Op("clear_payload", filter={"must": [{"key": "tag", "match": {"value": "x"}}]}, sources=[1]),
     Op("set_payload", ids=[2], payload={"tag": "x"}, sources=[2])],
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(states(), windows())
@example(*CROSSING_A_FILTER)
def test_plan_has_the_effect_of_one_by_one(initial: State, window: list[Op]) -> None:
    expected = copy.deepcopy(initial)
    expected_rejected = one_by_one(expected, copy.deepcopy(window))

    screened = screen_existence(window, existing=set(initial))
    planned = plan(screened.accepted)
    actual = copy.deepcopy(initial)
    failures = apply_all(actual, planned, match_tag)

    assert failures == []
    assert actual == expected
    assert sorted(op.sources[0] for op, _ in screened.missing) == expected_rejected
    # every accepted event is in exactly one planned op, in window order within it
    sources = [s for op in planned for s in op.sources]
    assert sorted(sources) == sorted(op.sources[0] for op in screened.accepted)
    assert all(op.sources == sorted(op.sources) for op in planned)


def _on_own_points(op: Op, position: int) -> Op:
    """``op`` with its ids replaced by ids no other op of the window names."""
    if op.by_filter:
        return op
    fresh = {pid: 1000 * (position + 1) + k for k, pid in enumerate(op.point_ids())}
    if op.points is not None:
        return replace(op, points={fresh[pid]: data for pid, data in op.points.items()})
    return replace(op, ids=[fresh[pid] for pid in op.ids or []])


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(windows(max_size=40))
def test_ops_on_distinct_points_coalesce_to_one_op_per_merge_key_between_filters(window: list[Op]) -> None:
    """Nothing but a filter op stops ops that share no point from merging: between two filter
    ops, the plan has exactly one op per distinct merge key, holding every event of that key,
    in the order the keys first appear; each filter op stays alone, where it was."""
    window = [_on_own_points(op, i) for i, op in enumerate(window)]
    expected: list[list[int]] = []
    run: dict[tuple[object, ...], list[int]] = {}
    for op in window:
        if op.by_filter:
            expected += [*run.values(), op.sources]
            run = {}
        else:
            run.setdefault(op.merge_key(), []).extend(op.sources)
    expected += run.values()
    assert [op.sources for op in plan(window)] == expected


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(windows(max_size=40))
def test_no_merge_the_contract_allows_is_left_undone(window: list[Op]) -> None:
    """Two planned ops with the same merge key stay apart only for a reason the contract names:
    between them in the plan lies a filter op, or an op on one of the later op's points. (If
    neither, the later op's first event could have moved back and merged.)"""
    planned = plan(window)
    for b, later in enumerate(planned):
        if later.by_filter:
            continue
        points = set(later.point_ids())
        for a, earlier in enumerate(planned[:b]):
            if earlier.by_filter or earlier.merge_key() != later.merge_key():
                continue
            between = planned[a + 1 : b]
            assert any(op.by_filter or points & set(op.point_ids()) for op in between), (
                f"planned ops {a} and {b} ({later.kind}, sources {earlier.sources} and {later.sources}) could be one")


def test_identical_patches_on_many_points_become_one_op() -> None:
    window = [Op("set_payload", ids=[i], payload={"archived": True}, sources=[i]) for i in range(10_000)]
    planned = plan(window)
    assert len(planned) == 1
    assert planned[0].ids == list(range(10_000))
    assert planned[0].sources == list(range(10_000))


def test_an_op_does_not_move_past_an_op_on_the_same_point() -> None:
    window = [
        Op("set_payload", ids=[1], payload={"a": 1}, sources=[0]),
        Op("set_payload", ids=[1], payload={"a": 2}, sources=[1]),
        Op("set_payload", ids=[2], payload={"a": 1}, sources=[2]),
        Op("set_payload", ids=[1], payload={"a": 1}, sources=[3]),
    ]
    planned = plan(window)
    assert [(op.payload, op.ids, op.sources) for op in planned] == [
        ({"a": 1}, [1, 2], [0, 2]),
        ({"a": 2}, [1], [1]),
        ({"a": 1}, [1], [3]),
    ]


def test_filter_ops_are_barriers() -> None:
    window = [
        Op("set_payload", ids=[1], payload={"a": 1}, sources=[0]),
        Op("clear_payload", filter={"must": []}, sources=[1]),
        Op("set_payload", ids=[2], payload={"a": 1}, sources=[2]),
    ]
    assert [op.sources for op in plan(window)] == [[0], [1], [2]]


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(states(), windows())
@example(*CROSSING_A_FILTER)
def test_reading_only_ids_to_read_changes_neither_screening_nor_the_expected_state(initial: State,
                                                                                    window: list[Op]) -> None:
    """A window reads before it only the points whose first op is not an upsert or a delete."""
    read = set(ids_to_read(window))
    full = screen_existence(window, existing=set(initial))
    partial = screen_existence(window, existing=set(initial) & read)
    assert [op.sources for op in partial.accepted] == [op.sources for op in full.accepted]
    assert [(op.sources, gone) for op, gone in partial.missing] == [(op.sources, gone) for op, gone in full.missing]
    if any(op.by_filter for op in window):
        return  # a filter may match any point: the next test covers such windows
    planned = plan(full.accepted)
    from_full, from_read = copy.deepcopy(initial), {pid: copy.deepcopy(s) for pid, s in initial.items() if pid in read}
    apply_all(from_full, planned, match_tag)
    apply_all(from_read, copy.deepcopy(planned), match_tag)
    touched = {pid for op in window for pid in op.point_ids()}
    assert {p: from_full.get(p) for p in touched} == {p: from_read.get(p) for p in touched}


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(states(), windows())
@example(*CROSSING_A_FILTER)
def test_the_read_back_expects_what_the_plan_leaves_filter_ops_included(initial: State, window: list[Op]) -> None:
    """The expectation the read-back compares with, built as the connector builds it (the points
    of ids_to_read read before the window; each filter op's matched ids and their states taken
    right before it is sent), is what the plan leaves on the whole collection, on every point
    it names or matched."""
    read = set(ids_to_read(window))
    screened = screen_existence(window, existing=set(initial) & read)
    planned = plan(screened.accepted)
    truth = copy.deepcopy(initial)
    matches: dict[int, FilterMatch] = {}
    for op in planned:  # what Qdrant does, with the match taken right before each filter op
        if op.by_filter:
            matched = [pid for pid, point in truth.items() if match_tag(op.filter or {}, pid, point)]
            matches[id(op)] = FilterMatch(ids=matched, states={pid: copy.deepcopy(truth[pid]) for pid in matched})
        apply_all(truth, [op], match_tag)
    before = {pid: copy.deepcopy(state) for pid, state in initial.items() if pid in read}
    extended, resolved = resolve_filters(before, planned, matches)
    captured = [pid for match in matches.values() for pid in match.states if pid in extended]
    ids = list(dict.fromkeys([pid for op in planned for pid in op.point_ids()] + captured))
    expected = expected_state({pid: extended[pid] for pid in ids if pid in extended}, resolved)
    assert {pid: expected.get(pid) for pid in ids} == {pid: truth.get(pid) for pid in ids}
    assert {pid for match in matches.values() for pid in match.ids} <= set(ids)  # every matched point checked
