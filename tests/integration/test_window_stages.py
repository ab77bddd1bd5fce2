"""The window stages that read Qdrant, each on its own, on local mode: admission and texts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.domain.changes import ShardKeyWithFallback
from connector.failpoints import Failpoints
from connector.qdrant import CollectionCatalog, make_client, make_retrying
from connector.settings import Settings
from connector.stream.window.admission import Admission
from connector.stream.window.items import Item, Record
from connector.stream.window.parse import parse_record
from connector.stream.window.texts import TextReader
from connector.versions import parse_version

pytestmark = pytest.mark.integration


def item(position: int, event: dict[str, Any], settings: Settings, expect: str = "patch") -> Item:
    value = json.dumps({"schema_version": 1, **event}).encode()
    return parse_record(position, Record("t", 0, position, value), settings, expect)  # type: ignore[arg-type]


@pytest.fixture
async def local(tmp_path: Path) -> Any:
    settings = Settings(qdrant_path=tmp_path / "qdrant", collections=["docs", "other"], max_points_per_filter_reembed=3)
    client = make_client(settings)
    await client.create_collection("docs", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.COSINE))
    await client.upsert("docs", [qm.PointStruct(id=i, vector=[1.0, 0, 0, 0], payload={"text": f"t{i}", "g": i % 2})
                                 for i in range(6)])
    await client.upsert("docs", [qm.PointStruct(id=9, vector=[1.0, 0, 0, 0], payload={"g": 1})])  # no text
    yield settings, make_retrying(settings, client)
    await client.close()


async def test_admission_refuses_what_may_not_be_applied(local: Any) -> None:
    settings, qdrant = local
    admission = Admission(settings, qdrant, CollectionCatalog(qdrant), Failpoints(None))
    ok = item(0, {"collection": "docs", "op": "set_payload", "ids": [1], "payload": {"a": 1}}, settings)
    wrong_vector = item(1, {"collection": "docs", "op": "upsert", "points": [{"id": 1, "vector": [1.0, 2.0]}]},
                        settings)
    schema = await admission.admit("docs", [ok, wrong_vector])
    assert schema is not None
    assert schema.dense[""].size == 4
    assert ok.error is None
    assert wrong_vector.error is not None
    assert wrong_vector.error.code == "vector_size_mismatch"

    missing = item(0, {"collection": "other", "op": "clear_payload", "ids": [1]}, settings)
    assert await admission.admit("other", [missing]) is None
    assert missing.error is not None
    assert missing.error.code == "unknown_collection"

    not_allowed = item(0, {"collection": "elsewhere", "op": "clear_payload", "ids": [1]}, settings)
    assert await admission.admit("elsewhere", [not_allowed]) is None
    assert not_allowed.error is not None
    assert not_allowed.error.code == "collection_not_allowed"


async def test_texts_come_inline_or_from_the_payload_and_fail_with_the_reason(local: Any) -> None:
    settings, qdrant = local
    schema = await CollectionCatalog(qdrant).get("docs")
    waits: list[str] = []

    async def watermark() -> bool:
        waits.append("waited")
        return True

    reader = TextReader(settings, qdrant, watermark)
    items = [
        item(0, {"kind": "reembed", "collection": "docs", "points": [{"id": 1, "text": "inline"}]}, settings,
             "reembed"),
        item(1, {"kind": "reembed", "collection": "docs", "ids": [2, 3], "text_field": "text"}, settings, "reembed"),
        item(2, {"kind": "reembed", "collection": "docs", "ids": [4, 404], "text_field": "text"}, settings, "reembed"),
        item(3, {"kind": "reembed", "collection": "docs", "ids": [9], "text_field": "text"}, settings, "reembed"),
        item(4, {"kind": "reembed", "collection": "docs", "filter": {"must": [{"key": "g", "match": {"value": 0}}]},
                 "text_field": "text"}, settings, "reembed"),
        item(5, {"kind": "reembed", "collection": "docs", "filter": {"must": [{"key": "g", "match": {"value": 1}}]},
                 "text_field": "text"}, settings, "reembed"),
    ]
    texts = await reader.texts(schema, items)
    assert waits == ["waited"]  # once per window, before payload texts are read
    assert texts[0] == {1: "inline"}
    assert texts[1] == {2: "t2", 3: "t3"}
    assert [i.error.code if i.error else None for i in items] == [None, None, "point_not_found", "text_missing", None,
                                                                  "too_many_points"]
    assert texts[4] == {0: "t0", 2: "t2", 4: "t4"}
    assert 5 not in texts  # 4 points match g=1: more than the limit of 3


@pytest.mark.parametrize(("server", "refused"), [("1.15.4", True), ("1.16.0", False)])
async def test_a_shard_key_fallback_is_refused_where_the_server_has_none(local: Any, server: str,
                                                                        refused: bool) -> None:
    """Before Qdrant 1.16 an event asking for a shard-key fallback is dead-lettered with its own
    code, before anything reads the collection; from 1.16 admission goes on as before (local
    mode: the collection is not custom-sharded, so the key is refused for that instead)."""
    settings, qdrant = local
    qdrant.server = parse_version(server)
    admission = Admission(settings, qdrant, CollectionCatalog(qdrant), Failpoints(None))
    fallback = ShardKeyWithFallback(target="acme", fallback="default")
    event = item(0, {"collection": "docs", "op": "set_payload", "ids": [1], "payload": {"a": 1},
                     "shard_key": {"target": "acme", "fallback": "default"}}, settings)
    assert await admission.admit("docs", [event], fallback) is None
    assert event.error is not None
    if refused:
        assert event.error.code == "shard_key_fallback_unsupported"
        assert f"Qdrant {server} has no shard-key fallback" in event.error.message
    else:
        assert event.error.code == "shard_key_unexpected"
