"""The data the window stages share: a consumed record, what the stages learn about it, and
what a window hands back to be published. No IO."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from connector.domain.cdc import RowEvents
from connector.domain.changes import ChangeEvent, FenceRecord, RejectionCode
from connector.domain.operations import Op, PointKey
from connector.domain.records import DeadLetterRecord, ErrorInfo, VerificationEvent
from connector.domain.sharding import Selector

__all__ = ["Item", "Record", "Retarget", "WindowResult", "fail", "fail_together", "ids_of", "listed"]

Retarget = Callable[[ChangeEvent], "ChangeEvent | None"]


@dataclass(frozen=True)
class Record:
    """A consumed Kafka record, as the window needs it."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp_ms: int | None = None


@dataclass
class Item:
    """One record in a window, as the stages see it: parsed, then failed or not."""

    position: int
    record: Record
    event: ChangeEvent | None = None
    error: ErrorInfo | None = None
    claimed_collection: str | None = None  # from a rejected event, when it names one validly
    fence: FenceRecord | None = None
    skipped: bool = False  # nothing to apply (a retargeted event with nothing left)
    recheck: bool = False  # read its texts before every earlier patch was applied (a rebalance cut the wait short)
    shard_key: Selector | None = None  # named by the event or derived (connector/domain/sharding.py)
    # A record that means several events (a CDC row change): its first item holds the record,
    # each further one points at it. They apply together or fail together (fail_together).
    part_of: int | None = None
    skip_reason: str | None = None  # a CDC record with nothing to apply: why (counted)
    # A CDC row change, on each of its items (connector/stream/window/rows.py): ``row`` what the
    # change is; ``form`` "change" for the events of the change alone, "whole" for those of the
    # whole row, of which one form is applied and the other skipped
    row: RowEvents | None = None
    form: Literal["change", "whole"] | None = None
    # texts the dense model read only the start of (its window): (point id, vector) -> (chars, chars read)
    cut_by_model: dict[tuple[PointKey, str], tuple[int, int]] = field(default_factory=dict)

    @property
    def record_position(self) -> int:
        """The position of the first item of this item's record."""
        return self.position if self.part_of is None else self.part_of

    @property
    def collection(self) -> str | None:
        return self.event.collection if self.event is not None else self.claimed_collection


@dataclass
class WindowResult:
    verifications: list[VerificationEvent] = field(default_factory=list)
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)
    # Re-embeds applied from texts that may predate earlier patches: published again to the
    # re-embed topic before the window is committed, so they are re-done after those patches.
    rechecks: list[Record] = field(default_factory=list)

    def extend(self, other: WindowResult) -> None:
        self.verifications += other.verifications
        self.dead_letters += other.dead_letters
        self.rechecks += other.rechecks


def fail(item: Item, code: RejectionCode, message: str) -> None:
    """Mark an item failed (dead-lettered with this code); the first failure stays."""
    if item.error is None:
        item.error = ErrorInfo(code=code, message=message)


def fail_together(items: Sequence[Item]) -> None:
    """The events of one record apply all or none: the first failure of one fails every one, so
    the record is dead-lettered once, with that reason, and none of its events is sent."""
    if all(item.part_of is None for item in items) or all(item.error is None for item in items):
        return  # a record per item, or no failure: nothing to spread (called several times a window)
    by_record: dict[int, list[Item]] = {}
    for item in items:
        by_record.setdefault(item.record_position, []).append(item)
    for members in by_record.values():
        error = next((member.error for member in members if member.error is not None), None)
        if error is not None:
            for member in members:
                member.error = member.error or error


def ids_of(ops: Sequence[Op]) -> list[PointKey]:
    return list(dict.fromkeys(pid for op in ops for pid in op.point_ids()))


def listed(ids: Sequence[PointKey], limit: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
