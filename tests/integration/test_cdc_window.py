"""A window of Debezium records through the window processor (no broker), on local mode and on the
server: the events of one record apply together or are dead-lettered together and counted once,
a truncate with ``truncate: delete_all`` empties the collection, a record the mapping cannot take
is dead-lettered while the rest of its window applies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.domain.cdc_mapping import CdcMapping
from connector.embedding.embedder import Embedder
from connector.qdrant import make_client, make_retrying
from connector.stream.window import Record, WindowProcessor
from tests.integration.test_filter_verification import settings_for
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration

SOURCE = {"connector": "postgresql", "db": "shop", "schema": "public", "lsn": 1}


def mapping(**tables: dict[str, Any]) -> CdcMapping:
    return CdcMapping.model_validate({"tables": tables, "truncate": "delete_all"})


def processor(target: QdrantTarget, model_paths: dict[str, str], cdc: CdcMapping) -> WindowProcessor:
    config = settings_for(target, model_paths)
    client = make_client(config)
    return WindowProcessor(config, client, make_retrying(config, client), Embedder(config), "patch", cdc_mapping=cdc)


def records(values: list[dict[str, Any]]) -> list[Record]:
    return [Record(topic="shop.public.items", partition=0, offset=i, value=json.dumps(v).encode())
            for i, v in enumerate(values)]


def row_change(op: str, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    return {"before": before, "after": after, "op": op, "source": {**SOURCE, "table": table.split(".")[1]}}


@only_targets("local", "grpc")
async def test_a_record_applies_whole_or_not_at_all_and_a_truncate_empties(
        qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    cdc = mapping(**{
        "public.items": {"collection": "items", "key": ["id"], "texts": {"body": {"vector": "body"}}},
        # its second text goes to a vector the collection lacks: the record's upsert must not apply either
        "public.broken": {"collection": "items", "key": ["id"],
                          "texts": {"body": {"vector": "body"}, "title": {"vector": "missing"}}},
    })
    proc = processor(qdrant_target, model_paths, cdc)
    try:
        await proc.client.create_collection("items", vectors_config={
            "body": qm.VectorParams(size=384, distance=qm.Distance.COSINE)})
        first = await proc.process(records([
            row_change("c", "public.items", None, {"id": 1, "body": "one", "n": 1}),
            row_change("c", "public.broken", None, {"id": 2, "body": "two", "title": "second"}),
            row_change("c", "public.items", None, {"id": 3, "body": "three", "n": 3}),
            row_change("u", "public.items", {"id": 1, "body": "one", "n": 1}, {"id": 1, "body": "one", "n": 2}),
            row_change("c", "public.nowhere", None, {"id": 4}),
        ]))
        [verification] = first.verifications[:1]
        assert [(d.source.offset, d.error.code) for d in first.dead_letters] == [(1, "unknown_vector"),
                                                                                 (4, "unmapped_change")]
        assert verification.event_count == 4  # the four records of "items" (one of them failed), each once
        assert verification.applied_event_count == 3
        assert verification.operations == {"upsert": 2, "set_payload": 1}
        assert verification.verification.status == "verified"
        points = {p.id: p.payload for p in (await proc.client.scroll("items", limit=10))[0]}
        assert points == {1: {"id": 1, "body": "one", "n": 2}, 3: {"id": 3, "body": "three", "n": 3}}

        second = await proc.process(records([row_change("t", "public.items", None, None)]))
        assert second.verifications[0].verification.status == "verified"
        assert (await proc.client.count("items")).count == 0
    finally:
        await proc.client.close()
