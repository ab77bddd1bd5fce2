"""The supported Qdrant servers and what each version lacks (connector/versions.py): the version
a server answers, the floor's one-line refusal, the features turned off below their version."""

from __future__ import annotations

import pytest

from connector.versions import FEATURES, LOCAL, SUPPORTED_FLOOR, Feature, ServerVersion, parse_version


@pytest.mark.parametrize(("text", "expected"), [
    ("1.18.3", ServerVersion(1, 18, 3)),
    ("v1.13.6", ServerVersion(1, 13, 6)),
    ("1.19.0-dev", ServerVersion(1, 19, 0)),
    (" 1.20 ", ServerVersion(1, 20, 0)),
    ("2.0.1", ServerVersion(2, 0, 1)),
])
def test_a_server_answer_parses(text: str, expected: ServerVersion) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["", "qdrant", "1", "one.two.three", "latest"])
def test_an_answer_that_names_no_version_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Qdrant version"):
        parse_version(text)


def test_versions_order_by_number_not_by_text() -> None:
    assert ServerVersion(1, 9, 0) < ServerVersion(1, 13, 0) < ServerVersion(1, 13, 6) < ServerVersion(1, 100, 0)


@pytest.mark.parametrize("text", ["1.12.6", "1.0.0", "0.11.7", "1.12.99"])
def test_a_server_below_the_floor_is_refused_in_one_line(text: str) -> None:
    refusal = parse_version(text).refusal()
    assert refusal is not None
    assert "\n" not in refusal
    assert text in refusal
    assert "1.13" in refusal


@pytest.mark.parametrize("text", ["1.13.0", "1.13.6", "1.16.1", "1.18.3", "1.19.0", "2.0.0"])
def test_a_supported_server_is_not_refused(text: str) -> None:
    assert parse_version(text).refusal() is None


def test_the_floor_is_1_13() -> None:
    assert SUPPORTED_FLOOR == (1, 13)


def test_local_mode_counts_as_the_newest() -> None:
    assert LOCAL.refusal() is None
    assert LOCAL.lacking() == []
    assert str(LOCAL) == "local mode"


@pytest.mark.parametrize(("text", "lacking"), [
    ("1.13.6", [Feature.SHARD_KEY_FALLBACK, Feature.LIST_SHARD_KEYS]),
    ("1.15.4", [Feature.SHARD_KEY_FALLBACK, Feature.LIST_SHARD_KEYS]),
    ("1.16.0", [Feature.LIST_SHARD_KEYS]),
    ("1.17.0", []),
    ("1.18.3", []),
    ("1.19.0", []),
])
def test_what_a_server_lacks(text: str, lacking: list[Feature]) -> None:
    assert parse_version(text).lacking() == lacking


def test_every_feature_has_its_first_version_above_the_floor() -> None:
    # a feature every supported server has would be no row of the table
    assert set(FEATURES) == set(Feature)
    assert all(first > SUPPORTED_FLOOR for first in FEATURES.values())
