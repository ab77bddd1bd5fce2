"""The window's pure stages, each on its own: parse, operations, report, quarantine.

The stages that read Qdrant (admission, texts, readback) are driven on local mode in
tests/integration/test_window_stages.py; the whole window in tests/integration/.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from connector.domain.operations import Op
from connector.domain.records import ErrorInfo, VerificationOutcome
from connector.settings import Settings
from connector.stages import Stage
from connector.stream.window.embedding import operations_for
from connector.stream.window.items import Item, Record, WindowResult, fail_together
from connector.stream.window.parse import parse_record
from connector.stream.window.quarantine import process_quarantining
from connector.stream.window.report import Timings, report_batch

SETTINGS = Settings()


def record(offset: int, value: Any, partition: int = 0, topic: str = "patches") -> Record:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return Record(topic, partition, offset, raw, f"k{offset}".encode())


def set_payload(pid: int, collection: str = "docs") -> dict[str, Any]:
    return {"schema_version": 1, "collection": collection, "op": "set_payload", "ids": [pid], "payload": {"v": pid}}


# --- records of several events ------------------------------------------------------------------


def test_the_events_of_one_record_fail_together_and_only_they() -> None:
    """A CDC record that means two events (positions 1, 2) fails whole when one fails; the
    records around it keep their own outcome."""
    items = [Item(0, record(0, {})), Item(1, record(1, {})), Item(2, record(1, {}), part_of=1), Item(3, record(2, {}))]
    fail_together(items)
    assert [item.error for item in items] == [None] * 4
    items[2].error = ErrorInfo(code="schema_violation", message="bad")
    items[3].error = ErrorInfo(code="point_not_found", message="gone")
    fail_together(items)
    assert [item.error.code if item.error else None for item in items] == [
        None, "schema_violation", "schema_violation", "point_not_found"]


# --- parse ------------------------------------------------------------------------------------


def test_parse_gives_an_event_a_rejection_or_a_fence() -> None:
    event = parse_record(0, record(0, set_payload(1)), SETTINGS, "patch")
    assert event.event is not None
    assert event.error is None
    assert event.collection == "docs"

    bad = parse_record(1, record(1, b"{not json"), SETTINGS, "patch")
    assert bad.event is None
    assert bad.error is not None
    assert bad.error.code == "invalid_json"
    assert bad.collection is None

    # a rejected event that names a valid collection is reported with that collection
    claimed = parse_record(2, record(2, {**set_payload(1), "op": "explode"}), SETTINGS, "patch")
    assert claimed.error is not None
    assert claimed.collection == "docs"

    fence = {"schema_version": 1, "kind": "fence", "collection": "docs", "target": "docs_v2",
             "migration_id": "m1", "expires_at": "2030-01-01T00:00:00Z"}
    parsed = parse_record(3, record(3, fence), SETTINGS, "patch")
    assert parsed.fence is not None
    assert parsed.fence.target == "docs_v2"


def test_parse_with_a_retarget_that_leaves_nothing_marks_the_item_skipped() -> None:
    item = parse_record(0, record(0, set_payload(1)), SETTINGS, "patch", retarget=lambda _event: None)
    assert item.skipped
    assert item.error is None


# --- operations -------------------------------------------------------------------------------


def test_operations_keep_window_order_and_skip_failed_events_and_reembeds_without_vectors() -> None:
    items = [parse_record(i, record(i, set_payload(i)), SETTINGS, "patch") for i in range(3)]
    reembed = {"schema_version": 1, "kind": "reembed", "collection": "docs", "ids": [7], "text_field": "text"}
    items.append(parse_record(3, record(3, reembed, topic="reembeds"), SETTINGS, "reembed"))
    items[1].error = ErrorInfo(code="point_not_found", message="x")
    ops = operations_for(items, {})
    assert [op.sources for op in ops] == [[0], [2]]
    with_vectors = operations_for(items, {3: {7: (0.5, 0.5)}})
    assert [(op.kind, op.sources) for op in with_vectors] == [("set_payload", [0]), ("set_payload", [2]),
                                                             ("update_vectors", [3])]


# --- report -----------------------------------------------------------------------------------


def test_report_counts_applied_events_and_lists_dead_letters_boundedly() -> None:
    items = [parse_record(i, record(10 + i, set_payload(i)), SETTINGS, "patch") for i in range(150)]
    for item in items[:120]:
        item.error = ErrorInfo(code="point_not_found", message="m" * 1000)
    applied = [Op("set_payload", ids=[i], payload={"v": i}, sources=[i]) for i in range(120, 150)]
    outcome = VerificationOutcome(status="verified")
    verification, dead = report_batch("docs", items, applied, 1, outcome, Timings(apply=0.5), 0.0)
    assert verification.event_count == 150
    assert verification.applied_event_count == 30
    assert verification.operations == {"set_payload": 30}
    assert [(r.first_offset, r.last_offset) for r in verification.ranges] == [(10, 159)]
    assert verification.dead_letter_count == 120
    assert len(verification.dead_letters) == 100  # bounded
    assert all(len(ref.message) <= 500 for ref in verification.dead_letters)
    assert len(dead) == 120
    assert {d.source.offset for d in dead} == set(range(10, 130))
    assert verification.points.count == 30
    again, _ = report_batch("docs", items, applied, 1, outcome, Timings(), 0.0)
    assert again.batch_id == verification.batch_id  # deterministic from the source


def test_report_ranges_are_exact_runs_per_partition() -> None:
    records = [record(o, set_payload(o), partition=p) for p, o in ((0, 1), (0, 2), (0, 4), (1, 3))]
    items = [parse_record(i, r, SETTINGS, "patch") for i, r in enumerate(records)]
    verification, _ = report_batch("docs", items, [], 0, VerificationOutcome(status="skipped"), Timings(), 0.0)
    assert [(r.partition, r.first_offset, r.last_offset) for r in verification.ranges] == [(0, 1, 2), (0, 4, 4),
                                                                                         (1, 3, 3)]


# --- quarantine -------------------------------------------------------------------------------


class Window:
    """A window processor stand-in whose records are applied unless they say "poison"."""

    def __init__(self, infrastructure: bool = False) -> None:
        self.applied: list[int] = []
        self.infrastructure = infrastructure

    async def process(self, records: Sequence[Record]) -> WindowResult:
        if any(b"poison" in (r.value or b"") for r in records):
            if self.infrastructure:
                raise KafkaConnectionError("broker down")
            raise RuntimeError("a record breaks this stage")
        self.applied += [r.offset for r in records]
        return WindowResult()

    def poisoned(self, rec: Record, message: str) -> WindowResult:
        item = Item(0, rec, error=ErrorInfo(code="poison_record", message=message))
        verification, dead = report_batch(None, [item], [], 0, VerificationOutcome(status="skipped"), Timings(), 0.0)
        return WindowResult([verification], dead)


async def test_quarantine_dead_letters_exactly_the_records_that_fail_alone() -> None:
    records = [record(i, b"poison" if i in (3, 9) else set_payload(i)) for i in range(12)]
    window = Window()
    result = await process_quarantining(window.process, window.poisoned, lambda: Stage.PLAN, records)
    assert [d.source.offset for d in result.dead_letters] == [3, 9]
    assert all(d.error.message.startswith("failed in stage plan (planning): RuntimeError") for d in result.dead_letters)
    assert sorted(window.applied) == [i for i in range(12) if i not in (3, 9)]


async def test_quarantine_raises_when_most_of_the_window_fails_or_the_failure_is_infrastructure() -> None:
    mostly_bad = [record(i, b"poison" if i < 3 else set_payload(i)) for i in range(4)]
    with pytest.raises(RuntimeError):
        await process_quarantining(Window().process, Window().poisoned, lambda: Stage.PLAN, mostly_bad)
    one_bad = [record(i, b"poison" if i == 0 else set_payload(i)) for i in range(4)]
    window = Window(infrastructure=True)
    with pytest.raises(KafkaConnectionError):
        await process_quarantining(window.process, window.poisoned, lambda: Stage.PLAN, one_bad)
    assert window.applied == []  # not bisected: no record's fault

