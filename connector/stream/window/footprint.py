"""The points a window can write, known before it runs: whether two windows may be applied at
the same time (connector/stream/pipeline.py). No IO.

Two windows that write no common point, and address none by a filter, are independent: each
one's reads (the state before, the read-back) see none of the other's writes, and every
interleaving of their requests leaves the same state. So the next window may run while this
one is applied and read back; they are still published and committed in order.
"""

from __future__ import annotations

from collections.abc import Sequence

from connector.domain.changes import filter_of, point_ids_of
from connector.domain.operations import PointKey
from connector.stream.window.items import Item

__all__ = ["Footprint", "footprint", "independent"]

Footprint = frozenset[tuple[str, PointKey]]  # (collection, point id)


def footprint(items: Sequence[Item] | None) -> Footprint | None:
    """Every (collection, id) the window's events name; None when what it writes cannot be told
    beforehand: a filter-addressed event (it may match any point), a migration fence (it waits
    on an alias), or a window not parsed ahead. A rejected or skipped event writes nothing.
    Shard keys are left out: the same id under two keys counts as one point (a window more
    waits, never one less)."""
    if items is None:
        return None
    points: set[tuple[str, PointKey]] = set()
    for item in items:
        if item.fence is not None:
            return None
        event = item.event
        if event is None or item.skipped:
            continue
        if filter_of(event) is not None:
            return None
        points.update((event.collection, pid) for pid in point_ids_of(event))
    return frozenset(points)


def independent(first: Footprint | None, second: Footprint | None) -> bool:
    """Whether two windows may be applied at the same time."""
    return first is not None and second is not None and first.isdisjoint(second)
