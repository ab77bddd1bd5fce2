"""The gRPC wire on the real server: batches built straight as protobuf
(connector/qdrant/wires/grpc.py) leave the state the models wire leaves, and points read and
decoded by the gRPC wire (reads.read_state) are the state the REST wire and the models wire
make: named dense and sparse vectors, the unnamed one, nested payloads, nulls, integers and
doubles, shard keys; errors are classified as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from qdrant_client import models as qm

from connector.dev.qdrant_server import QdrantServer
from connector.dev.spawn import free_port
from connector.domain.changes import ShardKeyWithFallback
from connector.domain.operations import Op, PointData, Sparse, Vector
from connector.domain.semantics import State
from connector.domain.sharding import Selector
from connector.errors import CollectionMissing
from connector.qdrant import make_retrying
from connector.qdrant.apply import BatchApplier
from connector.qdrant.reads import read_state
from connector.qdrant.retrying import RetryingClient
from connector.qdrant.wires import GrpcWire, ModelsWire, RestWire
from connector.settings import Settings
from connector.versions import Feature
from tests.unit.strategies import with_tuples

pytestmark = [pytest.mark.integration, pytest.mark.server]

UUID = "3f2f8c6e-0c5b-4e3a-9a55-1f3b7d0e2a10"
PAYLOADS: list[dict[str, Any]] = [
    {"text": "naïve café ✓", "n": 2**63 - 1, "neg": -(2**63), "f": 0.1, "whole": 2.0, "tiny": 5e-324,
     "nested": {"a": [1, {"b": None}], "c": {"d": [True, "x", 1.5]}}},
    {"empty": {}, "list": [], "flag": False, "big_float": 1.7976931348623157e308},
    {},
]
IDS: list[Any] = [0, 1, 2, 99, UUID]


def window() -> list[Op]:
    """A window of every id-addressed op kind, on named dense, sparse and raw vectors."""
    points = {i: PointData(vectors={"dense": (0.6, -0.8), "raw": (1e30, -3.5, float(i)),
                                    "sparse": Sparse((9, 2), (0.5, -2.25))}, payload=payload)
              for i, payload in enumerate(PAYLOADS)}
    points[UUID] = PointData(vectors={"raw": (1.0, 2.0, 3.0)}, payload={"n": 1})
    return [
        Op("upsert", points=points, sources=[0]),
        Op("set_payload", ids=[0, UUID], payload={"text": None, "m": {"k": [1, 2.5]}, "z": None}, sources=[1]),
        Op("set_payload", ids=[1], payload={"x": 3, "gone": None}, key="empty", sources=[2]),
        Op("delete_payload", ids=[0], keys=("f",), sources=[3]),
        Op("overwrite_payload", ids=[2], payload={"o": {"p": None, "q": -7}}, sources=[4]),
        Op("update_vectors", points={1: PointData(vectors={"sparse": Sparse((4,), (1.0,)), "dense": (0.0, 1.0)})},
           sources=[5]),
        Op("delete_vectors", ids=[2], vector_names=("sparse",), sources=[6]),
        Op("clear_payload", ids=[UUID], sources=[7]),
        Op("upsert", points={5: PointData(vectors={"raw": (0.0, 0.0, 1.0)}, payload={"d": 1})}, sources=[8]),
        Op("delete", ids=[5], sources=[9]),
    ]


async def create(qdrant: RetryingClient, name: str, **options: Any) -> None:
    await qdrant.client.create_collection(
        name,
        vectors_config={"dense": qm.VectorParams(size=2, distance=qm.Distance.COSINE),
                        "raw": qm.VectorParams(size=3, distance=qm.Distance.EUCLID)},
        sparse_vectors_config={"sparse": qm.SparseVectorParams()}, **options)


@pytest.fixture(scope="module")
def one_node_cluster() -> Iterator[QdrantServer]:
    """A server in distributed mode (a cluster of one): only there are shard keys."""
    from tests.conftest import _server_or_skip

    yield from _server_or_skip(p2p_port=free_port())


async def make_qdrants(qdrant_server: QdrantServer) -> tuple[RetryingClient, RetryingClient]:
    over_grpc = make_retrying(Settings(qdrant_url=qdrant_server.url, qdrant_prefer_grpc=True,
                                       qdrant_grpc_port=qdrant_server.grpc_port))
    over_rest = make_retrying(Settings(qdrant_url=qdrant_server.url))
    assert isinstance(over_grpc.wire, GrpcWire)
    assert isinstance(over_rest.wire, RestWire)
    for existing in (await over_rest.client.get_collections()).collections:
        await over_rest.client.delete_collection(existing.name)
    return over_grpc, over_rest


@pytest.fixture
async def qdrants(qdrant_server: QdrantServer) -> Any:
    """The worker's gRPC client and its REST one, on a server without collections."""
    over_grpc, over_rest = await make_qdrants(qdrant_server)
    yield over_grpc, over_rest
    await over_grpc.client.close()
    await over_rest.client.close()


async def readings(over_grpc: RetryingClient, over_rest: RetryingClient, collection: str,
                   shard_key: Selector | None = None) -> list[Any]:
    """The points read the three ways (gRPC fast, gRPC through the models, REST), for several selectors."""
    out = []
    for payload, vectors in ((True, True), (["text", "nested", "m"], ["sparse", "raw"]), (False, False),
                             (True, ["dense"])):
        fast = await read_state(over_grpc, collection, IDS, payload=payload, vectors=vectors, shard_key=shard_key)
        wire, over_grpc.wire = over_grpc.wire, ModelsWire(over_grpc.client)
        models = await read_state(over_grpc, collection, IDS, payload=payload, vectors=vectors, shard_key=shard_key)
        over_grpc.wire = wire
        rest = await read_state(over_rest, collection, IDS, payload=payload, vectors=vectors, shard_key=shard_key)
        assert with_tuples(fast) == models, (payload, vectors)
        assert as_float32(fast) == as_float32(rest), (payload, vectors)
        out.append(with_tuples(fast))
    return out


def as_float32(state: State) -> Any:
    """A state with its vector values as the float32 Qdrant stores: gRPC carries them as they are
    (0.6 is 0.6000000238418579), REST's JSON by their shortest text (0.6)."""
    def values(vector: Vector) -> Any:
        if isinstance(vector, Sparse):
            return vector.indices, np.float32(vector.values).tolist()
        return np.float32(vector).tolist()

    return {pid: (point.payload, {name: values(v) for name, v in point.vectors.items()})
            for pid, point in state.items()}


async def test_a_window_sent_fast_leaves_what_the_models_leave(qdrants: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    over_grpc, over_rest = qdrants
    await create(over_grpc, "fast")
    await create(over_grpc, "models")
    built: list[Any] = []
    original = GrpcWire.encode

    def counting(ops: list[Op], shard_key: Selector | None = None) -> Any:
        request = original(ops, shard_key)
        built.append(request)
        return request

    monkeypatch.setattr(over_grpc.wire, "encode", counting)
    result = await BatchApplier(over_grpc).apply("fast", window())
    assert result.failed == []
    # one request, every op built as protobuf (two set_payloads split at their nulls)
    assert [len(request) if isinstance(request, list) else request for request in built] == [12]
    wire, over_grpc.wire = over_grpc.wire, ModelsWire(over_grpc.client)  # qdrant-client's models, converted by it
    assert (await BatchApplier(over_grpc).apply("models", window())).failed == []
    over_grpc.wire = wire
    assert len(built) == 1

    fast = await readings(over_grpc, over_rest, "fast")
    assert fast == await readings(over_grpc, over_rest, "models")
    whole = fast[0]
    assert set(whole) == {0, 1, 2, UUID}
    assert whole[0].payload["nested"] == {"a": [1, {"b": None}], "c": {"d": [True, "x", 1.5]}}
    assert {"text", "z"}.isdisjoint(whole[0].payload)
    assert whole[1].payload["empty"] == {"x": 3}
    assert whole[2].payload == {"o": {"p": None, "q": -7}}
    assert whole[1].vectors["sparse"] == Sparse((4,), (1.0,))
    assert "sparse" not in whole[2].vectors
    assert whole[UUID].payload == {}
    # integers stay integers, doubles doubles (2.0 is not 2), as the REST reading has them
    assert type(whole[1].payload["big_float"]) is float
    assert [type(whole[0].payload[k]) for k in ("n", "neg", "whole", "tiny")] == [int, int, float, float]


async def test_the_unnamed_vector_and_an_unknown_collection(qdrants: Any) -> None:
    over_grpc, over_rest = qdrants
    await over_grpc.client.create_collection("plain", vectors_config=qm.VectorParams(size=3, distance=qm.Distance.DOT))
    ops = [Op("upsert", points={i: PointData(vectors={"": (0.5, float(i), -1.0)}, payload={"i": i}) for i in range(3)},
              sources=[0])]
    assert (await BatchApplier(over_grpc).apply("plain", ops)).failed == []
    fast = await read_state(over_grpc, "plain", [0, 1, 2], payload=True, vectors=True)
    assert with_tuples(fast) == with_tuples(await read_state(over_rest, "plain", [0, 1, 2], payload=True,
                                                             vectors=True))
    assert with_tuples(fast)[2].vectors == {"": (0.5, 2.0, -1.0)}
    with pytest.raises(CollectionMissing):
        await BatchApplier(over_grpc).apply("no-such-collection", ops)
    with pytest.raises(CollectionMissing):
        await read_state(over_grpc, "no-such-collection", [1], payload=True)
    # a point the server refuses (a vector of the wrong size) is the event's fault, the rest applied
    bad = Op("upsert", points={7: PointData(vectors={"": (1.0,)})}, sources=[1])
    good = Op("set_payload", ids=[0], payload={"ok": True}, sources=[2])
    result = await BatchApplier(over_grpc).apply("plain", [bad, good])
    assert [f.position for f in result.failed] == [1]
    assert (await read_state(over_grpc, "plain", [0], payload=True))[0].payload == {"i": 0, "ok": True}


async def test_shard_keys_are_written_and_read(one_node_cluster: QdrantServer) -> None:
    over_grpc, over_rest = await make_qdrants(one_node_cluster)
    await create(over_grpc, "sharded", sharding_method=qm.ShardingMethod.CUSTOM)
    for key in ("a", 7):
        await over_grpc.client.create_shard_key("sharded", key)
    sink = BatchApplier(over_grpc)
    assert (await sink.apply("sharded", window(), shard_key="a")).failed == []
    both = await readings(over_grpc, over_rest, "sharded", shard_key=["a", 7])
    assert set(both[0]) == {0, 1, 2, UUID}
    assert await readings(over_grpc, over_rest, "sharded", shard_key=7) == [{}, {}, {}, {}]
    if one_node_cluster.version().has(Feature.SHARD_KEY_FALLBACK):  # 1.16's fallback selector
        fallback = ShardKeyWithFallback(target="b", fallback="a")
        assert await readings(over_grpc, over_rest, "sharded", shard_key=fallback) == both
        # a write to the fallback's shard, then read from it alone
        assert (await sink.apply("sharded", [Op("set_payload", ids=[0], payload={"w": 1}, sources=[0])],
                                 shard_key=fallback)).failed == []
        assert (await read_state(over_grpc, "sharded", [0], payload=["w"], shard_key="a"))[0].payload == {"w": 1}
    await over_grpc.client.close()
    await over_rest.client.close()
