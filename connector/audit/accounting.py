"""The audit's proof, pure: per source partition, the final word on every offset of a range.

Inputs are what the topics hold: the verification events (each names its source topic and the
exact offset runs of its batch, its read-back status and the dead letters it listed) and the
dead-letter records. An offset's final word is the last verification event, in publish order,
whose ranges hold it: a replay after a crash covers offsets again, and the latest word counts
(docs/design.md). An offset is accounted for when that word applied it in a verified (or
partial) batch, or dead-lettered it and the dead letter is on its topic. What is left is named:
gaps (no word at all), mismatches (the read-back differed), dead letters listed but missing from
the dead-letter topic, and unverified batches (verification off: reported, an error only when
strict). A partition whose range asked for is not proven whole (connector/audit/scope.py)
carries the reason as ``unproven`` and is incomplete.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NOTES", "DeadLetter", "PartitionReport", "Verification", "account", "runs", "verification_from_json"]


@dataclass(frozen=True)
class Verification:
    """What the audit needs of one verification event; ``order`` is its place in publish order."""

    batch_id: str
    topic: str
    ranges: tuple[tuple[int, int, int], ...]  # (partition, first offset, last offset)
    status: str
    applied_event_count: int
    dead_letters: frozenset[tuple[int, int]]  # listed (partition, offset); at most 100 are listed
    dead_letter_count: int
    order: tuple[Any, ...] = ()
    notes: tuple[tuple[str, int], ...] = ()  # what the batch says is not as its source has it (NOTES), counted


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    code: str


@dataclass
class PartitionReport:
    topic: str
    partition: int
    start: int  # first offset proven
    end: int  # one past the last
    behind: int = 0  # records asked for after ``end``, not proven (scope.py)
    unproven: str | None = None  # why records asked for are not proven (scope.py): incomplete
    applied: int = 0
    unchanged: int = 0  # passed without a change (a migration fence, nothing to apply)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    replayed: int = 0  # offsets covered by more than one verification event
    replays_not_verified: list[tuple[int, int]] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    mismatches: list[tuple[int, int]] = field(default_factory=list)
    mismatch_batches: list[str] = field(default_factory=list)
    partial: list[tuple[int, int]] = field(default_factory=list)
    unverified: list[tuple[int, int]] = field(default_factory=list)
    missing_dead_letters: list[tuple[int, int]] = field(default_factory=list)
    noted: dict[str, dict[str, int]] = field(default_factory=dict)  # note -> batch id -> count, final words only

    def complete(self, strict: bool = False) -> bool:
        return not (self.unproven or self.gaps or self.mismatches or self.missing_dead_letters
                    or (strict and self.unverified))


NOTES = {
    # a verification event's count -> what it means; applied and verified as sent, but not as the source has it
    "unavailable": "points lacking columns their source did not send (Debezium's unavailable-value placeholder)",
    "texts_cut": "texts embedded from their first characters only",
}


def _notes(record: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    counts = {"unavailable": int(record["verification"].get("unavailable_count", 0)),
              "texts_cut": int(record.get("texts_cut_count", 0))}
    return tuple((note, n) for note, n in counts.items() if n)


def verification_from_json(record: dict[str, Any], order: tuple[Any, ...]) -> Verification | None:
    """A verification event as the audit reads it; None for a record of another kind."""
    if record.get("kind") != "verification":
        return None
    return Verification(
        batch_id=str(record["batch_id"]),
        topic=str(record["topic"]),
        ranges=tuple((int(r["partition"]), int(r["first_offset"]), int(r["last_offset"])) for r in record["ranges"]),
        status=str(record["verification"]["status"]),
        applied_event_count=int(record.get("applied_event_count", 0)),
        dead_letters=frozenset((int(d["partition"]), int(d["offset"])) for d in record.get("dead_letters", [])),
        dead_letter_count=int(record.get("dead_letter_count", len(record.get("dead_letters", [])))),
        order=order,
        notes=_notes(record),
    )


def runs(offsets: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted offsets as inclusive runs: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    result: list[tuple[int, int]] = []
    for offset in sorted(offsets):
        if result and offset == result[-1][1] + 1:
            result[-1] = (result[-1][0], offset)
        else:
            result.append((offset, offset))
    return result


def account(topic: str, partition: int, start: int, end: int, verifications: Sequence[Verification],
            dead_letters: Iterable[DeadLetter], *, behind: int = 0, unproven: str | None = None) -> PartitionReport:
    """The final word on every offset of ``topic``/``partition`` in [start, end); ``behind`` and
    ``unproven`` are the range's own (scope.py)."""
    words: dict[int, list[Verification]] = defaultdict(list)
    for verification in sorted((v for v in verifications if v.topic == topic), key=lambda v: v.order):
        for p, first, last in verification.ranges:
            if p == partition:
                for offset in range(max(first, start), min(last + 1, end)):
                    words[offset].append(verification)
    dead_codes = {d.offset: d.code for d in dead_letters if d.topic == topic and d.partition == partition}
    report = PartitionReport(topic, partition, start, end, behind, unproven)
    gaps, mismatches, partial, unverified, missing, not_verified_replays = [], [], [], [], [], []
    mismatch_batches: dict[str, None] = {}
    for offset in range(start, end):
        cover = words.get(offset)
        if not cover:
            gaps.append(offset)
            continue
        final = cover[-1]
        for note, count in final.notes:
            report.noted.setdefault(note, {})[final.batch_id] = count
        if len(cover) > 1:
            report.replayed += 1
            if final.status not in ("verified", "partial", "skipped"):
                not_verified_replays.append(offset)
        listed = (partition, offset) in final.dead_letters
        unlisted = final.dead_letter_count > len(final.dead_letters) and offset in dead_codes
        if listed or unlisted:
            if offset in dead_codes:
                report.dead_lettered[dead_codes[offset]] += 1
            else:
                missing.append(offset)
            continue
        if final.status == "mismatch":
            mismatches.append(offset)
            mismatch_batches[final.batch_id] = None
        elif final.status == "skipped":
            if final.applied_event_count:
                unverified.append(offset)
            else:
                report.unchanged += 1
            continue
        elif final.status == "partial":
            partial.append(offset)
        report.applied += 1
    report.gaps, report.mismatches, report.partial = runs(gaps), runs(mismatches), runs(partial)
    report.unverified, report.missing_dead_letters = runs(unverified), runs(missing)
    report.replays_not_verified = runs(not_verified_replays)
    report.mismatch_batches = list(mismatch_batches)
    return report
