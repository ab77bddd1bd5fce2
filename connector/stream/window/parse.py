"""Stage 1: a record -> an item (an event, a fence, or a rejection with its reason); a Debezium
record -> the items of the events it means (connector/domain/cdc.py). No IO."""

from __future__ import annotations

import re
from typing import Literal

from connector.domain.cdc import CdcSkip, cdc_events
from connector.domain.cdc_mapping import CdcMapping
from connector.domain.changes import NAME_PATTERN, ChangeEvent, FenceRecord, Rejection, parse_change
from connector.domain.records import ErrorInfo
from connector.domain.sharding import derive_selector
from connector.settings import Settings
from connector.stream.window.items import Item, Record, Retarget, fail

__all__ = ["parse_cdc_record", "parse_record"]


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
        shard_keys=settings.shard_keys,
    )
    if isinstance(parsed, FenceRecord):
        return Item(position, record, fence=parsed)
    if isinstance(parsed, Rejection):
        return rejected(position, record, parsed)
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


def parse_cdc_record(position: int, record: Record, settings: Settings, mapping: CdcMapping) -> list[Item]:
    """The items of one Debezium record, from ``position`` on: one per event it means (they share the
    record and its shard key; an update's events and then those of its whole row, of which the
    window applies one form: connector/stream/window/rows.py), one skipped item, or one rejected item."""
    parsed = cdc_events(record.value, mapping, max_event_bytes=settings.max_event_bytes,
                        max_text_chars=settings.cdc_max_text_chars)
    if isinstance(parsed, Rejection):
        return [rejected(position, record, parsed)]
    if isinstance(parsed, CdcSkip):
        return [Item(position, record, claimed_collection=parsed.collection, skipped=True, skip_reason=parsed.reason)]
    forms: list[tuple[ChangeEvent, Literal["change", "whole"] | None]] = [
        (event, None if parsed.whole is None else "change") for event in parsed.events]
    forms += [(event, "whole") for event in parsed.whole or []]
    derived = derive_selector(forms[0][0], record.key, settings.shard_keys.get(forms[0][0].collection))
    items = [Item(position + n, record, event=event, shard_key=derived.selector, part_of=None if n == 0 else position,
                  row=parsed, form=form)
             for n, (event, form) in enumerate(forms)]
    if derived.problem is not None:
        for item in items:
            fail(item, "shard_key_required", derived.problem)
    return items


def rejected(position: int, record: Record, rejection: Rejection) -> Item:
    claimed = rejection.collection if rejection.collection and re.match(NAME_PATTERN, rejection.collection) else None
    return Item(position, record, error=ErrorInfo(code=rejection.code, message=rejection.message),
                claimed_collection=claimed)
