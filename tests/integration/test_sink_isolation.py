"""A batch is not a transaction: the sink isolates the failing event and applies the rest."""

from __future__ import annotations

import pytest
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.operations import Op, PointData
from connector.planner import plan
from connector.sink import QdrantSink, split_at_filters


@pytest.fixture()
async def client():
    c = AsyncQdrantClient(":memory:")
    await c.create_collection("c", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    await c.upsert("c", [qm.PointStruct(id=i, vector=[1, i], payload={"n": i}) for i in range(1, 6)])
    yield c
    await c.close()


async def test_a_missing_point_inside_a_coalesced_op_fails_only_its_event(client: AsyncQdrantClient) -> None:
    window = [
        Op("set_payload", ids=[1], payload={"tag": "a"}, sources=[0]),
        Op("update_vectors", points={2: PointData({"": (9.0, 9.0)})}, sources=[1]),
        Op("set_payload", ids=[99], payload={"tag": "a"}, sources=[2]),  # point 99 does not exist
        Op("set_payload", ids=[3], payload={"tag": "a"}, sources=[3]),
        Op("delete_payload", ids=[4], keys=("n",), sources=[4]),
    ]
    planned = plan(window)
    assert len(planned) == 3  # the three set_payload events became one op
    result = await QdrantSink(client).apply("c", planned)
    assert [f.position for f in result.failed] == [2]
    assert "99" in str(result.failed[0].error)
    assert result.requests > 1
    points = {p.id: p for p in await client.retrieve("c", [1, 2, 3, 4, 5], with_vectors=True)}
    assert points[1].payload == {"n": 1, "tag": "a"} and points[3].payload == {"n": 3, "tag": "a"}
    assert points[2].vector == [9.0, 9.0]
    assert points[4].payload == {}
    assert sorted(s for op in result.applied for s in op.sources) == [0, 1, 3, 4]


async def test_a_wrong_vector_size_fails_only_its_event(client: AsyncQdrantClient) -> None:
    window = [
        Op("update_vectors", points={1: PointData({"": (1.0, 2.0, 3.0)})}, sources=[0]),
        Op("set_payload", ids=[5], payload={"ok": True}, sources=[1]),
    ]
    result = await QdrantSink(client).apply("c", plan(window))
    assert [f.position for f in result.failed] == [0]
    assert "dimension" in str(result.failed[0].error).lower()
    assert (await client.retrieve("c", [5]))[0].payload == {"n": 5, "ok": True}


async def test_several_failures_in_one_window(client: AsyncQdrantClient) -> None:
    window = [Op("clear_payload", ids=[i], sources=[i]) for i in range(0, 12)]  # 0 and 6..11 are missing
    result = await QdrantSink(client).apply("c", plan(window))
    assert sorted(f.position for f in result.failed) == [0, 6, 7, 8, 9, 10, 11]
    assert all(p.payload == {} for p in await client.retrieve("c", [1, 2, 3, 4, 5]))


async def test_isolation_never_resends_a_filter_op_before_ops_it_could_match(client: AsyncQdrantClient) -> None:
    # sent together and bisected, the re-sent prefix would delete point 2 after it got tag=x
    window = [
        Op("delete", filter={"must": [{"key": "tag", "match": {"value": "x"}}]}, sources=[0]),
        Op("set_payload", ids=[2], payload={"tag": "x"}, sources=[1]),
        Op("set_payload", ids=[99], payload={"tag": "y"}, sources=[2]),  # missing: isolation runs
        Op("set_payload", ids=[3], payload={"tag": "z"}, sources=[3]),
    ]
    result = await QdrantSink(client).apply("c", plan(window))
    assert [f.position for f in result.failed] == [2]
    points = {p.id: p.payload for p in await client.retrieve("c", [1, 2, 3, 4, 5])}
    assert points[2] == {"n": 2, "tag": "x"} and points[3] == {"n": 3, "tag": "z"}
    assert len(points) == 5


def test_filter_ops_go_alone() -> None:
    f = Op("delete", filter={"must": []}, sources=[9])
    a, b, c = (Op("clear_payload", ids=[i], sources=[i]) for i in range(3))
    assert split_at_filters([a, b, f, c, f, f]) == [[a, b], [f], [c], [f], [f]]
    assert split_at_filters([f, a]) == [[f], [a]] and split_at_filters([]) == []
