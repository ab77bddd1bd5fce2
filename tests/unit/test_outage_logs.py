"""The outage tracker and the filter that feeds it: an outage of any length and any number of
library lines is one warning, a summary at most every 30 s, and one line when it ends."""

from __future__ import annotations

import json
import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.logs import ConnectionNoiseFilter, JsonFormatter, OutageTracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _setup(name: str) -> tuple[OutageTracker, Lines, Clock, logging.Handler]:
    """A tracker on its own logger, and a handler filtered like the worker's."""
    lines, clock = Lines(), Clock()
    logger = logging.getLogger(f"test.outage.{name}")
    logger.handlers[:] = [lines]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    tracker = OutageTracker("Kafka broker", logger, clock=clock, wall=lambda: 1_700_000_000.0)
    handler = Lines()
    handler.addFilter(ConnectionNoiseFilter(tracker))
    return tracker, lines, clock, handler


def _library_record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.makeLogRecord({"name": name, "levelno": level, "levelname": logging.getLevelName(level),
                                  "msg": message})


def test_a_flood_of_connection_failures_is_one_warning_then_a_line_when_it_ends() -> None:
    tracker, lines, clock, handler = _setup("flood")
    for i in range(3100):
        clock.now += 0.01  # 31 s of failures at 100 a second
        handler.handle(_library_record("aiokafka.conn", logging.ERROR, "Unable connect to node with id 1: refused"))
        if i % 2:
            handler.handle(_library_record("aiokafka.cluster", logging.ERROR, "Unable to update metadata from [1]"))
    assert handler.records == []  # nothing of the libraries written
    assert tracker.down
    assert tracker.failures == 4650
    tracker.recovered()
    messages = [r.getMessage() for r in lines.records]
    assert len(messages) == 3, messages  # begin, one summary at 30 s, end
    assert messages[0].startswith("Kafka broker unreachable: Unable connect to node with id 1")
    assert "still unreachable after 30 s, " in messages[1]
    assert messages[2].startswith("Kafka broker answers again after 31.0 s unreachable, 4650 connection failures")
    assert [r.levelno for r in lines.records] == [logging.WARNING, logging.WARNING, logging.INFO]
    assert not tracker.down
    assert tracker.reason() is None


@given(st.lists(st.floats(min_value=0.0, max_value=20.0), min_size=1, max_size=400))
@settings(max_examples=200, deadline=None)
def test_summaries_come_at_most_every_30_seconds(gaps: list[float]) -> None:
    tracker, lines, clock, _ = _setup("summaries")
    lines.records.clear()
    for gap in gaps:
        clock.now += gap
        tracker.failed("refused")
    tracker.recovered()
    warnings = [r for r in lines.records if r.levelno == logging.WARNING]
    span = sum(gaps[1:])
    assert len(warnings) <= 1 + span // 30
    assert sum(1 for r in lines.records if r.levelno == logging.INFO) == 1


def test_other_lines_go_through_and_the_reason_names_the_service_and_since() -> None:
    tracker, lines, _, handler = _setup("others")
    kept = [
        _library_record("aiokafka.consumer", logging.INFO, "Unable connect to node with id 1"),  # below warning
        _library_record("faust.worker", logging.WARNING, "Timer Monitor.sampler woke up too late"),
        _library_record("connector.stream.pipeline", logging.ERROR, "Unable connect to node"),  # not a library
        # a broker that answers refused the heartbeat: the group's business, not an outage
        _library_record("aiokafka.consumer.group_coordinator", logging.WARNING,
                        "Heartbeat failed: local member_id was not recognized; resetting and re-joining group"),
    ]
    for record in kept:
        handler.handle(record)
    assert handler.records == kept
    assert lines.records == []
    handler.handle(_library_record("aiokafka", logging.ERROR, "Unable connect to \"127.0.0.1:1\": [Errno 111]"))
    # while the broker is known down, any of the libraries' warnings is a symptom of it
    handler.handle(_library_record("faust.transport.drivers.aiokafka", logging.WARNING, "Heartbeat something"))
    assert handler.records == kept
    reason = tracker.reason()
    assert reason is not None
    assert reason.startswith("Kafka broker unreachable since 2023-11-14T22:13:20+00:00 (2 connection failures)")


def test_the_tracker_lines_are_json_with_their_numbers() -> None:
    tracker, lines, clock, _ = _setup("json")
    tracker.failed("refused")
    clock.now += 12.5
    tracker.recovered()
    body = json.loads(JsonFormatter().format(lines.records[-1]))
    assert body["level"] == "info"
    assert body["outage"] == "Kafka broker"
    assert body["down_seconds"] == 12.5
    assert body["failures"] == 1
