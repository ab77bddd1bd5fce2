"""What the REST and gRPC wires use of qdrant-client beyond its public calls
(connector/qdrant/wires/client_internals.py) is there, and does what they rely on, in the pinned
version: a qdrant-client that moves any of it fails here, by name, rather than in a worker.

No server: the REST session's innermost middleware answers in a server's place (the answers
Qdrant 1.18 writes), so what is checked is the client's side, the request it builds from what the
wire asks and what it hands back; the gRPC parts are read off a client that never connects. The
wires against the real server: tests/server/test_grpc_wire.py, test_rest_decoding.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
from qdrant_client import AsyncQdrantClient, grpc
from qdrant_client import models as qm

from connector.qdrant.wires import RestWire
from connector.qdrant.wires.client_internals import (
    add_rest_middleware,
    grpc_deadline,
    grpc_read_consistency,
    grpc_with_payload,
    grpc_with_vectors,
    grpc_write_ordering,
    rest_session,
)
from connector.qdrant.wires.rest import RAW_ANSWER, use_rest_session

BATCH_ANSWER = {"result": [{"operation_id": 7, "status": "completed"}, {"operation_id": 8, "status": "wait_timeout"}],
                "status": "ok", "time": 0.002}
POINTS_ANSWER = {"result": [{"id": 1, "payload": {"a": 1}, "vector": {"d": [0.5, -0.25]}}],
                 "status": "ok", "time": 0.001}


@pytest.fixture
async def session() -> AsyncIterator[tuple[AsyncQdrantClient, list[httpx.Request]]]:
    """A server client whose REST session is the connector's, answered by the test: the requests it sent."""
    client = AsyncQdrantClient(url="http://127.0.0.1:9", check_compatibility=False)
    sent: list[httpx.Request] = []

    async def answer(request: httpx.Request, _: Callable[[httpx.Request], Awaitable[httpx.Response]]) -> httpx.Response:
        sent.append(request)
        body = BATCH_ANSWER if request.url.path.endswith("/batch") else POINTS_ANSWER
        return httpx.Response(200, content=orjson.dumps(body), request=request)

    add_rest_middleware(client, answer)  # first added, innermost: in the server's place
    use_rest_session(client, compression=False)
    yield client, sent
    await client.close()


async def test_a_batch_goes_as_the_rest_wire_wrote_it_and_its_results_come_back(session: Any) -> None:
    client, sent = session
    body = b'{"operations":[{"delete":{"points":[1]}}]}'
    results = await RestWire(client).send("docs", body, qm.WriteOrdering.MEDIUM, timeout=5)
    assert [(r.operation_id, r.status) for r in results] == [(7, qm.UpdateStatus.COMPLETED),
                                                             (8, qm.UpdateStatus.WAIT_TIMEOUT)]
    (request,) = sent
    assert (request.method, request.url.path, request.content) == ("POST", "/collections/docs/points/batch", body)
    assert parse_qs(request.url.query.decode()) == {"wait": ["true"], "ordering": ["medium"], "timeout": ["5"]}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept-encoding"] == "identity"


async def test_a_read_marked_raw_comes_back_as_its_bytes_and_any_other_decoded(session: Any) -> None:
    client, sent = session
    answer = await RestWire(client).retrieve("docs", [1, "3f2f8c6e-0c5b-4e3a-9a55-1f3b7d0e2a10"], payload=["a"],
                                             vectors=["d"], shard_key="t", consistency=qm.ReadConsistencyType.ALL)
    assert answer == orjson.dumps(POINTS_ANSWER)  # undecoded: the REST wire's decode parses it with simdjson
    assert sent[0].extensions[RAW_ANSWER] is True
    assert sent[0].url.path == "/collections/docs/points"
    assert parse_qs(sent[0].url.query.decode()) == {"consistency": ["all"]}
    assert orjson.loads(sent[0].content) == {"ids": [1, "3f2f8c6e-0c5b-4e3a-9a55-1f3b7d0e2a10"], "with_payload": ["a"],
                                             "with_vector": ["d"], "shard_key": "t"}
    # the client reads every answer through Response.json: without the mark, decoded
    decoded = await rest_session(client).request(type_=Any, method="POST", url="/collections/{name}/points",
                                                 path_params={"name": "docs"}, content=b"{}")
    assert decoded == POINTS_ANSWER


async def test_the_grpc_parts_the_wire_takes_from_the_client() -> None:
    client = AsyncQdrantClient(url="http://127.0.0.1:9", prefer_grpc=True, timeout=2.5, check_compatibility=False)
    try:
        assert grpc_deadline(client) == 3  # the client's own: its timeout, rounded up to whole seconds
        assert callable(client.grpc_points.UpdateBatch)
        assert callable(client.grpc_points.Get)
    finally:
        await client.close()
    assert grpc_write_ordering(qm.WriteOrdering.STRONG) == grpc.WriteOrdering(type=grpc.WriteOrderingType.Strong)
    assert grpc_with_payload(["a"]) == grpc.WithPayloadSelector(include=grpc.PayloadIncludeSelector(fields=["a"]))
    assert grpc_with_payload(True) == grpc.WithPayloadSelector(enable=True)
    assert grpc_with_vectors(["v"]) == grpc.WithVectorsSelector(include=grpc.VectorsSelector(names=["v"]))
    assert grpc_with_vectors(False) == grpc.WithVectorsSelector(enable=False)
    assert grpc_read_consistency(qm.ReadConsistencyType.MAJORITY) == grpc.ReadConsistency(
        type=grpc.ReadConsistencyType.Majority)
    assert grpc_read_consistency(2) == grpc.ReadConsistency(factor=2)
