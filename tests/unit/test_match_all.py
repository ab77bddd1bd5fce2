"""Filters that match every point by themselves (connector/domain/match_all.py), against the filter
evaluator of qdrant-client's local mode (the server agrees on these: an empty ``should`` included)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qdrant_client import models as qm
from qdrant_client.local.payload_filters import check_filter

from connector.domain.match_all import matches_everything

N_IS_1 = {"key": "n", "match": {"value": 1}}


@pytest.mark.parametrize("flt", [
    {}, {"must": []}, {"should": []}, {"must_not": []}, {"must": [], "should": [], "must_not": []},
    {"must": None}, {"must": [{}]}, {"must": {}}, {"must": [{"must": []}]}, {"should": [{}, N_IS_1]},
    {"must": [{"should": [N_IS_1, {"must_not": []}]}]},
    {"must_not": [{"must_not": [{}]}]}, {"must_not": {"should": [{"must_not": {}}]}},  # excludes what matches none
    {"min_should": {"conditions": [], "min_count": 1}},  # the server: no constraint (local mode: none met)
])
def test_filters_without_a_condition_match_everything(flt: dict[str, Any]) -> None:
    assert matches_everything(flt)


@pytest.mark.parametrize("flt", [
    {"must": [N_IS_1]}, {"should": [N_IS_1]}, {"must_not": [{}]}, {"must_not": [N_IS_1]}, {"must": N_IS_1},
    {"must": [{}, N_IS_1]}, {"must": [{"should": [N_IS_1]}]}, {"must": [{"has_id": []}]},
    {"min_should": {"conditions": [N_IS_1], "min_count": 1}}, {"must": [], "filter": []}, {"must": 5},
    {"must": "x"}, [], None, "{}",
])
def test_a_condition_or_what_is_no_filter_is_not_claimed(flt: Any) -> None:
    assert not matches_everything(flt)


CONDITIONS = st.sampled_from([N_IS_1, {"key": "n", "range": {"gte": 0}}, {"has_id": [1, 2]},
                              {"is_empty": {"key": "n"}}])


def filters(conditions: st.SearchStrategy[Any] | None) -> st.SearchStrategy[dict[str, Any]]:
    """Filters of must/should/must_not clauses (absent, null, empty, a list, or one condition) whose
    conditions are ``conditions`` (None: none) or nested filters."""
    def clause(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.none() | st.lists(inner, max_size=3) | inner

    def of(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({}, optional={name: clause(inner) for name in ("must", "should", "must_not")})

    if conditions is None:
        return st.recursive(st.just({}), of, max_leaves=8)
    return st.recursive(of(conditions), lambda nested: of(nested | conditions), max_leaves=8)


POINTS = [(i, {"n": n}) for i, n in enumerate([0, 1, 2, [], None])]


def matched_by_local_mode(flt: dict[str, Any]) -> list[bool]:
    parsed = qm.Filter.model_validate(flt)
    return [check_filter(parsed, payload, point_id, has_vector={}) for point_id, payload in POINTS]


# Local mode before qdrant-client 1.19 reads an empty `should` as matching no point; the server
# and later clients read it as no condition, which is what matches_everything claims (the claim
# refuses a destructive event, so on those clients it refuses one that would change nothing).
EMPTY_SHOULD_IS_NO_CONDITION = all(matched_by_local_mode({"should": []}))
OLD_LOCAL_MODE = pytest.mark.skipif(not EMPTY_SHOULD_IS_NO_CONDITION, reason=(
    "this qdrant-client's local mode reads an empty `should` as matching nothing (before 1.19); "
    "the claim follows the server"))


@OLD_LOCAL_MODE
@given(filters(None))
def test_without_conditions_the_answer_is_exact(flt: dict[str, Any]) -> None:
    """A filter of clauses alone matches every point or none: the answer is local mode's."""
    assert [matches_everything(flt)] * len(POINTS) == matched_by_local_mode(flt)


@OLD_LOCAL_MODE
@given(filters(CONDITIONS))
def test_a_filter_claimed_matches_every_point(flt: dict[str, Any]) -> None:
    if matches_everything(flt):
        assert all(matched_by_local_mode(flt)), flt
