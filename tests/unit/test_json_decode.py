"""The fast event decoder answers exactly what the strict one answers, on any input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connector.domain import json_decode
from connector.domain.json_decode import decode_event_json, decode_strict


def fast(value: bytes) -> Any:
    """The fast path on any size (the connector takes it from 1 KiB)."""
    return decode_event_json(value, fast_from=0)


def outcome(decode: Any, value: bytes) -> tuple[str, str]:
    """What a decoder answers, comparable across decoders: the document with every number's
    type spelled out (1 == 1.0 in Python, not in an event), or the exception and its text."""
    try:
        return "ok", json.dumps(decode(value), default=str, sort_keys=False, allow_nan=True) + _types(decode(value))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


def _types(node: Any) -> str:
    if isinstance(node, dict):
        return "{" + ",".join(_types(v) for v in node.values()) + "}"
    if isinstance(node, list):
        return "[" + ",".join(_types(v) for v in node) + "]"
    return type(node).__name__[0]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=4), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(json_values, st.sampled_from([None, 1, 2]), st.booleans())
def test_valid_documents_decode_the_same(value: Any, indent: int | None, ascii_only: bool) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode()
    assert outcome(fast, text) == outcome(decode_strict, text)
    assert outcome(fast, text)[0] == "ok"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=3), json_values, min_size=1, max_size=4), st.data())
def test_a_repeated_key_is_refused_wherever_it_is(obj: dict[str, Any], data: st.DataObject) -> None:
    """The key given twice, at the top or inside a list: refused, with the strict decoder's words."""
    key = data.draw(st.sampled_from(sorted(obj)))
    pairs = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()]
    pairs.insert(data.draw(st.integers(0, len(pairs))), f"{json.dumps(key)}: 0")
    inner = "{" + ", ".join(pairs) + "}"
    text = data.draw(st.sampled_from([inner, f'{{"outer": [1.5, {inner}]}}', f"[{inner}]"])).encode()
    assert outcome(fast, text) == ("ValueError", f"duplicate key {key!r}")


json_alphabet = st.sampled_from([*'{}[]":,\\ 0123456789.eE+-tfnrualsNIyIn\u00e9\t\n', '\\u0061', '\\"', "a"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(json_alphabet, max_size=40).map("".join), st.sampled_from(["utf-8", "utf-16", "latin-1"]))
@example('{"a": 1, "\\u0061": 2}', "utf-8")  # the same key spelled two ways
@example('{"a\\": 1": ":", "b": ["\\"", "\\":"]}', "utf-8")  # colons and quotes inside strings
@example('{"v": [NaN]}', "utf-8")
@example('{"v": -Infinity}', "utf-8")
@example('{"v": 1e400}', "utf-8")
@example('{"v": 123456789012345678901234567890}', "utf-8")
@example('"\\ud800"', "utf-8")  # a lone surrogate escape
@example('\ufeff{}', "utf-8")  # a byte order mark
@example('{"a": "tab\there"}', "utf-8")  # a raw control character in a string
@example('{} ', "utf-8")
@example('{}{}', "utf-8")
def test_any_text_gets_the_same_answer(text: str, encoding: str) -> None:
    value = text.encode(encoding, errors="ignore")
    assert outcome(fast, value) == outcome(decode_strict, value)


@pytest.mark.parametrize("depth", [10, 1_100, 50_000])
def test_deep_nesting_gets_the_same_answer(depth: int) -> None:
    value = b'{"a": ' * depth + b"1" + b"}" * depth
    assert outcome(fast, value) == outcome(decode_strict, value)


def test_a_vector_event_takes_the_fast_path_and_keeps_its_floats(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_path(_value: bytes) -> None:
        raise AssertionError("a valid event without repeated keys went to the strict decoder")

    monkeypatch.setattr(json_decode, "decode_strict", slow_path)
    vector = [0.1 * i for i in range(384)]
    value = json.dumps({"op": "upsert", "points": [{"id": 1, "vector": vector, "payload": {"k": "v"}}]}).encode()
    assert decode_event_json(value)["points"][0]["vector"] == vector
