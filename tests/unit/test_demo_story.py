"""The demo's story keeps the rule it teaches: every event of a point shares that point's key,
the articles exist before anything else names them, and the only dead letters it asks for are
the records it breaks on purpose. Pure: no broker, no worker (tests/integration/test_demo.py
runs it)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from connector.dev.demo import BROKEN_RECORDS, COLLECTION, sample_story
from connector.domain.changes import filter_of, point_ids_of
from connector.kafka.producer import build_event, event_key


@pytest.mark.parametrize("events", [1, 30, 300, 2000])
def test_the_same_seed_tells_the_same_story(events: int) -> None:
    assert sample_story(events, seed=7) == sample_story(events, seed=7)
    assert len(sample_story(events).records) == events + len(BROKEN_RECORDS)


def test_another_seed_tells_another() -> None:
    assert sample_story(300, seed=1) != sample_story(300, seed=2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_event_of_a_point_is_keyed_by_that_point(seed: int) -> None:
    for record in sample_story(2000, seed).records:
        if record.event is None:
            continue
        event = build_event(record.event)
        ids = point_ids_of(event)
        if filter_of(event) is not None:
            assert not ids  # names no point: its order against a point's own events is not promised
            continue
        assert len(ids) == 1, record.event
        assert event_key(event) == f"{COLLECTION}/{ids[0]}".encode()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_only_the_records_broken_on_purpose_can_be_refused(seed: int) -> None:
    story = sample_story(2000, seed)
    articles = set()
    for record in story.arrivals:
        assert record.event is not None
        assert record.event["op"] == "upsert"
        assert record.broken is None
        articles.update(point_ids_of(build_event(record.event)))
    for record in story.life:
        if record.event is None:
            assert record.broken is not None  # bytes that are not an event
            continue
        named = set(point_ids_of(build_event(record.event)))
        if record.broken == "point_not_found":
            assert named
            assert not named & articles
        else:
            assert record.broken is None
            assert named <= articles, record.event
    meant = story.meant_dead()
    assert meant == Counter({"point_not_found": meant["point_not_found"], "invalid_json": 1, "invalid_utf8": 1,
                             "vector_size_mismatch": 1})
    assert meant["point_not_found"] > 0


def test_the_compose_demo_publishes_the_same_story() -> None:
    """examples/demo-events.jsonl (the compose demo's producer) is the story of 300 events."""
    example = Path(__file__).resolve().parents[2] / "examples" / "demo-events.jsonl"
    published = [json.loads(line) for line in example.read_text(encoding="utf-8").splitlines()]
    assert published == [record.event for record in sample_story(300).records if record.event is not None]
