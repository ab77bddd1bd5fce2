"""What only a server does, on the real Qdrant server over REST and gRPC: limits, rate limits,
API keys, strict mode, collections that change underneath. None of these is an event's fault:
no healthy event may be dead-lettered for them, and the stream must not stop for good.

These drive the sink and the window processor directly (no broker); the worker-level twins
are in ``test_server_stream.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.domain.operations import Op, PointData
from connector.embedding.embedder import Embedder
from connector.errors import AccessDenied, RateLimited, TransientError, UpdateNotApplied
from connector.qdrant import BatchApplier, make_client, make_retrying, to_requests
from connector.settings import Settings
from connector.stream.window import Record, WindowProcessor
from tests.conftest import READ_ONLY_API_KEY
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

DIM = 384


def settings_for(target: QdrantTarget, **extra: Any) -> Settings:
    if target.server is None:
        return Settings(qdrant_path=target.path, retry_initial_seconds=0.05, retry_max_seconds=0.5, **extra)
    return Settings(qdrant_url=target.server.url, qdrant_prefer_grpc=target.prefer_grpc,
                    qdrant_grpc_port=target.server.grpc_port, qdrant_api_key=target.api_key,
                    retry_initial_seconds=0.05, retry_max_seconds=0.5, **extra)


def upsert(first: int, count: int, dim: int = DIM) -> Op:
    points = {i: PointData(vectors={"": tuple([0.25 + i * 1e-6] * dim)}, payload={"n": i}) for i in
              range(first, first + count)}
    return Op("upsert", points=points, sources=[first])


async def create(client: AsyncQdrantClient, name: str = "docs", **options: Any) -> None:
    await client.create_collection(
        name, vectors_config=qm.VectorParams(size=DIM, distance=qm.Distance.COSINE), **options
    )


class Retries:
    """What a sink retried, by kind of error (its ``on_retry`` hook)."""

    def __init__(self) -> None:
        self.errors: list[TransientError] = []

    def __call__(self, _what: str, error: TransientError) -> None:
        self.errors.append(error)


def sink_for(target: QdrantTarget, retries: Retries, **settings: Any) -> BatchApplier:
    config = settings_for(target, **settings)
    qdrant = make_retrying(config)
    qdrant._on_retry = retries  # noqa: SLF001 - the hook the fault tests use too
    # over REST and gRPC the applier's requests are the wire's own, as the worker's
    assert qdrant.wire.name == {"local": "models"}.get(target.name, target.name)
    return BatchApplier(qdrant, config.qdrant_max_request_bytes)


@pytest.fixture(scope="module")
def small_body_server() -> Iterator[Any]:
    """A server whose REST body limit is 1 MiB (Qdrant's default is 32 MiB)."""
    from tests.conftest import _server_or_skip

    yield from _server_or_skip(env={"QDRANT__SERVICE__MAX_REQUEST_SIZE_MB": "1"})


async def test_a_body_over_the_servers_limit_is_split_not_blamed(small_body_server: Any) -> None:
    target = QdrantTarget("rest", server=small_body_server)
    target.wipe()
    retries = Retries()
    # the estimate allows 64 MiB, so the server's 400 "larger than allowed" is what must split it
    sink = sink_for(target, retries, qdrant_max_request_bytes=64 * 1024 * 1024)
    await create(sink.qdrant.client)
    ops = [upsert(i * 100, 100) for i in range(4)]  # ~4 MB of JSON in one request
    result = await sink.apply("docs", ops)
    assert result.failed == []
    assert (await sink.qdrant.client.count("docs")).count == 400
    assert sink.max_request_points is not None
    assert sink.max_request_points < 400
    again = await sink.apply("docs", [upsert(1000, 300)])  # the next window is cut before it is sent
    assert again.failed == []
    assert (await sink.qdrant.client.count("docs")).count == 700
    await sink.qdrant.client.close()


async def test_requests_are_cut_by_estimated_size_before_sending(small_body_server: Any) -> None:
    target = QdrantTarget("rest", server=small_body_server)
    target.wipe()
    sink = sink_for(target, Retries(), qdrant_max_request_bytes=512 * 1024)
    await create(sink.qdrant.client)
    result = await sink.apply("docs", [upsert(0, 400)])
    assert result.failed == []
    assert (await sink.qdrant.client.count("docs")).count == 400
    assert sink.max_request_points is None  # never refused: the estimate alone kept it under 1 MiB
    await sink.qdrant.client.close()


async def test_a_batch_queued_but_not_applied_is_sent_again_until_applied(server_target: QdrantTarget) -> None:
    """Qdrant 1.17+ answers 200 with status ``wait_timeout`` when an update outlives its
    ``timeout`` (0: always, on 1.18.3): queued, not applied. The applier counts a request only
    when a copy sent again answers ``completed``. Over REST the test sends only id-addressed ops,
    which the applier encodes and sends itself; a filter op takes qdrant-client's call, which makes
    the update's timeout its HTTP timeout too, and 0 fails to connect."""
    assert server_target.server is not None
    if not server_target.server.version().at_least((1, 17)):
        pytest.skip(f"Qdrant {server_target.server.version()} never answers wait_timeout (1.17 first does)")
    retries = Retries()
    sink = sink_for(server_target, retries)
    sink.wait_timeout = 0
    await create(sink.qdrant.client)
    backlog = upsert(1000, 2000)  # queued ahead (wait=false), so the window's first request cannot be done at once
    await sink.qdrant.client.batch_update_points("docs", to_requests(backlog), wait=False)
    archived = Op("set_payload", filter={"must": [{"key": "n", "range": {"lt": 10}}]}, payload={"archived": True},
                  sources=[2])
    ops = [upsert(0, 50), Op("set_payload", ids=[20, 21], payload={"tag": "x"}, sources=[1])]
    ops += [archived] if server_target.prefer_grpc else []
    result = await sink.apply("docs", ops)
    assert result.failed == []
    queued = [error for error in retries.errors if isinstance(error, UpdateNotApplied)]
    assert queued, "no request was answered as queued"  # the filter op's request may be done at once
    assert all("wait_timeout" in str(error) for error in queued)
    points = await sink.qdrant.client.retrieve("docs", list(range(50)))
    payloads = {int(point.id): point.payload for point in points}
    assert len(payloads) == 50
    archived_ids = list(range(10)) if server_target.prefer_grpc else []
    assert [i for i, p in sorted(payloads.items()) if p and p.get("archived")] == archived_ids
    assert payloads[20] == {"n": 20, "tag": "x"}
    await sink.qdrant.client.close()


async def test_rate_limit_splits_beyond_capacity_and_waits_as_told(server_target: QdrantTarget) -> None:
    retries = Retries()
    sink = sink_for(server_target, retries)
    await create(sink.qdrant.client)
    # 1,200 points a minute (20 a second), a bucket of 1,200 tokens, one token per point
    await sink.qdrant.client.update_collection(
        "docs", strict_mode_config=qm.StrictModeConfig(enabled=True, write_rate_limit=1200)
    )
    beyond_capacity = await sink.apply("docs", [upsert(0, 1210)])  # more than the bucket holds: split, not retried
    assert beyond_capacity.failed == []
    assert sink.max_request_points is not None
    assert sink.max_request_points < 1210
    short = await sink.apply("docs", [upsert(2000, 60)])  # the bucket is nearly empty: "Retry after Ns"
    assert short.failed == []
    assert any(isinstance(e, RateLimited) and e.retry_after for e in retries.errors), retries.errors
    assert (await sink.qdrant.client.count("docs")).count == 1270
    await sink.qdrant.client.close()


async def test_strict_mode_batch_limit_is_split(server_target: QdrantTarget) -> None:
    sink = sink_for(server_target, Retries())
    await create(sink.qdrant.client, strict_mode_config=qm.StrictModeConfig(enabled=True, upsert_max_batchsize=50))
    result = await sink.apply("docs", [upsert(0, 60), upsert(100, 30)])
    assert result.failed == []
    assert (await sink.qdrant.client.count("docs")).count == 90
    await sink.qdrant.client.close()


async def test_a_read_only_key_is_retried_not_blamed(qdrant_server_with_keys: Any) -> None:
    from tests.conftest import API_KEY

    admin = QdrantTarget("rest", server=qdrant_server_with_keys, api_key=API_KEY)
    admin.wipe()
    async_admin = admin.async_client()
    await create(async_admin)
    for name, key in (
        ("rest", READ_ONLY_API_KEY),
        ("grpc", READ_ONLY_API_KEY),
        ("rest", "not-a-key"),
        ("grpc", "nope"),
    ):
        retries = Retries()
        sink = sink_for(QdrantTarget(name, server=qdrant_server_with_keys, api_key=key), retries)
        with pytest.raises(asyncio.TimeoutError):  # retried for as long as it takes, never raised
            await asyncio.wait_for(sink.apply("docs", [upsert(0, 3)]), timeout=2)
        assert retries.errors, retries.errors
        assert all(isinstance(e, AccessDenied) for e in retries.errors), retries.errors
        assert sink.qdrant.failure is not None
        assert "QCC_QDRANT_API_KEY" in sink.qdrant.failure
        await sink.qdrant.client.close()
    assert (await async_admin.count("docs")).count == 0
    await async_admin.close()


async def test_the_configured_timeout_is_kept_as_given(server_target: QdrantTarget) -> None:
    assert server_target.server is not None
    settings = settings_for(server_target, qdrant_timeout_seconds=0.5)
    retries = Retries()
    sink = make_retrying(settings)
    sink._on_retry = retries  # noqa: SLF001
    await create(sink.client)
    server_target.server.pause()
    try:
        call = asyncio.ensure_future(sink.call("get_collections", sink.client.get_collections))
        for _ in range(300):  # until the first timeout has been retried (a 0 timeout would fail at once,
            if retries.errors:  # no timeout would never get here); a deadline, not a measure of speed
                break
            await asyncio.sleep(0.1)
        ended = call.exception() if call.done() else "still waiting"
        assert retries.errors, f"the call was never retried after a timeout; the call: {ended!r}"
        assert not call.done()
    finally:
        server_target.server.resume()
    await asyncio.wait_for(call, timeout=30)  # and it succeeds once the server is back
    await sink.client.close()


# --- the window processor: what the catalog and strict mode refuse ---------------------------


def record(offset: int, event: dict[str, Any], topic: str = "patches") -> Record:
    return Record(topic=topic, partition=0, offset=offset, value=json.dumps(event).encode(), key=None)


def ev(op: str, **fields: Any) -> dict[str, Any]:
    return {"schema_version": 1, "collection": fields.pop("collection", "docs"), "op": op, **fields}


def processor_for(target: QdrantTarget, **settings: Any) -> WindowProcessor:
    config = settings_for(target, **settings)
    client = make_client(config)
    return WindowProcessor(config, client, make_retrying(config, client), Embedder(config), "patch")


async def test_unindexed_filter_refused_by_strict_mode_fails_only_its_event(server_target: QdrantTarget) -> None:
    processor = processor_for(server_target)
    await create(processor.client, strict_mode_config=qm.StrictModeConfig(
        enabled=True, unindexed_filtering_retrieve=False, unindexed_filtering_update=False))
    await processor.client.upsert(
        "docs", [qm.PointStruct(id=i, vector=[0.5] * DIM, payload={"n": i}) for i in range(5)]
    )
    window = [
        record(0, ev("set_payload", ids=[1], payload={"a": 1})),
        record(1, ev("delete", filter={"must": [{"key": "n", "match": {"value": 3}}]})),  # "n" has no index
        record(2, ev("set_payload", ids=[2], payload={"a": 2})),
    ]
    result = await processor.process(window)
    assert [d.source.offset for d in result.dead_letters] == [1]
    assert result.dead_letters[0].error.code == "blast_radius_unknown"
    assert "Index required" in result.dead_letters[0].error.message
    assert result.verifications[0].applied_event_count == 2
    assert result.verifications[0].verification.status == "verified"
    await processor.client.close()


async def test_collections_and_vectors_changed_under_the_catalog(server_target: QdrantTarget) -> None:
    processor = processor_for(server_target)
    await create(processor.client)
    await processor.client.upsert("docs", [qm.PointStruct(id=1, vector=[0.5] * DIM)])
    first = await processor.process([record(0, ev("set_payload", ids=[1], payload={"a": 1}))])
    assert not first.dead_letters  # the catalog now holds "docs" with one unnamed vector
    # Recreated with a named vector: events for it are healthy and must not be refused from the cache.
    await processor.client.delete_collection("docs")
    await processor.client.create_collection(
        "docs", vectors_config={"dense": qm.VectorParams(size=3, distance=qm.Distance.DOT)}
    )
    second = await processor.process([record(1, ev("upsert", points=[{"id": 7, "vector": {"dense": [1, 2, 3]}}]))])
    assert not second.dead_letters, second.dead_letters
    assert (await processor.client.retrieve("docs", [7], with_vectors=True))[0].vector == {"dense": [1.0, 2.0, 3.0]}
    # A collection created after the catalog said "unknown" is found on the next window.
    missing = await processor.process([record(2, ev("set_payload", ids=[7], payload={"b": 1}, collection="later"))])
    assert [d.error.code for d in missing.dead_letters] == ["unknown_collection"]
    await processor.client.create_collection("later", vectors_config={})
    await processor.client.upsert("later", [qm.PointStruct(id=7, vector={})])
    found = await processor.process([record(3, ev("set_payload", ids=[7], payload={"b": 1}, collection="later"))])
    assert not found.dead_letters, found.dead_letters
    # Deleted under the cache: its events are for an unknown collection; nothing crashes.
    await processor.client.delete_collection("docs")
    gone = await processor.process([record(4, ev("set_payload", ids=[7], payload={"c": 1})),
                                    record(5, ev("set_payload", ids=[8], payload={"c": 2}))])
    assert [d.error.code for d in gone.dead_letters] == ["unknown_collection", "unknown_collection"]
    await processor.client.close()


async def test_a_rejected_event_applied_in_part_is_reported(qdrant_target: QdrantTarget) -> None:
    """Another writer deletes a point after the window's existence read: the multi-point event
    naming it is refused, but Qdrant has already changed some of its points (a server up to the
    chunk with the missing id). The dead letter says it was refused; the verification event says
    which of its points were changed anyway, and still verifies the events that were applied."""
    processor = processor_for(qdrant_target)
    await create(processor.client)
    await processor.client.upsert(
        "docs", [qm.PointStruct(id=i, vector=[0.5] * DIM, payload={"n": i}) for i in range(301)]
    )
    apply = processor.applier.apply

    async def apply_after_another_writer(collection: str, ops: list[Op], *args: Any, **kwargs: Any) -> Any:
        await processor.client.delete(collection, [150])
        return await apply(collection, ops, *args, **kwargs)  # whatever else apply takes, passed on

    processor.applier.apply = apply_after_another_writer  # type: ignore[method-assign]
    result = await processor.process([record(0, ev("set_payload", ids=list(range(200)), payload={"tag": "x"})),
                                      record(1, ev("set_payload", ids=[300], payload={"b": 1}))])
    assert [(d.source.offset, d.error.code) for d in result.dead_letters] == [(0, "qdrant_rejected")]
    outcome = result.verifications[0].verification
    tagged = sorted(p.id for p in (await processor.client.scroll("docs", limit=400, with_payload=True))[0]
                    if (p.payload or {}).get("tag") == "x")
    assert outcome.mismatch_count == 0
    assert outcome.status == "partial"
    # exactly what happened, no more: the tagged points, and point 150 that no longer exists
    assert outcome.changed_by_rejected_count == len(tagged) + 1
    assert {m.id for m in outcome.changed_by_rejected} <= {*tagged, 150}
    assert len(outcome.changed_by_rejected) == 20
    # How much a server changes differs by version: 1.18.3 works in chunks, up to the chunk that names the
    # missing point; 1.13.6 (the versions between were not run) and local mode change every point they find
    if qdrant_target.server is not None and qdrant_target.server.version().at_least((1, 18)):
        assert tagged
        assert max(tagged) < 199
    else:
        assert tagged == [i for i in range(200) if i != 150]
    assert (await processor.client.retrieve("docs", [300]))[0].payload == {"n": 300, "b": 1}
    await processor.client.close()
