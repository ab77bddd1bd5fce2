"""Filter-addressed events are verified like id-addressed ones (connector/stream/window/filters.py):
on the points each filter matched when its op was applied, in window order, on local mode and on
the server over REST and gRPC. Driven through the window processor, without a broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector import metrics
from connector.domain.records import VerificationEvent
from connector.embedding.embedder import Embedder
from connector.qdrant import make_client, make_retrying
from connector.settings import Settings
from connector.stream.window import Record, WindowProcessor
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

DIM = 384


def settings_for(target: QdrantTarget, model_paths: dict[str, str], **extra: Any) -> Settings:
    base: dict[str, Any] = {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.5, "model_paths": model_paths}
    if target.server is None:
        return Settings(qdrant_path=target.path, **base, **extra)
    return Settings(qdrant_url=target.server.url, qdrant_prefer_grpc=target.prefer_grpc,
                    qdrant_grpc_port=target.server.grpc_port, **base, **extra)


def processor(target: QdrantTarget, model_paths: dict[str, str], expect: str = "patch",
              **extra: Any) -> WindowProcessor:
    config = settings_for(target, model_paths, **extra)
    client = make_client(config)
    return WindowProcessor(config, client, make_retrying(config, client), Embedder(config), expect)  # type: ignore[arg-type]


def records(events: list[dict[str, Any]], topic: str = "patches", first: int = 0) -> list[Record]:
    return [Record(topic=topic, partition=0, offset=first + i, value=json.dumps(e).encode(), key=None)
            for i, e in enumerate(events)]


def ev(op: str, **fields: Any) -> dict[str, Any]:
    return {"schema_version": 1, "collection": "docs", "op": op, **fields}


def tag(value: str) -> dict[str, Any]:
    return {"must": [{"key": "tag", "match": {"value": value}}]}


def vector(i: int) -> list[float]:
    return [1.0 + i] + [0.5] * (DIM - 1)


async def setup(proc: WindowProcessor, count: int) -> None:
    await proc.client.create_collection("docs", vectors_config=qm.VectorParams(size=DIM, distance=qm.Distance.COSINE))
    points = [qm.PointStruct(id=i, vector=vector(i), payload={"n": i, "tag": "ab"[i % 2 == 0], "body": f"text {i}"})
              for i in range(count)]
    await proc.client.upsert("docs", points)


async def run(proc: WindowProcessor, events: list[dict[str, Any]], topic: str = "patches",
              first: int = 0) -> VerificationEvent:
    result = await proc.process(records(events, topic, first))
    assert result.dead_letters == [], [d.error for d in result.dead_letters]
    (verification,) = result.verifications
    return verification


async def test_a_window_mixing_filter_and_id_ops_is_verified(qdrant_target: QdrantTarget,
                                                             model_paths: dict[str, str]) -> None:
    proc = processor(qdrant_target, model_paths)
    await setup(proc, 20)
    window = [
        ev("set_payload", ids=[2, 4], payload={"tag": "c"}),  # the filter below matches what this wrote
        ev("set_payload", filter=tag("c"), payload={"flag": True, "level": 3}),
        ev("overwrite_payload", filter={"must": [{"key": "n", "range": {"gte": 15}}]}, payload={"tag": "d", "n": 99}),
        ev("delete_payload", filter=tag("a"), keys=["body"]),
        ev("set_payload", ids=[1], payload={"after": 1}),  # a point the delete_payload filter matched
        ev("delete", filter=tag("d")),
        ev("upsert", points=[{"id": 30, "vector": vector(30), "payload": {"tag": "d"}}]),  # after the delete
        ev("clear_payload", filter={"must": [{"key": "n", "match": {"value": 6}}]}),
    ]
    verification = await run(proc, window)
    outcome = verification.verification
    assert outcome.status == "verified", outcome
    assert [(f.offset, f.op, f.method, f.matched) for f in outcome.filters] == [
        (1, "set_payload", "points", 2), (2, "overwrite_payload", "points", 5), (3, "delete_payload", "points", 7),
        (5, "delete", "points", 5), (7, "clear_payload", "points", 1)]
    assert outcome.checked_points == 16  # every point a filter matched, besides the id-addressed ones
    points = {int(p.id): p.payload for p in (await proc.client.scroll("docs", limit=100))[0]}
    assert 15 not in points
    assert points[30] == {"tag": "d"}
    assert points[6] == {}
    assert points[2] == {"n": 2, "tag": "c", "body": "text 2", "flag": True, "level": 3}
    assert points[1] == {"n": 1, "tag": "a", "after": 1}
    await proc.client.close()


async def test_a_filter_reembed_is_verified(qdrant_target: QdrantTarget, model_paths: dict[str, str]) -> None:
    proc = processor(qdrant_target, model_paths, expect="reembed")
    await setup(proc, 6)
    window = [{"schema_version": 1, "kind": "reembed", "collection": "docs", "filter": tag("a"), "text_field": "body"},
              {"schema_version": 1, "kind": "reembed", "collection": "docs", "ids": [0], "text_field": "body"}]
    verification = await run(proc, window, topic="reembeds")
    assert verification.verification.status == "verified", verification.verification
    assert verification.points.count == 4  # 1, 3, 5 by the filter, 0 by id
    await proc.client.close()


async def test_a_filter_op_the_server_applied_in_part_is_a_mismatch(qdrant_target: QdrantTarget,
                                                                   model_paths: dict[str, str],
                                                                   tmp_path: Path) -> None:
    """A point the filter matched but the op left alone (failpoint drop-filter-match: the op is
    sent without it) is found by the read-back, whichever way the op was checked."""
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    (failpoints / "drop-filter-match").touch()
    proc = processor(qdrant_target, model_paths, failpoints_dir=failpoints, verify_filter_max_points=4)
    await setup(proc, 12)
    small = await run(proc, [ev("set_payload", filter={"must": [{"key": "n", "range": {"lt": 3}}]},
                                payload={"x": 1})])
    assert small.verification.status == "mismatch", small.verification
    assert (small.verification.mismatches[0].id, small.verification.mismatches[0].field) == (0, "payload")
    large = await run(proc, [ev("delete", filter=tag("a"))], first=1)  # 6 matches > 4: counted after
    assert large.verification.filters[0].method == "count"
    assert large.verification.filters[0].count_after == 1
    assert large.verification.status == "mismatch", large.verification
    await proc.client.close()


async def test_filters_over_the_bound_are_counted_or_sampled(qdrant_target: QdrantTarget,
                                                             model_paths: dict[str, str]) -> None:
    proc = processor(qdrant_target, model_paths, verify_filter_max_points=3)
    await setup(proc, 14)
    window = [
        ev("set_payload", filter=tag("b"), payload={"state": "done", "rank": 2}),  # 7 matches: counted
        ev("set_payload", filter=tag("a"), payload={"score": 0.5}),  # a float: no equality match, sampled
        ev("delete", filter={"must": [{"key": "n", "range": {"gte": 10}}]}),  # 4 matches: counted
    ]
    verification = await run(proc, window)
    outcome = verification.verification
    assert outcome.status == "verified", outcome
    assert [(f.method, f.matched, f.checked_points, f.count_after) for f in outcome.filters] == [
        ("count", 7, 3, 0), ("sample", 7, 3, None), ("count", 4, 3, 0)]
    assert len({f.ids_digest for f in outcome.filters}) == 3
    await proc.client.close()


def calls(name: str) -> float:
    return metrics.REGISTRY.get_sample_value("qdrant_connector_qdrant_request_seconds_count", {"call": name}) or 0.0


async def test_with_verification_off_nothing_is_read_back(qdrant_target: QdrantTarget,
                                                          model_paths: dict[str, str]) -> None:
    proc = processor(qdrant_target, model_paths, verify_after_apply=False)
    await setup(proc, 10)
    retrieves, scrolls = calls("retrieve"), calls("scroll")
    verification = await run(proc, [ev("set_payload", ids=[1, 2], payload={"x": 1}), ev("delete", filter=tag("a"))])
    assert verification.verification.status == "skipped"
    assert verification.verification.reason == "verification is off (QCC_VERIFY_AFTER_APPLY)"
    assert verification.applied_event_count == 2
    assert calls("retrieve") - retrieves == 1  # which points exist, before the window; no read-back
    assert calls("scroll") == scrolls  # no filter match taken
    points = {int(p.id): p.payload for p in (await proc.client.scroll("docs", limit=100))[0]}
    assert sorted(points) == [0, 2, 4, 6, 8]
    assert points[2] == {"n": 2, "tag": "b", "body": "text 2", "x": 1}
    await proc.client.close()


@pytest.mark.parametrize("server_target", ["rest", "grpc"], indirect=True)
async def test_a_float_the_server_rounds_in_its_last_digit_is_verified(server_target: QdrantTarget,
                                                                      model_paths: dict[str, str]) -> None:
    """Qdrant's JSON parser is not correctly rounded in the last digit: 0.9872592010330129 comes
    back as 0.9872592010330128. That is the value Qdrant keeps, not a mismatch."""
    proc = processor(server_target, model_paths)
    await setup(proc, 3)
    verification = await run(proc, [ev("set_payload", ids=[1], payload={"v": 0.9872592010330129})])
    assert verification.verification.status == "verified", verification.verification
    await proc.client.close()
