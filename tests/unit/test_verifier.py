"""The read-back comparison finds every kind of difference and accepts Qdrant's normalisation."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.operations import Op, PointData, Sparse
from connector.domain.semantics import PointState, State, apply_all, selected_ids
from connector.domain.verifier import (
    TOLERANCE,
    FilterMatch,
    compare,
    expected_state,
    json_equal,
    resolve_filters,
    touched_vectors,
    vectors_equal,
    vectors_to_read,
)
from connector.stream.window import Record, batch_id_for, offset_ranges
from tests.unit.strategies import match_tag, states, windows


def test_expected_state_and_compare_verified_with_cosine_normalisation() -> None:
    before = {1: PointState(payload={"a": 1})}
    ops = [Op("set_payload", ids=[1], payload={"b": 2}), Op("update_vectors", points={1: PointData({"d": (3.0, 4.0)})})]
    expected = expected_state(before, ops)
    actual = {1: PointState(payload={"a": 1, "b": 2}, vectors={"d": (0.6, 0.8)})}
    outcome = compare(expected, actual, [1], touched_vectors(ops), cosine_names={"d"})
    assert outcome.status == "verified"
    assert outcome.checked_points == 1


def test_compare_reports_payload_vector_and_existence_mismatches() -> None:
    ops = [
        Op("upsert", points={1: PointData({"s": Sparse((1, 2), (0.5, 0.5))}, {"k": 1})}),
        Op("set_payload", ids=[2], payload={"x": 1}),
        Op("delete", ids=[3]),
    ]
    before = {2: PointState(), 3: PointState()}
    expected = expected_state(before, ops)
    actual = {
        1: PointState(payload={"k": 1}, vectors={"s": Sparse((2, 1), (0.5, 0.4))}),
        2: PointState(payload={"x": 2}),
        3: PointState(),
    }
    outcome = compare(expected, actual, [1, 2, 3], touched_vectors(ops), cosine_names=set())
    assert outcome.status == "mismatch"
    assert {(m.id, m.field) for m in outcome.mismatches} == {(1, "vector:s"), (2, "payload"), (3, "exists")}


def test_compare_without_payload_checks_existence_and_vectors_only() -> None:
    """A re-embed window's check: the patch stream may change payloads beside it."""
    ops = [Op("update_vectors", points={1: PointData({"d": (1.0, 0.0)}), 2: PointData({"d": (0.0, 1.0)})})]
    expected = expected_state({1: PointState(), 2: PointState(), 3: PointState()}, ops)
    patched = {1: PointState(payload={"text": "new"}, vectors={"d": (1.0, 0.0)}),
               2: PointState(payload={"text": "new"}, vectors={"d": (0.0, 1.0)}), 3: PointState()}
    assert compare(expected, patched, [1, 2], touched_vectors(ops), set(), payload=False).status == "verified"
    assert compare(expected, patched, [1, 2], touched_vectors(ops), set()).status == "mismatch"
    changed = {1: PointState(vectors={"d": (0.0, 1.0)})}
    outcome = compare(expected, changed, [1, 2], touched_vectors(ops), set(), payload=False)
    assert {(m.id, m.field) for m in outcome.mismatches} == {(1, "vector:d"), (2, "exists")}


def test_sparse_order_does_not_matter() -> None:
    ops = [Op("update_vectors", points={1: PointData({"s": Sparse((5, 1), (0.5, 0.2))})})]
    expected = expected_state({1: PointState()}, ops)
    actual = {1: PointState(vectors={"s": Sparse((1, 5), (0.2, 0.5))})}
    assert compare(expected, actual, [1], touched_vectors(ops), set()).status == "verified"


def test_offset_ranges_are_exact_runs_and_batch_ids_deterministic() -> None:
    records = [Record("t", 0, o, b"") for o in (5, 6, 7, 9)] + [Record("t", 1, 3, b"")]
    ranges = offset_ranges(records)
    assert [(r.partition, r.first_offset, r.last_offset) for r in ranges] == [(0, 5, 7), (0, 9, 9), (1, 3, 3)]
    assert batch_id_for("t", ranges, "docs") == batch_id_for("t", offset_ranges(list(reversed(records))), "docs")
    assert batch_id_for("t", ranges, "docs") != batch_id_for("t", ranges, "other")


def _elementwise_equal(expected: tuple[float, ...], actual: tuple[float, ...], cosine: bool) -> bool:
    """The comparison's definition, one element at a time."""
    if len(expected) != len(actual):
        return False
    if cosine:
        norm = math.sqrt(sum(x * x for x in expected))
        expected = tuple(x / norm for x in expected) if norm > 0 else expected
    # numpy's isclose rule (tolerances added, relative to the expected value), not math.isclose's (the larger)
    return all(abs(y - x) <= TOLERANCE + 1e-9 * abs(x) for x, y in zip(expected, actual, strict=True))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(
    expected=st.lists(finite, min_size=1, max_size=8),
    nudges=st.lists(st.sampled_from([0.0, 0.0, 0.0, 5e-4, -9e-4, 2e-3, -0.5, 1e3]), min_size=8, max_size=8),
    cosine=st.booleans(),
    shorter=st.booleans(),
)
def test_dense_vectors_compare_as_their_elementwise_definition(
    expected: list[float], nudges: list[float], cosine: bool, shorter: bool
) -> None:
    """The vectorised comparison agrees with element-wise isclose: equal, within tolerance,
    just outside it, far off, of another length, and with cosine normalisation."""
    scale = math.sqrt(sum(x * x for x in expected)) if cosine else 1.0
    target = [x / scale if scale > 0 else x for x in expected]
    actual = [t + n for t, n in zip(target, nudges, strict=False)]
    if shorter and len(actual) > 1:
        actual = actual[:-1]
    e, a = tuple(expected), tuple(actual)
    assert vectors_equal(e, a, cosine) == _elementwise_equal(e, a, cosine)


def _upsert(pid: int, vectors: dict[str, tuple[float, ...]]) -> Op:
    return Op("upsert", points={pid: PointData(vectors=vectors, payload={})}, sources=[pid])


def test_a_read_back_fetches_only_the_vectors_the_window_wrote() -> None:
    payload_only = [Op("set_payload", ids=[1, 2], payload={"a": 1}, sources=[0]),
                    Op("clear_payload", ids=[3], sources=[1])]
    assert vectors_to_read(touched_vectors(payload_only)) is False
    assert vectors_to_read(touched_vectors([*payload_only, _upsert(4, {"": (1.0, 0.0)})])) is True
    named = [_upsert(5, {"text": (1.0,)}), Op("delete_vectors", ids=[6], vector_names=("image", "text"), sources=[2])]
    assert vectors_to_read(touched_vectors(named)) == ["image", "text"]
    # the unnamed vector beside named ones (a sparse vector may sit next to it): all of them
    assert vectors_to_read(touched_vectors([*named, _upsert(7, {"": (1.0,)})])) is True


@given(windows())
def test_every_vector_compared_is_read(ops: list[Op]) -> None:
    touched = touched_vectors(ops)
    selector = vectors_to_read(touched)
    compared = set().union(*touched.values())
    assert selector is True or set(selector or []) == compared
    assert (selector is False) == (not compared)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(states(), windows(), st.integers(0, 5))
def test_filters_resolved_to_their_matches_expect_what_the_window_did(initial: State, window: list[Op],
                                                                      bound: int) -> None:
    """What the read-back expects of a window with filter ops, resolved to the ids each filter
    matched when it was applied (states taken then, for at most ``bound`` of them), equals the
    window applied op by op, on every point it compares: the id-addressed points (read before)
    and the captured matches whose state before is known."""
    actual = copy.deepcopy(initial)
    matches: dict[int, FilterMatch] = {}
    for op in window:
        if op.by_filter:
            ids = selected_ids(actual, op, match_tag)
            matches[id(op)] = FilterMatch(ids=ids, states={pid: copy.deepcopy(actual[pid]) for pid in ids[:bound]})
        apply_all(actual, [op], match_tag)
    id_points = {pid for op in window for pid in op.point_ids()}
    before = {pid: copy.deepcopy(initial[pid]) for pid in id_points if pid in initial}
    extended, resolved = resolve_filters(before, window, matches)
    assert not any(op.by_filter for op in resolved)
    expected = expected_state({pid: extended[pid] for pid in extended}, resolved)
    compared = id_points | {pid for match in matches.values() for pid in match.states if pid in extended}
    for pid in compared:
        assert expected.get(pid) == actual.get(pid), pid


def test_payload_floats_are_equal_within_the_servers_last_digit() -> None:
    assert json_equal({"v": 0.9872592010330129, "n": [1, {"x": 0.1}]}, {"v": 0.9872592010330128, "n": [1, {"x": 0.1}]})
    assert not json_equal({"v": 0.98725920103}, {"v": 0.98725920104})
    assert not json_equal({"v": True}, {"v": 1})
    assert not json_equal({"v": [1, 2]}, {"v": [1, 2, 3]})
    assert not json_equal({"v": "1"}, {"v": 1})


@given(
    rows=st.lists(st.tuples(st.lists(finite, min_size=3, max_size=3),
                            st.lists(st.sampled_from([0.0, 0.0, 5e-4, -9e-4, 2e-3, 1.0]), min_size=3, max_size=3)),
                  min_size=1, max_size=6),
    cosine=st.booleans(),
    as_arrays=st.booleans(),
)
def test_a_window_of_dense_vectors_compares_as_each_one_alone(rows: list[tuple[list[float], list[float]]],
                                                               cosine: bool, as_arrays: bool) -> None:
    """``compare`` judges a window's dense vectors in one numpy pass: each verdict is the one
    ``vectors_equal`` gives that vector alone, read back as tuples or as numpy arrays."""
    ops = [Op("update_vectors", points={pid: PointData({"d": tuple(e)}) for pid, (e, _) in enumerate(rows)})]
    expected = expected_state({pid: PointState() for pid in range(len(rows))}, ops)
    actual: State = {}
    for pid, (e, nudges) in enumerate(rows):
        scale = math.sqrt(sum(x * x for x in e)) if cosine else 1.0
        read = [x / scale + n if scale > 0 else x + n for x, n in zip(e, nudges, strict=True)]
        actual[pid] = PointState(vectors={"d": np.array(read) if as_arrays else tuple(read)})
    outcome = compare(expected, actual, list(range(len(rows))), touched_vectors(ops), {"d"} if cosine else set())
    wrong = {pid for pid in range(len(rows))
             if not vectors_equal(expected[pid].vectors["d"], actual[pid].vectors["d"], cosine)}
    assert {m.id for m in outcome.mismatches} == wrong
