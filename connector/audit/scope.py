"""What the audit can prove on each source partition, and why not more; pure.

The offsets asked for run from ``start`` (the earliest retained, ``--from-offset``, or the first
at ``--since``) to the log end as it was when the audit began. What is proven of them ends at
the consumer group's committed offset (``--to committed``), at the log end (``--to end``), or,
with ``--wait``, at the log end once the group's commits reached it. Records asked for after
the proven range are counted as ``behind``. A range with nothing proven while records were asked
for is not complete: the group committed nothing there (a group name with a typo, a worker that
never ran) or nothing from the start on (``--since`` after its last commit), and the reason says
which; so does a wait that ended before the commits reached the log end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Mode", "PartitionState", "Scope", "caught_up", "plan"]

Mode = Literal["committed", "end", "wait"]


@dataclass(frozen=True)
class PartitionState:
    """One source partition as the audit found it before reading the trail."""

    topic: str
    partition: int
    start: int  # the first offset asked for
    log_end: int  # one past the last record, when the audit began
    committed: int | None  # the group's committed offset (the next one it reads); None: no commit


@dataclass(frozen=True)
class Scope:
    start: int
    end: int  # one past the last offset to prove
    behind: int  # records asked for after ``end``: not proven
    reason: str | None  # why records asked for are not proven (the partition is then incomplete)


def caught_up(state: PartitionState) -> bool:
    """The group's commits reach the log end, or nothing was asked for on this partition."""
    return state.start >= state.log_end or (state.committed is not None and state.committed >= state.log_end)


def plan(state: PartitionState, mode: Mode, group: str, waited: float | None = None) -> Scope:
    """The range to prove on ``state``'s partition; ``waited``: the seconds ``--wait`` waited."""
    if mode == "end" or (mode == "wait" and caught_up(state)):
        return Scope(state.start, max(state.start, state.log_end), 0, None)
    if state.start >= state.log_end:  # nothing was produced in the range asked for
        return Scope(state.start, state.start, 0, None)
    asked = state.log_end - state.start
    after_wait = f" after waiting {waited:.1f} s" if mode == "wait" and waited is not None else ""
    if state.committed is None:
        return Scope(state.start, state.start, asked, f"no commits by group {group}{after_wait}")
    if state.committed <= state.start:
        return Scope(state.start, state.start, asked,
                     f"group {group} committed nothing from offset {state.start} on (its commits end at "
                     f"offset {state.committed}){after_wait}")
    end = min(state.committed, state.log_end)
    if mode == "wait":
        return Scope(state.start, end, state.log_end - end,
                     f"group {group} committed up to offset {end}, not the log end {state.log_end}{after_wait}")
    return Scope(state.start, end, state.log_end - end, None)
