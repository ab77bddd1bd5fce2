"""CDC row changes in a window (connector/domain/cdc.py): which form of each is applied, and which
columns their source did not send that the points do not hold.

An update comes as the change alone (the keys and texts that changed) with the whole row beside
it. The change is enough where the point holds the row as it was before; where it does not (a row
dead-lettered once, a point deleted behind the connector's back, a payload written otherwise), the
whole row is applied instead, upserted with its texts embedded, so a later change of a row heals
it. One read of those points (existence and payload), before anything is embedded, decides; the
form not taken is skipped, so nothing of it is embedded or sent. That read is the window's read
before applying for those points too (:class:`Prefetched`): no request more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qdrant_client import models as qm

from connector.domain.changes import DeleteEvent, SetPayloadEvent, UpsertEvent, normalize_id, point_ids_of
from connector.domain.operations import PointKey
from connector.domain.records import Unavailable
from connector.domain.semantics import State, set_payload_at
from connector.domain.sharding import Selector
from connector.qdrant.reads import read_state, scroll_pages
from connector.qdrant.retrying import RetryingClient
from connector.stream.window.items import Item

__all__ = ["Prefetched", "choose", "choose_forms", "not_held"]

LISTED_UNAVAILABLE = 20


@dataclass(frozen=True)
class Prefetched:
    """The points read before the window's texts: ``ids`` asked for, ``state`` those that exist
    (with their payload)."""

    ids: frozenset[PointKey] = frozenset()
    state: State = field(default_factory=dict)


async def choose_forms(qdrant: RetryingClient, collection: str, items: Sequence[Item],
                       shard_key: Selector | None = None) -> Prefetched:
    """Read the points of the window's row changes and pick each one's form (:func:`choose`)."""
    wanted = list(dict.fromkeys(normalize_id(item.row.point_id) for item in items
                                if item.form is not None and item.error is None and item.row is not None
                                and item.row.point_id is not None))
    if not wanted:
        return Prefetched()
    state = await read_state(qdrant, collection, wanted, payload=True, shard_key=shard_key)
    choose(items, state)
    return Prefetched(frozenset(wanted), state)


def choose(items: Sequence[Item], stored: State) -> None:
    """Pick the form of each row change, in window order: the change alone where its point holds
    the row before it, else the whole row. What a point holds is ``stored`` (the points before the
    window) as the window's earlier events change it. The items of the other form are skipped; a
    change of nothing, where the point holds the row, is skipped as ``unchanged``. No IO."""
    payloads: dict[PointKey, dict[str, Any] | None] = {}  # as the window's earlier events leave them; None: absent
    wiped = False  # a truncate deleted every point

    def payload_of(pid: PointKey) -> dict[str, Any] | None:
        if pid in payloads or wiped:
            return payloads.get(pid)
        point = stored.get(pid)
        return point.payload if point is not None else None

    for members in _records(items):
        if any(member.error is not None for member in members):
            continue
        row = members[0].row
        if row is not None and row.whole is not None and row.point_id is not None:
            whole = not _holds(payload_of(normalize_id(row.point_id)), row.holds)
            for member in members:
                member.skipped = member.form != ("whole" if whole else "change")
            if not whole and not row.events:
                members[0].skip_reason = "unchanged"
        for member in members:
            event = member.event
            if member.skipped or event is None:
                continue
            if isinstance(event, DeleteEvent) and event.filter is not None:
                wiped = True
                payloads.clear()
            elif isinstance(event, DeleteEvent):
                payloads.update((pid, None) for pid in point_ids_of(event))
            elif isinstance(event, UpsertEvent):
                payloads.update((normalize_id(p.id), dict(p.payload or {})) for p in event.points)
            elif isinstance(event, SetPayloadEvent):
                for pid in point_ids_of(event):
                    payload = payload_of(pid)
                    if payload is not None:
                        payloads[pid] = merged = dict(payload)
                        set_payload_at(merged, event.payload, event.key)


def _holds(payload: dict[str, Any] | None, holds: dict[str, Any] | None) -> bool:
    """Whether a point (its payload; None: absent) holds the row before the change: it exists, with
    the row's mapped keys' values (None: the key absent); without ``holds`` (no row before),
    existing is all that is known."""
    if payload is None:
        return False
    return holds is None or all(payload.get(key) == value for key, value in holds.items())


def _records(items: Iterable[Item]) -> list[list[Item]]:
    """The items of each record, in window order."""
    records: dict[int, list[Item]] = {}
    for item in items:
        records.setdefault(item.record_position, []).append(item)
    return list(records.values())


async def not_held(qdrant: RetryingClient, collection: str, items: Sequence[Item], applied: set[int],
                   placeholder: str, shard_key: Selector | None = None) -> list[Unavailable]:
    """The points written by applied row changes that lack a column their change did not carry: a
    payload key absent (or holding ``placeholder``, as an earlier version wrote it), a vector absent.
    Read after the window, so a later change of the row in the same window that carried it counts."""
    wanted: dict[PointKey, tuple[set[str], set[str]]] = {}
    for item in items:
        row = item.row
        if (row is None or row.point_id is None or item.error is not None or item.position not in applied
                or not (row.unavailable_keys or row.unavailable_vectors)):
            continue
        keys, vectors = wanted.setdefault(normalize_id(row.point_id), (set(), set()))
        keys.update(row.unavailable_keys)
        vectors.update(row.unavailable_vectors)
    if not wanted:
        return []
    all_keys = sorted({key for keys, _ in wanted.values() for key in keys})
    state = await read_state(qdrant, collection, list(wanted), payload=all_keys or False, shard_key=shard_key)
    lacking: dict[str, set[PointKey]] = {}
    for name in sorted({name for _, vectors in wanted.values() for name in vectors}):
        holders = [pid for pid, (_, vectors) in wanted.items() if name in vectors and pid in state]
        lacking[name] = await _without_vector(qdrant, collection, holders, name, shard_key) if holders else set()
    found: list[Unavailable] = []
    for pid, (keys, vectors) in wanted.items():
        point = state.get(pid)
        if point is None:  # deleted later in the window: nothing to hold
            continue
        absent_keys = sorted(k for k in keys if point.payload.get(k, placeholder) == placeholder)
        absent_vectors = sorted(v for v in vectors if pid in lacking[v])
        if absent_keys or absent_vectors:
            found.append(Unavailable(id=pid, payload_keys=absent_keys, vectors=absent_vectors))
    return found


async def _without_vector(qdrant: RetryingClient, collection: str, ids: list[PointKey], name: str,
                          shard_key: Selector | None) -> set[PointKey]:
    """Which of ``ids`` have no vector ``name``: ids only, no vector is read."""
    lacking = qm.Filter(must=[qm.HasIdCondition(has_id=ids)], must_not=[qm.HasVectorCondition(has_vector=name)])
    found: set[PointKey] = set()
    async for page, _ in scroll_pages(qdrant, collection, scroll_filter=lacking, with_payload=False,
                                      with_vectors=False, page_size=len(ids), shard_key=shard_key):
        found.update(normalize_id(record.id) for record in page)
    return found
