"""The audit's report: a table per source partition for people, JSON for programs. Both say the
same verdict (:func:`verdict`) and the same reasons per partition (:func:`reasons`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from connector.audit.accounting import NOTES, PartitionReport

__all__ = ["as_json", "notes", "print_document", "print_report", "reasons", "verdict"]

NONE = "-"  # an empty list of offsets: never "0", which is an offset


def _runs(runs: list[tuple[int, int]], limit: int = 5) -> str:
    shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit])
    return shown + (f" (+{len(runs) - limit} runs)" if len(runs) > limit else "")


def reasons(report: PartitionReport, strict: bool) -> list[str]:
    """Why the partition is not proven; empty when it is complete."""
    found = [report.unproven] if report.unproven else []
    if report.gaps:
        found.append(f"no verification event covers offsets {_runs(report.gaps, 20)}")
    if report.mismatches:
        found.append(f"the read-back differed at offsets {_runs(report.mismatches, 20)} "
                     f"(batches {', '.join(report.mismatch_batches[:5])})")
    if report.missing_dead_letters:
        found.append(f"dead-lettered at offsets {_runs(report.missing_dead_letters, 20)}, "
                     "but no dead-letter record is on the topic")
    if strict and report.unverified:
        found.append(f"applied without verification at offsets {_runs(report.unverified, 20)} (--strict)")
    return found


def notes(report: PartitionReport) -> list[str]:
    """What the partition's batches say is applied as sent but not as the source has it (not a
    reason: the trail is complete; the verification events list the points)."""
    return [f"{sum(batches.values())} {NOTES[note]}, in batches {', '.join(list(batches)[:5])}"
            + (f" (+{len(batches) - 5})" if len(batches) > 5 else "")
            for note, batches in sorted(report.noted.items())]


def verdict(reports: list[PartitionReport], *, strict: bool, group: str) -> str:
    """One line that says what was proven, and what was not."""
    failed = sum(1 for r in reports if not r.complete(strict))
    if failed:
        return f"trail INCOMPLETE: {failed} of {len(reports)} partitions not proven"
    behind = sum(r.behind for r in reports)
    unverified = _unverified(reports)  # complete without --strict, but not verified: said, never hidden
    applied = (f"applied ({unverified} without verification: QCC_VERIFY_AFTER_APPLY was off)" if unverified
               else "applied in a verified batch")
    if behind:
        return (f"trail complete up to the commits of group {group}: every offset before them {applied} or "
                f"dead-lettered; {behind} records after them not proven (--wait proves them)")
    return f"trail complete: every offset up to the log end {applied} or dead-lettered"


def _unverified(reports: list[PartitionReport]) -> int:
    """Offsets applied in batches that were not verified (QCC_VERIFY_AFTER_APPLY off)."""
    return sum(last - first + 1 for r in reports for first, last in r.unverified)


def as_json(reports: list[PartitionReport], *, strict: bool, unreadable: int, group: str) -> dict[str, Any]:
    """The machine-readable report (its shape: docs/audit.md)."""
    return {
        "complete": all(r.complete(strict) for r in reports),
        "verdict": verdict(reports, strict=strict, group=group),
        "consumer_group": group,
        "behind": sum(r.behind for r in reports),
        "unverified": _unverified(reports),
        "strict": strict,
        "unreadable_trail_records": unreadable,
        "partitions": [
            {
                "topic": r.topic, "partition": r.partition, "from_offset": r.start, "to_offset": r.end,
                "behind": r.behind, "applied": r.applied, "unchanged": r.unchanged,
                "dead_lettered": dict(r.dead_lettered), "replayed": r.replayed,
                "replays_not_verified": r.replays_not_verified, "gaps": r.gaps, "mismatches": r.mismatches,
                "mismatch_batches": r.mismatch_batches, "partial": r.partial, "unverified": r.unverified,
                "missing_dead_letters": r.missing_dead_letters, "complete": r.complete(strict),
                "reasons": reasons(r, strict),
                "notes": {note: {"count": sum(batches.values()), "batches": list(batches)}
                          for note, batches in sorted(r.noted.items())},
            }
            for r in reports
        ],
    }


def print_report(console: Console, reports: list[PartitionReport], *, strict: bool, unreadable: int,
                 group: str) -> None:
    headline = verdict(reports, strict=strict, group=group)
    table = Table(title=Text(f"audit: {headline}"))  # Text: a group name is no markup
    for column in ("topic", "partition", "offsets", "behind", "applied", "dead-lettered", "replayed", "gaps",
                   "mismatches", "unverified", "complete"):
        table.add_column(column)
    for r in reports:
        dead = ", ".join(f"{n} {code}" for code, n in sorted(r.dead_lettered.items())) or "0"
        problems = r.mismatches + r.missing_dead_letters
        table.add_row(
            r.topic, str(r.partition), f"{r.start}-{r.end - 1}" if r.end > r.start else "none", str(r.behind),
            str(r.applied + r.unchanged), dead, str(r.replayed), _runs(r.gaps) or NONE, _runs(problems) or NONE,
            _runs(r.unverified) or NONE, "yes" if r.complete(strict) else "NO",
        )
    console.print(table)
    for r in reports:
        where = f"{r.topic}[{r.partition}]"
        for reason in reasons(r, strict):
            console.print(f"{where}: {reason}", markup=False)
        for note in notes(r):
            console.print(f"{where}: note: {note}", markup=False)
        if r.replays_not_verified:
            console.print(f"{where}: replayed offsets whose last read-back was not verified: "
                          f"{_runs(r.replays_not_verified, 20)}")
        if r.unverified and not strict:
            console.print(f"{where}: applied without verification (QCC_VERIFY_AFTER_APPLY=false) at "
                          f"{_runs(r.unverified, 20)}")
    if unreadable:
        console.print(f"{unreadable} records of the verification and dead-letter topics could not be read")
    console.print(headline, markup=False)


def _unlisted(batch: dict[str, Any]) -> str:
    """What a batch that does not list the document may have done to it."""
    if not batch.get("lists_all", True):
        return "maybe: not all listed"
    if batch.get("filters"):
        return f"maybe: {batch['filters'][0]['op']} by filter"
    return "maybe: filters not listed" if batch.get("filters_unknown") else "not listed"


def print_document(console: Console, report: dict[str, Any]) -> None:
    """``audit --document``'s answer (connector/audit/documents.py) for people: the batches, then the verdict."""
    table = Table(title=Text(f"document {report['collection']}/{report['document_id']}"))
    for column in ("batch", "topic", "offsets", "applied at", "status", "written", "reused", "embedded", "deleted",
                   "count", "digest"):
        table.add_column(column)
    for batch in report["batches"]:
        offsets = ", ".join(f"{p}:{a}-{b}" if a != b else f"{p}:{a}" for p, a, b in batch["ranges"][:3])
        if batch["listed"]:
            counts = [str(batch[key]) for key in ("written", "reused", "embedded", "deleted", "count")]
        else:  # a batch that covers the offset asked, or may have changed the document without listing it
            counts = [_unlisted(batch), "", "", "", ""]
        table.add_row(batch["batch_id"][:12], batch["topic"], offsets, batch["applied_at"], batch["status"], *counts,
                      str(batch.get("digest") or "")[:12])
    console.print(table)
    if report.get("unreadable_trail_records"):
        console.print(f"{report['unreadable_trail_records']} records of the verification topic could not be read")
    console.print(report["verdict"], markup=False)
