"""Stage 1: a record -> an item (an event, a fence, or a rejection with its reason). No IO."""

from __future__ import annotations

import re
from typing import Literal

from connector.domain.changes import NAME_PATTERN, FenceRecord, Rejection, parse_change
from connector.domain.records import ErrorInfo
from connector.domain.sharding import derive_selector
from connector.settings import Settings
from connector.stream.window.items import Item, Record, Retarget, fail

__all__ = ["parse_record"]


def parse_record(position: int, record: Record, settings: Settings, expect: Literal["patch", "reembed"],
                 retarget: Retarget | None = None) -> Item:
    """Parse and, for a migration, retarget one record; a bad one carries its rejection."""
    parsed = parse_change(
        record.value,
        expect=expect,
        max_event_bytes=settings.max_event_bytes,
        max_ids_per_event=settings.max_ids_per_event,
        key=record.key,
        tombstones=settings.tombstones,
    )
    if isinstance(parsed, FenceRecord):
        return Item(position, record, fence=parsed)
    if isinstance(parsed, Rejection):
        claimed = parsed.collection if parsed.collection and re.match(NAME_PATTERN, parsed.collection) else None
        return Item(position, record, error=ErrorInfo(code=parsed.code, message=parsed.message),
                    claimed_collection=claimed)
    derived = derive_selector(parsed, record.key, settings.shard_keys.get(parsed.collection))
    if retarget is not None:
        retargeted = retarget(parsed)
        if retargeted is None:  # nothing of this event applies to the target
            return Item(position, record, event=parsed, skipped=True)
        parsed = retargeted
    item = Item(position, record, event=parsed, shard_key=derived.selector)
    if derived.problem is not None:
        fail(item, "shard_key_required", derived.problem)
    return item
