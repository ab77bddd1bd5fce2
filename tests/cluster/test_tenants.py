"""Custom sharding on a real three-node cluster: twenty tenants, one shard key each, fed from one
topic; the worker derives each event's shard key from its record key (QCC_SHARD_KEYS). The same
point ids live in every tenant, and a node is SIGKILLed mid-stream and restarted: each tenant ends
exactly as its own events make it, tombstones keyed tenants/<tenant>/<id> included, every offset is
covered by a verified batch that names its shard key, and events without a usable shard key are
dead-lettered with their reasons."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.dev.qdrant_cluster import QdrantCluster
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic, stream_through
from tests.qdrant_targets import QdrantTarget

pytestmark = [pytest.mark.integration, pytest.mark.server]

TENANTS = [f"t{i:02d}" for i in range(20)]
IDS = range(1, 11)


def event(op: str, **fields: Any) -> bytes:
    return json.dumps({"schema_version": 1, "kind": "patch", "collection": "tenants", "op": op, **fields}).encode()


def tenant_events(index: int, tenant: str) -> list[tuple[bytes, bytes]]:
    """One tenant's events, all keyed to its partition: upserts, patches by id, a delete, and for
    even tenants a set_payload by filter (odd tenants' points with the same n must stay unflagged)."""
    key = f"tenants/{tenant}/".encode()
    points = [{"id": i, "vector": [float(index + 1), float(i)], "payload": {"tenant": tenant, "n": i}} for i in IDS]
    records = [(key, event("upsert", points=points[:5])), (key, event("upsert", points=points[5:])),
               (key, event("set_payload", ids=[1, 2], payload={"seen": tenant})),
               (key, event("delete", ids=[3])),
               (key, event("delete_payload", ids=[4], keys=["n"]))]
    if index % 2 == 0:
        records.append((key, event("set_payload", filter={"must": [{"key": "n", "match": {"value": 5}}]},
                                   payload={"flag": True})))
    return records


def tenant_tombstones(index: int, tenant: str) -> list[tuple[bytes, None]]:
    """Deletes keyed as compacted topics mean them, tenants/<tenant>/<id>: point 10 of every tenant,
    point 7 of even tenants only (odd tenants keep their 7, the same id)."""
    return [(f"tenants/{tenant}/{i}".encode(), None) for i in ((7, 10) if index % 2 == 0 else (10,))]


def expected_points(index: int, tenant: str) -> dict[int, dict[str, Any]]:
    gone = {3, 10, 7} if index % 2 == 0 else {3, 10}
    state = {i: {"tenant": tenant, "n": i} for i in IDS if i not in gone}
    for i in (1, 2):
        state[i]["seen"] = tenant
    del state[4]["n"]
    if index % 2 == 0:
        state[5]["flag"] = True
    return state


def create_tenants(client: QdrantClient) -> None:
    client.create_collection("tenants", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT),
                             sharding_method=qm.ShardingMethod.CUSTOM, replication_factor=2)
    for tenant in TENANTS:
        client.create_shard_key("tenants", tenant)


def all_replicas_active(client: QdrantClient) -> bool:
    info = client.http.distributed_api.collection_cluster_info("tenants").result
    assert info is not None
    shards = list(info.local_shards) + list(info.remote_shards)
    return all(shard.state == qm.ReplicaState.ACTIVE for shard in shards)


def tenant_state(client: QdrantClient, tenant: str, consistency: Any = None) -> dict[int, dict[str, Any]]:
    points, _ = client.scroll("tenants", limit=100, shard_key_selector=tenant, consistency=consistency)
    return {int(p.id): p.payload or {} for p in points}


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
async def test_twenty_tenants_exact_through_a_node_kill(kafka, model_env, tmp_path: Path,
                                                        qdrant_cluster: QdrantCluster, protocol: str) -> None:
    target = QdrantTarget(protocol, server=qdrant_cluster.nodes[0])
    target.wipe()
    client = target.client()
    create_tenants(client)
    rule = {"tenants": {"from_key": "^tenants/([^/]+)/"}}
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=target,
                  extra_env={"QCC_SHARD_KEYS": json.dumps(rule), "QCC_WINDOW_MAX_EVENTS": "20"})
    await stack.create_topics(partitions=2)
    records = [record for index, tenant in enumerate(TENANTS) for record in tenant_events(index, tenant)]
    bad = [(b"tenants/ghost/", event("delete", ids=[1])),  # a shard key the collection lacks
           (b"no-tenant", event("delete", ids=[1])),  # the rule finds no key
           (b"tenants/t00/", event("delete", ids=[1], shard_key={"target": "t00", "fallback": "nope"}))]
    half = len(records) // 2
    # The tombstones' keys name a point, so they may go to another partition than their tenant's
    # events (keyed tenants/<tenant>/): they are sent once those are confirmed.
    tombstones: list[tuple[bytes, bytes | None]] = [
        record for index, tenant in enumerate(TENANTS) for record in tenant_tombstones(index, tenant)]
    tombstones.append((b"tenants/ghost/1", None))  # a shard key the collection lacks
    verifications_topic = stack.env["QCC_VERIFICATION_TOPIC"]
    worker = Worker(stack)
    try:
        sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], records[:half])
        await read_topic(kafka.bootstrap, verifications_topic, until=all_covered(sent), timeout=120)
        qdrant_cluster.kill(2)  # the second half is written while the cluster is short of a node
        sent += await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], records[half:] + bad)
        await read_topic(kafka.bootstrap, verifications_topic, until=all_covered(sent), timeout=180)
        sent += await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], tombstones)
        verifications = await read_topic(kafka.bootstrap, verifications_topic, until=all_covered(sent), timeout=120)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    batches = [v for v in verifications if v["event_count"]]
    assert all(v["verification"]["status"] in ("verified", "skipped") for v in batches), \
        [v["verification"] for v in batches if v["verification"]["status"] not in ("verified", "skipped")]
    applied = [v for v in batches if v["applied_event_count"]]
    assert {json.dumps(v["shard_key"]) for v in applied} == {json.dumps(t) for t in TENANTS}
    assert all(v["verification"]["status"] == "verified" for v in applied)
    dead = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], until=lambda d: len(d) >= 4)
    assert sorted(d["error"]["code"] for d in dead) == ["shard_key_required", "unknown_shard_key",
                                                        "unknown_shard_key", "unknown_shard_key"]
    for index, tenant in enumerate(TENANTS):
        assert tenant_state(client, tenant) == expected_points(index, tenant), tenant
    qdrant_cluster.restart(2)
    deadline = time.monotonic() + 120
    while not all_replicas_active(client):  # the restarted node's replicas catch up on their own
        assert time.monotonic() < deadline, "replicas of the restarted node did not become active"
        await asyncio.sleep(0.5)
    for index, tenant in enumerate(TENANTS):  # every replica, the restarted node's too, agrees
        assert tenant_state(client, tenant, qm.ReadConsistencyType.ALL) == expected_points(index, tenant), tenant
    client.close()


async def test_shard_keys_from_the_payload_are_created_on_demand(kafka, model_env, tmp_path: Path,
                                                                qdrant_cluster: QdrantCluster) -> None:
    """QCC_CREATE_SHARD_KEYS: a tenant's first upsert creates its shard key; the key comes from the
    upsert's payload, and a set_payload naming its own shard_key needs no rule."""
    target = QdrantTarget("grpc", server=qdrant_cluster.nodes[0])
    target.wipe()
    client = target.client()
    client.create_collection("tenants", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT),
                             sharding_method=qm.ShardingMethod.CUSTOM)
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=target,
                  extra_env={"QCC_SHARD_KEYS": json.dumps({"tenants": {"from_payload": "tenant"}}),
                             "QCC_CREATE_SHARD_KEYS": "true"})
    await stack.create_topics(partitions=1)
    records = [(f"tenants/{t}/".encode(), event("upsert", points=[{"id": 1, "vector": [1.0, float(i)],
                                                                  "payload": {"tenant": t}}]))
               for i, t in enumerate(["red", "green", 7])]
    records.append((b"tenants/red/", event("set_payload", ids=[1], payload={"x": 1}, shard_key="red")))
    verifications, worker = await stream_through(stack, records)
    assert all(v["verification"]["status"] == "verified" for v in verifications if v["event_count"])
    assert sorted(str(k.key) for k in client.list_shard_keys("tenants").shard_keys or []) == ["7", "green", "red"]
    assert tenant_state(client, "red") == {1: {"tenant": "red", "x": 1}}
    assert tenant_state(client, "green") == {1: {"tenant": "green"}}
    assert tenant_state(client, 7) == {1: {"tenant": 7}}
    assert "creating shard key 'red'" in worker.output()
    client.close()
