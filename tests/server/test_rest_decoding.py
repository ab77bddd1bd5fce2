"""The connector's REST client decodes the server's answers with orjson
(connector/qdrant/wires/rest.py, ``use_rest_session``): on the real server, every read answers exactly what the client
answers with its own decoding, errors included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from connector.dev.qdrant_server import QdrantServer
from connector.errors import CollectionMissing
from connector.qdrant import make_client, make_retrying
from connector.qdrant.errors import classify
from connector.qdrant.reads import read_state
from connector.qdrant.wires import ModelsWire, RestWire
from connector.qdrant.wires import rest as rest_wire
from connector.settings import Settings
from tests.unit.strategies import with_tuples

pytestmark = [pytest.mark.integration, pytest.mark.server]

PAYLOADS: list[dict[str, Any]] = [
    {"text": "naïve café ✓", "n": 2**63 - 1, "neg": -(2**63), "f": 0.1, "tiny": 5e-324,
     "nested": {"a": [1, {"b": None}]}},
    {"empty": {}, "list": [], "flag": False, "big_float": 1.7976931348623157e308},
    {},
]


@pytest.fixture
async def clients(qdrant_server: QdrantServer) -> Any:
    fast = make_client(Settings(qdrant_url=qdrant_server.url, qdrant_prefer_grpc=False))
    plain = AsyncQdrantClient(url=qdrant_server.url)
    yield fast, plain
    await plain.delete_collection("decoding")
    await fast.close()
    await plain.close()


async def test_reads_answer_what_the_clients_own_decoding_answers(clients: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fast, plain = clients
    decoded = 0
    original = rest_wire.orjson_body

    def counting(response: Any, **kwargs: Any) -> Any:
        nonlocal decoded
        decoded += 1
        return original(response, **kwargs)

    monkeypatch.setattr(rest_wire, "orjson_body", counting)
    await plain.create_collection(
        "decoding",
        vectors_config={"dense": qm.VectorParams(size=4, distance=qm.Distance.COSINE),
                        "raw": qm.VectorParams(size=3, distance=qm.Distance.EUCLID)},
        sparse_vectors_config={"sparse": qm.SparseVectorParams()},
    )
    points = [
        qm.PointStruct(id=i, payload=payload, vector={
            "dense": [0.1 * (i + 1), -0.2, 0.3, 1e-7], "raw": [1e30, -3.5, 0.0],
            "sparse": qm.SparseVector(indices=[1, 7], values=[0.5, -2.25]),
        })
        for i, payload in enumerate(PAYLOADS)
    ] + [qm.PointStruct(id="3f2f8c6e-0c5b-4e3a-9a55-1f3b7d0e2a10", payload={"uuid": True}, vector={"raw": [1, 2, 3]})]
    await plain.upsert("decoding", points, wait=True)
    ids = [p.id for p in points]

    fast_records = await fast.retrieve("decoding", ids, with_vectors=True)
    assert fast_records == await plain.retrieve("decoding", ids, with_vectors=True)
    assert [r.payload for r in sorted(fast_records, key=lambda r: str(r.id))][:3] == PAYLOADS
    page, _ = await fast.scroll("decoding", with_vectors=True, limit=10)
    assert page == (await plain.scroll("decoding", with_vectors=True, limit=10))[0]
    assert await fast.get_collection("decoding") == await plain.get_collection("decoding")
    assert decoded >= 3


async def test_an_error_answer_is_the_same_error(clients: Any) -> None:
    fast, plain = clients
    errors = []
    for client in (fast, plain):
        with pytest.raises(UnexpectedResponse) as raised:
            await client.retrieve("no-such-collection", [1])
        mapped = classify(raised.value)
        errors.append((raised.value.status_code, json.loads(raised.value.content)["status"], type(mapped),
                       str(mapped).split('"time"')[0]))  # the server's timing differs
    assert errors[0] == errors[1]
    assert errors[0][0] == 404


@pytest.mark.parametrize("compression", [False, True])
async def test_answers_come_uncompressed_unless_asked(qdrant_server: QdrantServer, compression: bool) -> None:
    client = make_client(Settings(qdrant_url=qdrant_server.url, qdrant_http_compression=compression))
    encodings: list[str | None] = []

    async def record_encoding(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        encodings.append(response.headers.get("content-encoding"))
        return response

    client.http.client.add_middleware(record_encoding)
    try:
        await client.get_collections()
    finally:
        await client.close()
    assert encodings == (["gzip"] if compression else [None])


async def test_requests_share_a_connection(qdrant_server: QdrantServer) -> None:
    """One TCP connection for requests in a row, the server at 127.0.0.1 included (qdrant-client
    would open one per request there: connector/qdrant/client.py, ``KEEP_ALIVE``)."""
    assert "127.0.0.1" in qdrant_server.url or "localhost" in qdrant_server.url
    client = make_client(Settings(qdrant_url=qdrant_server.url))
    streams: list[Any] = []  # held, so that no two connections share an id

    async def record_connection(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        streams.append(response.extensions["network_stream"])
        return response

    client.http.client.add_middleware(record_connection)
    try:
        for _ in range(5):
            await client.get_collections()
    finally:
        await client.close()
    assert len(streams) == 5
    assert len({id(stream) for stream in streams}) == 1


async def test_a_read_from_the_json_is_the_read_through_models(clients: Any, qdrant_server: QdrantServer) -> None:
    """The worker reads points before and after a window from the REST answer's JSON
    (connector/qdrant/wires/rest.py, ``RestWire``): the same state as the models wire makes, for
    named dense and sparse vectors, payloads asked whole or by key, a missing point and a missing collection."""
    _, plain = clients
    await plain.create_collection(
        "decoding",
        vectors_config={"dense": qm.VectorParams(size=2, distance=qm.Distance.COSINE),
                        "raw": qm.VectorParams(size=3, distance=qm.Distance.EUCLID)},
        sparse_vectors_config={"sparse": qm.SparseVectorParams()},
    )
    await plain.upsert("decoding", [
        qm.PointStruct(id=i, payload=payload, vector={"dense": [0.6, -0.8], "raw": [1e30, -3.5, float(i)],
                                                      "sparse": qm.SparseVector(indices=[9, 2], values=[0.5, -2.25])})
        for i, payload in enumerate(PAYLOADS)
    ] + [qm.PointStruct(id="3f2f8c6e-0c5b-4e3a-9a55-1f3b7d0e2a10", payload={"n": 1}, vector={"raw": [1, 2, 3]})],
        wait=True)
    qdrant = make_retrying(Settings(qdrant_url=qdrant_server.url, qdrant_prefer_grpc=False))
    assert isinstance(qdrant.wire, RestWire)
    ids: list[Any] = [0, 1, 2, 99, "3f2f8c6e-0c5b-4e3a-9a55-1f3b7d0e2a10"]
    try:
        for payload, vectors in ((True, True), (["text", "n"], ["sparse", "raw"]), (False, False), (True, ["dense"])):
            from_json = await read_state(qdrant, "decoding", ids, payload=payload, vectors=vectors)
            wire, qdrant.wire = qdrant.wire, ModelsWire(qdrant.client)
            through_models = await read_state(qdrant, "decoding", ids, payload=payload, vectors=vectors)
            qdrant.wire = wire
            assert with_tuples(from_json) == through_models, (payload, vectors)
            assert len(from_json) == 4
        with pytest.raises(CollectionMissing):
            await read_state(qdrant, "no-such-collection", [1], payload=True)
    finally:
        await qdrant.client.close()
