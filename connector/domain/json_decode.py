"""Strict JSON decoding of event values, fast where it is safe to be.

The strict decoder (stdlib ``json``) refuses what an event must not have: a key given twice in
one object (which value would count?) and NaN / Infinity. It spends most of an upsert event's
time turning vector text into floats: ~110 µs for 384 floats, a tenth of the worker's CPU on
upserts. orjson parses the same event in ~10 µs but differs in two ways, so it is used only
where it provably agrees:

- it keeps the last of two equal keys silently: its document must hold as many object keys as
  the text spells (a key dropped takes its value's keys with it, so a document never holds more);
- it makes an integer beyond 64 bits a float: a text with an integer of 19 digits or more goes
  to the strict decoder.

Anything orjson refuses (NaN and Infinity among them) goes to the strict decoder too, whose
messages the dead letters carry. tests/unit/test_json_decode.py holds the two to the same
answers on any input.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["decode_event_json", "decode_strict"]

# Every JSON string, whole (so a match never starts inside one), and whether a colon follows
# it (an object key). Numbers, literals and punctuation hold no quote. (An alternative for
# braces in the same pattern would cost its fast search for the quote: 15x slower.)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?', re.DOTALL)
# Digits -> "0"; what precedes fraction or exponent digits -> "."; anything else -> " ". An
# integer of 19 digits or more (2**63 has 19) is then a " " and nineteen "0" (in C, not regex).
_SPACED_COLON = re.compile(rb'"\s+:')  # a quote, white space, a colon: a key spelled that way is not counted
_NUMBER_SHAPES = bytes(48 if 48 <= c <= 57 else 46 if c in b".eE" else 32 for c in range(256))
_LONG_INTEGER = b" " + b"0" * 19
FAST_FROM_BYTES = 1024  # below, the checks cost more than they save (a small patch: 4 µs strict, 10 fast)


def decode_event_json(value: bytes, fast_from: int = FAST_FROM_BYTES) -> Any:
    """The JSON document in ``value``, exactly as :func:`decode_strict` would return it; raises
    what it raises (``UnicodeDecodeError``, ``ValueError``, ``RecursionError``). Values of
    ``fast_from`` bytes or more are tried with orjson first."""
    if len(value) < fast_from or _LONG_INTEGER in b" " + value.translate(_NUMBER_SHAPES):
        return decode_strict(value)
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return decode_strict(value)
    # keys held <= keys spelled <= the bound: held equal to the bound means no key was dropped
    bound = _keys_at_most(value)
    if bound is not None and (_count(document, skim=True)[0] == bound or _count(document, skim=False)[0] == bound):
        return document
    keys, objects = _spelled(value)
    if _held(document, objects) != (keys, objects):
        return decode_strict(value)
    return document


def _keys_at_most(value: bytes) -> int | None:
    """A bound on the object keys the (valid) JSON text spells, read in C, or None when it takes
    the string scan. Without a backslash every quote opens or closes a string, so each key is a
    closing quote and its colon; with no space between the two anywhere, every key is one
    ``":`` (and a string that starts with a colon is one more, which only raises the bound)."""
    if b"\\" in value or _SPACED_COLON.search(value):
        return None
    return value.count(b'":')


def decode_strict(value: bytes) -> Any:
    """stdlib ``json`` refusing repeated keys and NaN / Infinity, with its messages."""
    text = value.decode("utf-8")
    return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _spelled(value: bytes) -> tuple[int, int]:
    """(object keys, objects) in the (valid) JSON text: an object is a brace outside strings."""
    keys = braces_in_strings = 0
    for match in _STRING.finditer(value):
        keys += match.group(1) is not None
        braces_in_strings += match.group(0).count(b"{")
    return keys, value.count(b"{") - braces_in_strings


def _held(document: Any, objects: int) -> tuple[int, int]:
    """(object keys, objects) in the decoded document. A list whose first item is not a
    container (a vector) is not looked into, unless objects are then missing: a walk into every
    list, whose answer is exact."""
    found = _count(document, skim=True)
    return found if found[1] == objects else _count(document, skim=False)


def _count(document: Any, *, skim: bool) -> tuple[int, int]:
    keys = objects = 0
    stack = [document]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            keys += len(node)
            objects += 1
            stack.extend(child for child in node.values() if type(child) in (dict, list))
        elif type(node) is list and node and (not skim or type(node[0]) in (dict, list)):
            stack.extend(child for child in node if type(child) in (dict, list))
    return keys, objects
