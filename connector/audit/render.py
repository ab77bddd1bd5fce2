"""The audit's report: a table per source partition for people, JSON for programs."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from connector.audit.accounting import PartitionReport

__all__ = ["as_json", "print_report"]


def _runs(runs: list[tuple[int, int]], limit: int = 5) -> str:
    shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit])
    return shown + (f" (+{len(runs) - limit} runs)" if len(runs) > limit else "")


def as_json(reports: list[PartitionReport], *, strict: bool, unreadable: int) -> dict[str, Any]:
    """The machine-readable report (its shape: docs/audit.md)."""
    return {
        "complete": all(r.complete(strict) for r in reports),
        "strict": strict,
        "unreadable_trail_records": unreadable,
        "partitions": [
            {
                "topic": r.topic, "partition": r.partition, "from_offset": r.start, "to_offset": r.end,
                "applied": r.applied, "unchanged": r.unchanged, "dead_lettered": dict(r.dead_lettered),
                "replayed": r.replayed, "replays_not_verified": r.replays_not_verified, "gaps": r.gaps,
                "mismatches": r.mismatches, "mismatch_batches": r.mismatch_batches, "partial": r.partial,
                "unverified": r.unverified, "missing_dead_letters": r.missing_dead_letters,
                "complete": r.complete(strict),
            }
            for r in reports
        ],
    }


def print_report(console: Console, reports: list[PartitionReport], *, strict: bool, unreadable: int) -> None:
    table = Table(title="audit: every source offset applied in a verified batch or dead-lettered")
    for column in ("topic", "partition", "offsets", "applied", "dead-lettered", "replayed", "gaps", "mismatches",
                   "unverified", "complete"):
        table.add_column(column)
    for r in reports:
        dead = ", ".join(f"{n} {code}" for code, n in sorted(r.dead_lettered.items())) or "0"
        problems = r.mismatches + r.missing_dead_letters
        table.add_row(
            r.topic, str(r.partition), f"{r.start}-{r.end - 1}" if r.end > r.start else "none",
            str(r.applied + r.unchanged), dead, str(r.replayed), _runs(r.gaps) or "0", _runs(problems) or "0",
            _runs(r.unverified) or "0", "yes" if r.complete(strict) else "NO",
        )
    console.print(table)
    for r in reports:
        where = f"{r.topic}[{r.partition}]"
        if r.gaps:
            console.print(f"{where}: no verification event covers offsets {_runs(r.gaps, 20)}")
        if r.mismatches:
            console.print(f"{where}: the read-back differed at offsets {_runs(r.mismatches, 20)} "
                          f"(batches {', '.join(r.mismatch_batches[:5])})")
        if r.missing_dead_letters:
            console.print(f"{where}: dead-lettered at offsets {_runs(r.missing_dead_letters, 20)}, "
                          "but no dead-letter record is on the topic")
        if r.replays_not_verified:
            console.print(f"{where}: replayed offsets whose last read-back was not verified: "
                          f"{_runs(r.replays_not_verified, 20)}")
        if r.unverified:
            console.print(f"{where}: applied without verification (QCC_VERIFY_AFTER_APPLY=false) at "
                          f"{_runs(r.unverified, 20)}")
    if unreadable:
        console.print(f"{unreadable} records of the verification and dead-letter topics could not be read")
    complete = all(r.complete(strict) for r in reports)
    console.print("trail complete" if complete else "trail INCOMPLETE")
