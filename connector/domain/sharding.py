"""Shard keys of custom-sharded collections: the selector an event names or its collection's rule
(QCC_SHARD_KEYS) derives, the keys that must exist for it, and a canonical form to group a window
by. A window's part for one collection and one selector is one batch. Pure."""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from pydantic import TypeAdapter, ValidationError

from connector.domain.changes import (
    ChangeEvent,
    OverwritePayloadEvent,
    RejectionCode,
    SetPayloadEvent,
    ShardKey,
    ShardKeySelector,
    ShardKeyWithFallback,
    UpsertEvent,
)
from connector.settings import ShardKeyRule

__all__ = ["Derived", "Refusal", "Selector", "derive_selector", "describe", "group_key", "keys_that_must_exist",
           "shard_key_refusal"]

Selector = int | str | list[int | str] | ShardKeyWithFallback
_KEY: TypeAdapter[int | str] = TypeAdapter(ShardKey)
_SELECTOR: TypeAdapter[Selector] = TypeAdapter(ShardKeySelector)


class Derived:
    """A selector (None: the event names none and no rule gives one) or why the rule failed."""

    __slots__ = ("problem", "selector")

    def __init__(self, selector: Selector | None = None, problem: str | None = None) -> None:
        self.selector, self.problem = selector, problem


def derive_selector(event: ChangeEvent, record_key: bytes | None, rule: ShardKeyRule | None) -> Derived:
    """The event's own ``shard_key`` wins; else the collection's rule, from the record key or the payload."""
    if event.shard_key is not None:
        return Derived(event.shard_key)
    if rule is None:
        return Derived()
    if rule.from_key is not None:
        key, problem = _from_record_key(record_key, rule.from_key)
    else:
        assert rule.from_payload is not None
        key, problem = _from_payload(event, rule.from_payload)
    if key is None:
        return Derived(problem=problem)
    if rule.fallback is not None and rule.fallback != key:
        return Derived(ShardKeyWithFallback(target=key, fallback=rule.fallback))
    return Derived(key)


def _from_record_key(record_key: bytes | None, pattern: str) -> tuple[int | str | None, str | None]:
    text = record_key.decode("utf-8", "replace") if record_key is not None else ""
    match = re.search(pattern, text)
    if match is None or not match.group(1):
        return None, f"the record key {text!r} does not match the shard key rule {pattern!r}"
    return _valid(match.group(1), "the record key's")


def _from_payload(event: ChangeEvent, field: str) -> tuple[int | str | None, str | None]:
    if isinstance(event, UpsertEvent):
        values = {json.dumps((p.payload or {}).get(field)) for p in event.points}
        if len(values) != 1:
            shown = ", ".join(sorted(values)[:5])
            return None, f"the points of this upsert name different shard keys in payload key {field!r}: {shown}"
        value = (event.points[0].payload or {}).get(field)
    elif isinstance(event, SetPayloadEvent | OverwritePayloadEvent) and getattr(event, "key", None) is None:
        value = event.payload.get(field)
    else:
        return None, f"a {event.op} event carries no payload key {field!r} to take the shard key from"
    if value is None:
        return None, f"payload key {field!r}, which names the shard key, is missing"
    return _valid(value, f"payload key {field!r}'s")


def _valid(value: object, source: str) -> tuple[int | str | None, str | None]:
    try:
        return _KEY.validate_python(value), None
    except ValidationError:
        return None, f"{source} value {value!r} is not a shard key (an unsigned integer or a string of 1-255)"


def group_key(selector: Selector | None) -> str | None:
    """One text per selector, equal for equal selectors: a window's batches are per collection and this."""
    if selector is None:
        return None
    return json.dumps(_SELECTOR.dump_python(selector, mode="json"), sort_keys=True)


def keys_that_must_exist(selector: Selector) -> list[int | str]:
    """A key, every key of a list; with a fallback only the fallback (the target may be absent)."""
    if isinstance(selector, ShardKeyWithFallback):
        return [selector.fallback]
    if isinstance(selector, list):
        return list(selector)
    return [selector]


def describe(selector: Selector | None) -> str:
    """For messages: 'tenant-7', [1, 2], tenant-7 (else default)."""
    if isinstance(selector, ShardKeyWithFallback):
        return f"{selector.target!r} (else {selector.fallback!r})"
    return repr(selector)


class Refusal(NamedTuple):
    code: RejectionCode
    message: str
    missing: list[int | str]  # keys that do not exist (unknown_shard_key)


def shard_key_refusal(selector: Selector | None, custom_sharding: bool, existing: frozenset[int | str]
                      ) -> Refusal | None:
    """Why a batch with this selector cannot be written to the collection, or None. Qdrant refuses
    every write to a custom-sharded collection without a key, and one with a key to any other."""
    if not custom_sharding:
        if selector is None:
            return None
        return Refusal("shard_key_unexpected", f"shard key {describe(selector)} given, but the collection is not "
                       "custom-sharded (its sharding_method is auto)", [])
    if selector is None:
        return Refusal("shard_key_required", "the collection is custom-sharded: the event needs a shard_key, or the "
                       "collection a rule to derive one (QCC_SHARD_KEYS)", [])
    missing = [key for key in keys_that_must_exist(selector) if key not in existing]
    if missing:
        return Refusal("unknown_shard_key", f"shard key {', '.join(repr(k) for k in missing)} does not exist in the "
                       "collection (create it, or let the connector: QCC_CREATE_SHARD_KEYS)", missing)
    return None
