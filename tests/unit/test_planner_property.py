"""The planner's contract: the plan has exactly the effect of the events one by one."""

from __future__ import annotations

import copy

from hypothesis import given, settings

from connector.operations import NEEDS_EXISTING_POINT, Op
from connector.planner import plan, screen_existence
from connector.semantics import State, apply_all, apply_op
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


@settings(max_examples=400, deadline=None)
@given(states(), windows())
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


@settings(max_examples=300, deadline=None)
@given(windows(max_size=40, with_filters=False))
def test_plan_never_grows_and_coalesces_equal_patches(window: list[Op]) -> None:
    planned = plan(window)
    assert len(planned) <= len(window)


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
