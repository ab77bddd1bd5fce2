"""A replicated collection (6 shards x 2 replicas) on a three-node cluster while the cluster
changes under the stream:

- two nodes down: the cluster has lost its quorum and some shards every replica, so writes cannot
  be applied. The worker holds its windows (nothing dead-lettered, nothing confirmed) and applies
  them once the nodes are back;
- a shard replica moved to another node while the stream writes to it;
- the raft leader SIGKILLed (the worker talks to another node) and restarted: a new leader.

Each ends with every offset verified, nothing dead-lettered and the exact state on every replica."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.dev.qdrant_cluster import QdrantCluster
from tests.integration.harness import Stack, Worker, all_covered, covered_offsets, produce, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = [pytest.mark.integration, pytest.mark.server]

POINTS = 60
Sent = list[tuple[int, int]]


def patch(op: str, **fields: Any) -> tuple[bytes, bytes]:
    ids = fields.get("ids") or [p["id"] for p in fields["points"]]
    body = {"schema_version": 1, "kind": "patch", "collection": "docs", "op": op, **fields}
    return f"docs/{ids[0]}".encode(), json.dumps(body).encode()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["result"]


def replicas(client: QdrantClient) -> list[tuple[int, int, qm.ReplicaState]]:
    """(shard id, peer id, state) of every replica, as the client's node sees them."""
    info = client.http.distributed_api.collection_cluster_info("docs").result
    assert info is not None
    return [(r.shard_id, info.peer_id, r.state) for r in info.local_shards] + [
        (r.shard_id, r.peer_id, r.state) for r in info.remote_shards]


def leader_node(cluster: QdrantCluster, timeout: float = 60) -> int:
    """Which node leads the cluster's consensus now, once one does: right after the nodes of a
    disruption come back an election may still run, and no leader is known (a CI run under load
    asked then)."""
    deadline = time.monotonic() + timeout
    while True:
        leader = get(f"{cluster.url}/cluster")["raft_info"]["leader"]
        for index, node in enumerate(cluster.nodes):
            try:
                if leader is not None and get(f"{node.url}/cluster")["peer_id"] == leader:
                    return index
            except OSError:  # a node still starting
                continue
        assert time.monotonic() < deadline, f"no node of the cluster leads its consensus (raft leader: {leader})"
        time.sleep(0.5)


async def settled(client: QdrantClient, timeout: float = 120) -> None:
    """Until no transfer runs and every replica is active."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.http.distributed_api.collection_cluster_info("docs").result
        assert info is not None
        if not info.shard_transfers and all(state == qm.ReplicaState.ACTIVE for _, _, state in replicas(client)):
            return
        assert time.monotonic() < deadline, f"the cluster did not settle: {info}"
        await asyncio.sleep(0.5)


@dataclass
class Scene:
    """What a disruption acts on: the cluster, a client on the worker's node, the worker, how to
    read which offsets are verified so far, and how to write the events sent during it."""

    cluster: QdrantCluster
    node: int  # the node the worker talks to (not the raft leader)
    client: QdrantClient
    worker: Worker
    covered_now: Callable[[], Awaitable[dict[int, set[int]]]]
    write: Callable[[], Awaitable[Sent]]


async def two_nodes_down(scene: Scene) -> Sent:
    others = [i for i in range(len(scene.cluster.nodes)) if i != scene.node]
    for node in others:
        scene.cluster.kill(node)
    held = await scene.write()
    await scene.worker.wait_for_line("); retry 1 in", timeout=60)  # the worker met the outage and retries
    await asyncio.sleep(5)  # the outage lasts: nothing of the held events may be confirmed meanwhile
    meanwhile = await scene.covered_now()
    assert not any(offset in meanwhile.get(part, set()) for part, offset in held)
    for node in others:
        scene.cluster.restart(node)
    return held


async def replica_moved(scene: Scene) -> Sent:
    client = scene.client
    peers = [int(p) for p in get(f"{scene.cluster.nodes[scene.node].url}/cluster")["peers"]]
    shard = replicas(client)[0][0]
    holders = {peer for shard_id, peer, _ in replicas(client) if shard_id == shard}
    source, destination = min(holders), next(p for p in peers if p not in holders)
    held = await scene.write()
    client.cluster_collection_update("docs", qm.MoveShardOperation(move_shard=qm.MoveShard(
        shard_id=shard, from_peer_id=source, to_peer_id=destination)))
    await settled(client)
    assert {peer for shard_id, peer, _ in replicas(client) if shard_id == shard} == holders - {source} | {destination}
    return held


async def leader_killed(scene: Scene) -> Sent:
    cluster = scene.cluster
    leader = leader_node(cluster)
    assert leader != scene.node
    old = get(f"{cluster.nodes[leader].url}/cluster")["peer_id"]
    cluster.kill(leader)
    held = await scene.write()
    deadline = time.monotonic() + 60
    while get(f"{cluster.nodes[scene.node].url}/cluster")["raft_info"]["leader"] in (old, None):
        assert time.monotonic() < deadline, "no new leader"
        await asyncio.sleep(0.5)
    cluster.restart(leader)
    return held


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
@pytest.mark.parametrize("disrupt", [two_nodes_down, replica_moved, leader_killed],
                         ids=["two-nodes-down", "replica-moved", "leader-killed"])
async def test_the_cluster_changes_under_the_stream(kafka, model_env, tmp_path: Path, qdrant_cluster: QdrantCluster,
                                                    disrupt: Any, protocol: str) -> None:
    talk_to = next(i for i in range(len(qdrant_cluster.nodes)) if i != leader_node(qdrant_cluster))
    target = QdrantTarget(protocol, server=qdrant_cluster.nodes[talk_to])
    target.wipe()
    client = target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT),
                             shard_number=6, replication_factor=2)
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=target)
    await stack.create_topics(partitions=2)
    topic, verifications_topic = stack.env["QCC_PATCH_TOPIC"], stack.env["QCC_VERIFICATION_TOPIC"]
    before = [patch("upsert", points=[{"id": i, "vector": [1.0, float(i)], "payload": {"n": i}}])
              for i in range(POINTS)]
    during = [patch("set_payload", ids=[i], payload={"during": True}) for i in range(POINTS)]
    during += [patch("delete", ids=[i]) for i in range(0, POINTS, 10)]

    async def covered_now() -> dict[int, set[int]]:
        return covered_offsets(await read_topic(kafka.bootstrap, verifications_topic, timeout=10))

    async def write() -> Sent:
        return await produce(kafka.bootstrap, topic, during)

    worker = Worker(stack)
    try:
        sent = await produce(kafka.bootstrap, topic, before)
        await read_topic(kafka.bootstrap, verifications_topic, until=all_covered(sent), timeout=120)
        held = await disrupt(Scene(qdrant_cluster, talk_to, client, worker, covered_now, write))
        verifications = await read_topic(kafka.bootstrap, verifications_topic, until=all_covered(sent + held),
                                         timeout=240)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
        for node in qdrant_cluster.nodes:  # the next test gets the whole cluster
            if node.process is None:
                node.start()
    assert all(v["verification"]["status"] == "verified" for v in verifications if v["applied_event_count"])
    assert await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=3) == []
    await settled(client)
    points, _ = client.scroll("docs", limit=POINTS * 2, consistency=qm.ReadConsistencyType.ALL)
    expected = {i: {"n": i, "during": True} for i in range(POINTS) if i % 10}
    assert {int(p.id): p.payload for p in points} == expected
    client.close()
