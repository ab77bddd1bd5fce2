"""``audit --document``'s answer from the trail alone (connector/audit/documents.py): the batches that
wrote a document's chunk sets, the one it has now and whether that is proven, and with ``--offset``
the chunk set that offset's batch left. Verification events made by the connector's own model."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from rich.console import Console

from connector.audit.documents import LISTED_FILTERS, DocumentQuestion, answer, document_batch, parse_document
from connector.audit.render import print_document
from connector.domain.records import (
    ChunkTotals,
    DocumentChunks,
    FilterCheck,
    Latency,
    OffsetRange,
    PointsTouched,
    VerificationEvent,
    VerificationOutcome,
)
from connector.stream.window import filters

START = datetime(2026, 12, 1, tzinfo=timezone.utc)
UUID_DOC = str(uuid.UUID(int=7))


def verification(n: int, offsets: tuple[int, int], documents: dict[Any, int], *, status: str = "verified",
                 changed: int | None = None, collection: str = "articles", partition: int = 0,
                 filters: tuple[tuple[int, str, int], ...] = ()) -> dict[str, Any]:
    """Batch ``n`` of source offsets ``offsets``, writing ``count`` chunks of each document it lists
    (``changed``: how many documents it changed, listed or not; ``filters``: the filter events it
    applied, as (offset, op, points matched))."""
    checks = [FilterCheck(partition=partition, offset=offset, op=op, method="points", matched=matched,
                          checked_points=matched, ids_digest="") for offset, op, matched in filters]
    rows = [DocumentChunks(document_id=doc, written=count, reused=0, embedded=count, deleted=0, count=count,
                           digest=f"digest-{n}-{doc}") for doc, count in documents.items()]
    event = VerificationEvent(
        batch_id=f"batch-{n}", collection=collection, topic="patches",
        ranges=[OffsetRange(partition=partition, first_offset=offsets[0], last_offset=offsets[1])],
        event_count=1, applied_event_count=1, operations={"upsert": 1}, request_operations=1, qdrant_requests=1,
        points=PointsTouched(count=0, digest=""), applied_at=START + timedelta(seconds=n),
        latency=Latency(window_seconds=0, embed_seconds=0, apply_seconds=0, verify_seconds=0),
        verification=VerificationOutcome(status=status, filters=checks),  # type: ignore[arg-type]
        dead_letters=[], documents=rows,
        chunks=ChunkTotals(documents=len(rows) if changed is None else changed, written=0, reused=0, embedded=0,
                           deleted=0),
        worker="test")
    return event.model_dump(mode="json")


def ask(records: list[dict[str, Any]], document: str, offset: int | None = None,
        partition: int | None = None) -> dict[str, Any]:
    question = DocumentQuestion(**{**parse_document(document).__dict__, "offset": offset, "partition": partition})
    batches = [b for i, record in enumerate(records)
               if (b := document_batch(record, (record["applied_at"], 0, i), question)) is not None]
    return answer(question, batches)


TRAIL = [
    verification(1, (0, 9), {1: 12, UUID_DOC: 3}),
    verification(2, (10, 19), {2: 4}),  # another document
    verification(3, (0, 9), {1: 12, UUID_DOC: 3}),  # a replay of batch 1 (after a crash)
    verification(4, (20, 29), {1: 8}),
    verification(5, (0, 3), {1: 99}, collection="other"),  # another collection's document 1
]


def test_the_batches_that_wrote_a_document_and_the_chunk_set_it_has_now() -> None:
    report = ask(TRAIL, "articles/1")
    assert [b["batch_id"] for b in report["batches"]] == ["batch-1", "batch-3", "batch-4"]
    assert report["final"]["batch_id"] == "batch-4"
    assert (report["final"]["count"], report["final"]["digest"]) == (8, "digest-4-1")
    assert report["proven"]
    assert report["verdict"] == "document articles/1: 8 chunks, digest digest-4-1, left by batch batch-4, verified"
    by_uuid = ask(TRAIL, f"articles/{UUID_DOC.upper()}")  # a UUID in any case names the same document
    assert by_uuid["final"]["batch_id"] == "batch-3"
    assert by_uuid["document_id"] == UUID_DOC
    nothing = ask(TRAIL, "articles/3")
    assert (nothing["proven"], nothing["final"]) == (False, None)
    assert nothing["verdict"] == "no batch of the trail changed document articles/3"


def test_a_trail_record_that_cannot_be_read_leaves_nothing_proven() -> None:
    question = DocumentQuestion(**{**parse_document("articles/1").__dict__, "offset": None, "partition": None})
    batches = [b for i, record in enumerate(TRAIL)
               if (b := document_batch(record, (record["applied_at"], 0, i), question)) is not None]
    assert answer(question, batches, unreadable=0)["proven"]
    report = answer(question, batches, unreadable=2)
    assert (report["proven"], report["unreadable_trail_records"]) == (False, 2)
    assert report["verdict"].endswith("but 2 records of the trail could not be read, and may have changed it: "
                                      "not proven")


def test_what_the_trail_cannot_prove_is_said() -> None:
    # a later batch changed more documents than it lists: it may have changed this one
    unlisted = ask([*TRAIL, verification(6, (30, 39), {2: 1}, changed=150)], "articles/1")
    assert unlisted["final"]["batch_id"] == "batch-4"
    assert not unlisted["proven"]
    assert "a later batch (batch-6) lists fewer documents than it changed" in unlisted["verdict"]
    # the last batch's read-back differed
    mismatch = ask([*TRAIL, verification(6, (30, 39), {1: 5}, status="mismatch")], "articles/1")
    assert not mismatch["proven"]
    assert mismatch["verdict"].endswith("whose read-back says 'mismatch': not proven")
    # no batch lists it, but one may hold it
    maybe = ask([verification(1, (0, 9), {2: 1}, changed=120)], "articles/1")
    assert not maybe["proven"]
    assert (maybe["batches"][0]["listed"], maybe["batches"][0]["lists_all"]) == (False, False)
    assert maybe["verdict"] == ("no batch lists document articles/1, and 1 batches of it may have changed it unlisted "
                                "(first: batch-1, which lists fewer documents than it changed): not proven")


def test_an_offset_narrows_to_its_final_word() -> None:
    first = ask(TRAIL, "articles/1", offset=5)
    assert [b["batch_id"] for b in first["batches"]] == ["batch-1", "batch-3"]  # replayed: the last word counts
    assert first["final"]["batch_id"] == "batch-3"
    assert first["proven"]
    assert first["verdict"].endswith("left by batch batch-3 at offset 5, verified")
    elsewhere = ask(TRAIL, "articles/1", offset=12)
    assert (elsewhere["proven"], elsewhere["final"]) == (True, None)
    assert elsewhere["verdict"] == "the batch at offset 12 (batch-2) did not change document articles/1"
    beyond = ask(TRAIL, "articles/1", offset=500)
    assert not beyond["proven"]
    assert beyond["verdict"] == "no verification event of articles covers offset 500"
    other_partition = ask(TRAIL, "articles/1", offset=5, partition=1)
    assert other_partition["batches"] == []
    cut = ask([verification(1, (0, 9), {2: 1}, changed=101)], "articles/1", offset=3)
    assert not cut["proven"]
    assert cut["verdict"] == ("the batch at offset 3 (batch-1) lists fewer documents than it changed: it may have "
                              "changed document articles/1; not proven")


DELETE_BY_FILTER = verification(6, (30, 30), {}, filters=((30, "delete", 4),))  # e.g. tenant acme, or a truncate
LATER = "; a later batch (batch-6) applied a delete by filter at offset 0:30 that matched 4 points"


def test_a_later_filter_event_may_have_changed_the_document_unlisted() -> None:
    # filter events are planned without documents: batch 6 lists none, yet may have deleted document 1's chunks
    deleted = ask([*TRAIL, DELETE_BY_FILTER], "articles/1")
    assert (deleted["proven"], deleted["final"]["batch_id"]) == (False, "batch-4")
    assert deleted["verdict"] == (f"document articles/1: 8 chunks, digest digest-4-1, left by batch batch-4{LATER} "
                                  "and may have changed it: not proven")
    assert deleted["batches"][-1]["filters"] == [{"partition": 0, "offset": 30, "op": "delete", "matched": 4}]
    at_filter = ask([*TRAIL, DELETE_BY_FILTER], "articles/1", offset=30)
    assert (at_filter["proven"], at_filter["final"]) == (False, None)
    assert at_filter["verdict"] == ("the batch at offset 30 (batch-6) applied a delete by filter at offset 0:30 that "
                                    "matched 4 points: it may have changed document articles/1; not proven")
    never_listed = ask([*TRAIL, DELETE_BY_FILTER], "articles/3")
    assert never_listed["verdict"].startswith("no batch lists document articles/3, and 1 batches of it may have "
                                              "changed it unlisted (first: batch-6, which applied a delete by filter")
    payload = ask([*TRAIL, verification(6, (30, 30), {}, filters=((30, "set_payload", 2),))], "articles/1")
    assert not payload["proven"]
    assert "a later batch (batch-6) applied a set_payload by filter at offset 0:30" in payload["verdict"]


def test_a_filter_event_in_the_batch_that_wrote_the_document_may_have_come_after_its_events() -> None:
    both = ask([*TRAIL[:4], verification(6, (30, 31), {1: 5}, filters=((31, "delete", 9),))], "articles/1")
    assert not both["proven"]
    assert both["verdict"] == ("document articles/1: 5 chunks, digest digest-6-1, left by batch batch-6; that batch "
                               "also applied a delete by filter at offset 0:31 that matched 9 points, maybe after "
                               "the document's events, and may have changed it: not proven")
    at_offset = ask([*TRAIL[:4], verification(6, (30, 31), {1: 5}, filters=((31, "delete", 9),))], "articles/1",
                    offset=30)
    assert not at_offset["proven"]


def test_what_proves_a_filter_event_did_not_change_the_document() -> None:
    # its filter matched no point
    nothing_matched = ask([*TRAIL, verification(6, (30, 30), {}, filters=((30, "delete", 0),))], "articles/1")
    assert nothing_matched["proven"]
    assert [b["batch_id"] for b in nothing_matched["batches"]] == ["batch-1", "batch-3", "batch-4"]
    at_offset = ask([*TRAIL, verification(6, (30, 30), {}, filters=((30, "delete", 0),))], "articles/1", offset=30)
    assert at_offset["verdict"] == "the batch at offset 30 (batch-6) did not change document articles/1"
    # the document had no chunk left to match: deleted (count 0) before the filter event
    gone = ask([*TRAIL, verification(5, (25, 25), {1: 0}), DELETE_BY_FILTER], "articles/1")
    assert gone["proven"]
    assert gone["verdict"] == "document articles/1: 0 chunks, digest digest-5-1, left by batch batch-5, verified"


def test_batches_whose_filter_events_are_not_all_recorded_may_have_changed_the_document() -> None:
    # applied without verification (QCC_VERIFY_AFTER_APPLY off): no filter event is recorded
    unverified = ask([*TRAIL, verification(6, (30, 30), {2: 1}, status="skipped")], "articles/1")
    assert not unverified["proven"]
    assert unverified["verdict"].endswith("; a later batch (batch-6) was applied without verification (it records "
                                          "no filter event) and may have changed it: not proven")
    # as many filter events listed as an event lists: more may have been left out, even if these matched nothing
    assert LISTED_FILTERS == filters.LISTED_FILTERS  # the worker's bound, which the audit cannot import
    many = tuple((30 + i, "delete", 0) for i in range(100))
    capped = ask([*TRAIL, verification(6, (30, 129), {}, filters=many)], "articles/1")
    assert not capped["proven"]
    assert "lists 100 filter events, as many as an event lists (more may be left out)" in capped["verdict"]


@pytest.mark.parametrize(("value", "problem"), [
    ("articles", "give COLLECTION/ID"), ("articles/", "give COLLECTION/ID"), ("/1", "give COLLECTION/ID"),
    ("articles/x1", "the document id 'x1' is neither an unsigned integer nor a UUID"),
    ("articles/-1", "neither an unsigned integer nor a UUID")])
def test_a_document_is_named_collection_slash_id(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_document(value)
    assert parse_document("articles/42") == DocumentQuestion("articles", 42)


def test_the_answer_for_people_shows_each_batch_and_ends_with_the_verdict() -> None:
    console = Console(record=True, width=200)
    report = ask([*TRAIL, verification(6, (30, 39), {2: 1}, changed=150)], "articles/1")
    print_document(console, report | {"unreadable_trail_records": 0})
    text = console.export_text()
    assert text.count("batch-") >= 4  # the three that wrote it and the one that may have
    assert "maybe: not all listed" in text
    assert text.rstrip().endswith(report["verdict"][-60:])
    console = Console(record=True, width=200)
    print_document(console, ask([*TRAIL, DELETE_BY_FILTER], "articles/1") | {"unreadable_trail_records": 0})
    assert "maybe: delete by filter" in console.export_text()
