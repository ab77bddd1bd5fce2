"""What the commands' options take, checked before anything is written (pure logic): --filter,
a new collection's name and vectors, an existing collection against a dump, topics' line."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from qdrant_client import models as qm

from connector.bulk.collection_spec import MAX_DENSE_SIZE, check_collection_name, dense_vector, new_vectors
from connector.bulk.filter_option import parse_filter
from connector.bulk.importer import unfit_vectors
from connector.cli import topics_line
from connector.errors import InvalidOption


@pytest.mark.parametrize(("text", "line"), [
    ('{"must":[{"key":"n","matchh":{"value":5}}]}', "must[0].matchh: Extra inputs are not permitted"),
    ('{"must":[{"key":"n","match":{"valu":5}}]}',
     "must[0].match.value: Field required; must[0].match.valu: Extra inputs are not permitted"),
    ('{"must":[{"has_id":[1]},{"key":"n","range":{"gt":"x"}}]}',
     "must[1].range.gt: Input should be a valid number, unable to parse string as a number"),
    ('{"mustt":[]}', "mustt: Extra inputs are not permitted"),
    ('{"must": [', "not JSON: Expecting value at column 11"),
])
def test_a_mistyped_filter_is_one_line_naming_the_place(text: str, line: str) -> None:
    with pytest.raises(InvalidOption) as raised:
        parse_filter(text)
    assert line in str(raised.value)
    assert "\n" not in str(raised.value)
    assert str(raised.value).startswith("--filter")


def test_pydantic_alone_says_it_in_dozens_of_lines() -> None:
    """What the one line replaces: an error per member of every union on the way."""
    with pytest.raises(ValidationError) as raised:
        qm.Filter.model_validate(json.loads('{"must":[{"key":"n","matchh":{"value":5}}]}'))
    assert raised.value.error_count() > 20


@pytest.mark.parametrize("text", ["n>5", "=5", "n"])
def test_a_filter_that_is_neither_form_is_refused(text: str) -> None:
    with pytest.raises(InvalidOption, match=f"--filter {text}: a filter is key=value or a Qdrant filter as JSON"):
        parse_filter(text)


def test_key_value_matches_the_text_and_the_number_or_boolean_it_spells() -> None:
    def matched(text: str) -> list[object]:
        found = parse_filter(text)
        assert found is not None
        conditions = found.should or found.must or []
        return [c.match.value for c in conditions if isinstance(c, qm.FieldCondition) and
                isinstance(c.match, qm.MatchValue)]

    assert matched("n=5") == ["5", 5]
    assert matched("n=-12") == ["-12", -12]
    assert matched("flag=true") == ["true", True]
    assert matched("user=u-123") == ["u-123"]
    assert matched("n=05") == ["05"]  # not how a number is written: text only
    assert parse_filter(None) is None


@pytest.mark.parametrize(("name", "accepted"), [
    ("docs", True), ("docs v2", True), ("é", True), ("x" * 255, True), ("a.b", True),
    ("", False), ("x" * 256, False), ("a/b", False), ("a\\b", False), ("a:b", False), ("a*b", False),
    ("a?b", False), ('a"b', False), ("a<b", False), ("a|b", False), ("a\0b", False), (".", False), ("..", False),
])
def test_collection_names_as_the_server_takes_them(name: str, accepted: bool) -> None:
    if accepted:
        check_collection_name(name)
    else:
        with pytest.raises(InvalidOption, match="collection name"):
            check_collection_name(name)


@pytest.mark.parametrize(("spec", "problem"), [
    ("dense:-1:cosine", "the size must be from 1 to 65536 (Qdrant's limit), not -1"),
    ("dense:0:cosine", "not 0"),
    (f"dense:{MAX_DENSE_SIZE + 1}:cosine", f"not {MAX_DENSE_SIZE + 1}"),
    ("dense:x:cosine", "the size 'x' is not a whole number"),
    ("dense:384", "expected NAME:SIZE:DISTANCE"),
    (":384:dot", "expected NAME:SIZE:DISTANCE"),
    ("dense:384:cosin", "'cosin' is not a distance: Cosine, Euclid, Dot, Manhattan"),
])
def test_a_dense_vector_spec_out_of_qdrants_range_is_refused(spec: str, problem: str) -> None:
    with pytest.raises(InvalidOption, match=f"--dense {spec}: .*{problem}".replace("(", r"\(").replace(")", r"\)")):
        dense_vector(spec)


def test_the_largest_dense_vector_is_taken() -> None:
    assert dense_vector(f"v:{MAX_DENSE_SIZE}:DOT") == ("v", qm.VectorParams(size=MAX_DENSE_SIZE,
                                                                           distance=qm.Distance.DOT))


def test_every_vector_name_once() -> None:
    dense, sparse = new_vectors(["a:4:cosine"], ["b"])
    assert set(dense) == {"a"}
    assert set(sparse) == {"b"}
    with pytest.raises(InvalidOption, match="the vector 'a' is named twice"):
        new_vectors(["a:4:cosine", "a:8:dot"], [])
    with pytest.raises(InvalidOption, match="the vector 'a' is named twice"):
        new_vectors(["a:4:cosine"], ["a"])
    with pytest.raises(InvalidOption, match="the vector 'b' is named twice"):
        new_vectors([], ["b", "b"])


def test_what_an_existing_collection_cannot_hold() -> None:
    dump = {"dense": {"dense": {"size": 4}, "other": {"size": 2}}, "sparse": {"bm25": {}}}
    assert unfit_vectors(dump, dump) == []
    assert unfit_vectors(dump, {"dense": {"dense": {"size": 8}, "other": {"size": 2}, "more": {"size": 3}},
                                "sparse": {}}) == ["'dense' has 8 dimensions, the dump's 4", "no sparse vector 'bm25'"]
    assert unfit_vectors(dump, {"dense": {}, "sparse": {"dense": {}}}) == [
        "no dense vector 'dense'", "no dense vector 'other'", "no sparse vector 'bm25'"]


def test_topics_says_what_exists_and_that_partitions_stay() -> None:
    assert topics_line(["a", "b"], {}, 4) == "created: a, b"
    assert topics_line([], {"a": 2, "b": 2}, 2) == "created: nothing (all exist); a, b exist with 2 partitions"
    assert topics_line(["c"], {"a": 2, "b": 3}, 3) == (
        "created: c; a exists with 2 partitions, not changed to 3 (--partitions is for new topics); "
        "b exists with 3 partitions")
