"""A dump is checked whole against its manifest: every complete dump passes, and any dump cut
short, or with one value changed, is refused naming the first bad line (hypothesis)."""

from __future__ import annotations

import gzip
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.bulk.dump import digest, id_key, manifest_path
from connector.bulk.dump_check import check_dump, manifest_problem, point_problem
from connector.errors import InvalidInput

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
payload_values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8), finite)
points = st.lists(
    st.fixed_dictionaries({
        "payload": st.dictionaries(st.text(min_size=1, max_size=5), payload_values, max_size=3),
        "vector": st.fixed_dictionaries({
            "dense": st.lists(finite, min_size=2, max_size=2),
            "bm25": st.fixed_dictionaries({"indices": st.lists(st.integers(0, 99), min_size=1, max_size=3,
                                                                unique=True),
                                           "values": st.just([])}),
        }),
    }),
    min_size=1, max_size=12,
)


def _dump_lines(drawn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines = []
    for number, point in enumerate(drawn):
        sparse = point["vector"]["bm25"]
        sparse["values"] = [0.5] * len(sparse["indices"])
        lines.append({"id": number, **point})
    return lines


def write_dump(folder: Path, lines: list[dict[str, Any]], *, packed: bool) -> Path:
    """A dump as export writes it: JSON Lines (a gzip member per 4 points), and its manifest."""
    dump = folder / ("d.jsonl.gz" if packed else "d.jsonl")
    texts = [json.dumps(line, separators=(",", ":")) + "\n" for line in lines]
    if packed:
        body = io.BytesIO()
        for start in range(0, len(texts), 4):
            body.write(gzip.compress("".join(texts[start:start + 4]).encode()))
        dump.write_bytes(body.getvalue())
    else:
        dump.write_text("".join(texts))
    digests = {id_key(line["id"]): digest(line) for line in lines}
    manifest_path(dump).write_text(json.dumps({"count": len(digests), "digests": digests, "config": {},
                                               "with_payload": True, "with_vectors": True}))
    return dump


@settings(max_examples=60, deadline=None)
@given(drawn=points, packed=st.booleans(), data=st.data())
def test_a_whole_dump_passes_and_any_cut_is_refused(drawn: list[dict[str, Any]], packed: bool,
                                                   data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as name:
        dump = write_dump(Path(name), _dump_lines(drawn), packed=packed)
        assert check_dump(dump)["count"] == len(drawn)
        whole = dump.read_bytes()
        keep = data.draw(st.integers(0, len(whole) - (1 if packed else 2)), label="bytes kept")  # "-2": the last
        dump.write_bytes(whole[:keep])  # newline alone is not data
        with pytest.raises(InvalidInput, match="is damaged or incomplete"):
            check_dump(dump)


@settings(max_examples=60, deadline=None)
@given(drawn=points, data=st.data())
def test_a_changed_point_is_refused_by_its_line(drawn: list[dict[str, Any]], data: st.DataObject) -> None:
    lines = _dump_lines(drawn)
    with tempfile.TemporaryDirectory() as name:
        dump = write_dump(Path(name), lines, packed=False)
        changed = data.draw(st.integers(0, len(lines) - 1), label="line changed")
        texts = dump.read_text().splitlines(keepends=True)
        point = json.loads(texts[changed])
        point["payload"]["changed"] = True
        texts[changed] = json.dumps(point) + "\n"
        dump.write_text("".join(texts))
        with pytest.raises(InvalidInput, match=f"line {changed + 1}: point {changed} does not match its digest"):
            check_dump(dump)


def test_what_a_manifest_must_hold() -> None:
    assert manifest_problem([]) == "a JSON object is expected, not list"
    assert manifest_problem({}) == "count, digests, with_payload, with_vectors, config missing"
    whole = {"count": 1, "digests": {"1": "ab"}, "config": {}, "with_payload": True, "with_vectors": True}
    assert manifest_problem(whole) is None
    assert manifest_problem({**whole, "count": 2}) == "count 2 is not the number of digests (1)"
    assert manifest_problem({**whole, "digests": ["ab"]}) == "digests is not an object of point digests"


def test_what_a_line_must_be() -> None:
    line = {"id": 7, "payload": {"a": 1}, "vector": {"v": [0.5, 1.0]}}
    digests = {"7": digest(line)}
    assert point_problem(line, digests, set()) is None
    assert point_problem(line, digests, {"7"}) == "point 7 is there twice"
    assert point_problem({**line, "id": 8}, digests, set()) == "point 8 is not in the manifest"
    assert point_problem([1], digests, set()) == "not a point (an object with id, payload and vector)"
    assert point_problem({**line, "vector": {"v": "x"}}, digests, set()) == (
        "point 7 has vectors that are not a dump's (a list of numbers, or indices and values)")


def test_a_manifest_that_is_not_json_is_named(tmp_path: Path) -> None:
    dump = tmp_path / "d.jsonl"
    dump.write_text("")
    manifest_path(dump).write_text("{")
    with pytest.raises(InvalidInput, match=r"d.jsonl.manifest.json is not a dump manifest: not JSON"):
        check_dump(dump)
