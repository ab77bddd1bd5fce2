"""Payload-patch throughput: the connector against a naive consumer and against the ceiling.

- connector: the Faust app, events through the real broker, windows, coalescing, verification.
- naive: one aiokafka consumer that sends one Qdrant request per event (wait=True), as a
  first version of such a service would.
- ceiling: the same operations, parsed and grouped beforehand (not timed), sent straight to
  Qdrant with ``batch_update_points`` in window-sized batches: no Kafka, no checks.

All three run in this process on fresh, identical collections on the same Qdrant target, one
after the other in each repeat, and the targets take turns within the repeat, so drift on a
noisy machine hits all of them.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.common import (
    STALLED_SECONDS,
    Confirmations,
    Context,
    InProcessConnector,
    QdrantTarget,
    TargetName,
    create_kv,
    new_topics,
    produce,
    summary,
)
from bench.peer import cpu_seconds
from connector.domain.changes import parse_change
from connector.domain.operations import op_from_patch
from connector.qdrant import to_qdrant
from tests.faults.workload import make_workload, reference_kv

WINDOW = 500
SUPPORTED: tuple[TargetName, ...] = ("memory", "disk", "rest", "grpc")
# on disk every point written is a SQLite commit (~1 ms), and the naive consumer on a server pays a
# round trip per event, so those get fewer events to keep the run short
FULL_EVENTS: dict[str, int] = {"memory": 20_000, "disk": 5_000, "rest": 10_000, "grpc": 10_000}


def workload(kind: str, n: int, points: int, seed: int = 5) -> list[dict[str, Any]]:
    """identical: one patch on many points (coalescible); distinct: a different patch per event;
    mixed: the eight operations, keys, vectors, deletes and re-creations."""
    if kind == "identical":
        return [{"schema_version": 1, "collection": "kv", "op": "set_payload", "ids": [i % points],
                 "payload": {"archived": True}} for i in range(n)]
    if kind == "distinct":
        return [{"schema_version": 1, "collection": "kv", "op": "set_payload", "ids": [i % points],
                 "payload": {"seq": i}} for i in range(n)]
    records = make_workload(random.Random(seed), n, reembed_share=0.0, invalid_share=0.0, points=points)
    return [r.event for r in records if r.event is not None]


def _key(event: dict[str, Any]) -> bytes:
    ids = event.get("ids") or [p["id"] for p in event["points"]]
    return f"kv/{ids[0]}".encode()


class CpuSpan:
    """CPU of this process and of the Qdrant server (when there is one) over a measured span,
    as ms per 1,000 events: put in ``into`` as ``own`` and ``server``."""

    def __init__(self, target: QdrantTarget, into: dict[str, float] | None) -> None:
        self.target, self.into = target, into

    def _server(self) -> float:
        return cpu_seconds(self.target.server.process.pid) if self.target.server is not None else 0.0

    def start(self) -> None:
        self.own, self.server = time.process_time(), self._server()

    def stop(self, events: int) -> None:
        if self.into is not None:
            self.into["own"] = (time.process_time() - self.own) * 1e6 / events
            if self.target.server is not None:
                self.into["server"] = (self._server() - self.server) * 1e6 / events


async def run_connector(ctx: Context, target: QdrantTarget, events: list[dict[str, Any]], points: int,
                        cpu: dict[str, float] | None = None, **overrides: Any) -> float:
    """Events per second of the connector in this process; ``overrides``: settings; ``cpu`` gets
    the CPU per 1,000 events of this process (the connector, and producing the events) and of the server."""
    client = await target.fresh_client(ctx.scratch("qdrant"))
    await create_kv(client, points)
    settings = ctx.settings("patches", window_max_events=WINDOW, **overrides)
    try:
        async with (
            InProcessConnector(settings, client),
            Confirmations(ctx.bootstrap, settings.verification_topic) as seen,
        ):
            warm = await produce(ctx.bootstrap, settings.patch_topic, [(b"kv/0", json.dumps(events[0]).encode())])
            await seen.wait(settings.patch_topic, warm)
            span = CpuSpan(target, cpu)
            start = time.time()
            span.start()
            sent = await produce(
                ctx.bootstrap, settings.patch_topic, [(_key(e), json.dumps(e).encode()) for e in events]
            )
            done = await seen.wait(settings.patch_topic, sent)
            span.stop(len(events))
            return len(events) / (done - start)
    finally:
        await client.close()


async def run_naive(ctx: Context, target: QdrantTarget, events: list[dict[str, Any]], points: int) -> float:
    client = await target.fresh_client(ctx.scratch("qdrant"))
    await create_kv(client, points)
    topic = f"naive-{uuid.uuid4().hex[:6]}"
    await new_topics(ctx.bootstrap, [topic], partitions=2)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=ctx.bootstrap, group_id=f"naive-{topic}",
                                auto_offset_reset="earliest", enable_auto_commit=True)
    await consumer.start()
    try:
        async def consume(count: int) -> None:
            while count:
                try:
                    message = await asyncio.wait_for(consumer.getone(), timeout=STALLED_SECONDS)
                except asyncio.TimeoutError:
                    raise TimeoutError(f"the naive consumer got no record for {STALLED_SECONDS} s, "
                                       f"{count} to go") from None
                event = parse_change(message.value, expect="patch")
                try:
                    op = op_from_patch(event, 0)  # type: ignore[arg-type]
                    await client.batch_update_points("kv", [to_qdrant(op)], wait=True)
                except Exception:  # noqa: BLE001 - a missing point: skip it, as a naive consumer would
                    pass
                count -= 1

        await produce(ctx.bootstrap, topic, [(b"kv/0", json.dumps(events[0]).encode())])
        await consume(1)
        start = time.time()
        await produce(ctx.bootstrap, topic, [(_key(e), json.dumps(e).encode()) for e in events])
        await consume(len(events))
        return len(events) / (time.time() - start)
    finally:
        await consumer.stop()
        await client.close()


async def run_ceiling(ctx: Context, target: QdrantTarget, events: list[dict[str, Any]], points: int,
                      cpu: dict[str, float] | None = None) -> float:
    client = await target.fresh_client(ctx.scratch("qdrant"))
    await create_kv(client, points)
    # the seeded points first, so that the reference rejects exactly the events on missing points
    seeded = [
        {"schema_version": 1, "collection": "kv", "op": "upsert", "points": [{"id": i, "vector": {"d": [1.0, 0.0]}}]}
        for i in range(points)
    ]
    _, rejected = reference_kv(seeded + events)
    ops = [to_qdrant(op_from_patch(parse_change(json.dumps(e).encode(), expect="patch"), i))  # type: ignore[arg-type]
           for i, e in enumerate(events) if i + points not in rejected]
    try:
        span = CpuSpan(target, cpu)
        start = time.time()
        span.start()
        for i in range(0, len(ops), WINDOW):
            await client.batch_update_points("kv", ops[i : i + WINDOW], wait=True)
        span.stop(len(events))
        return len(events) / (time.time() - start)
    finally:
        await client.close()


async def measure(ctx: Context) -> dict[str, Any]:
    targets = ctx.chosen(SUPPORTED)
    sizes = {t.name: FULL_EVENTS[t.name] if ctx.size == "full" else 300 for t in targets}
    points = 2000 if ctx.size == "full" else 100
    runs: dict[str, dict[str, dict[str, list[float]]]] = {t.name: {} for t in targets}
    cpus: dict[str, dict[str, dict[str, list[float]]]] = {t.name: {} for t in targets}  # per 1,000 events
    for kind in ("identical", "distinct", "mixed"):
        events = {n: workload(kind, n, points) for n in set(sizes.values())}
        for _ in range(ctx.repeats):
            for target in targets:
                mine, n = (
                    runs[target.name].setdefault(kind, {"connector": [], "naive": [], "ceiling": []}),
                    sizes[target.name],
                )
                spent: dict[str, dict[str, float]] = {"connector": {}, "ceiling": {}}
                mine["connector"].append(await run_connector(ctx, target, events[n], points, spent["connector"]))
                mine["naive"].append(await run_naive(ctx, target, events[n], points))
                mine["ceiling"].append(await run_ceiling(ctx, target, events[n], points, spent["ceiling"]))
                used = cpus[target.name].setdefault(kind, {})
                for who, cpu in spent.items():
                    for where, ms in cpu.items():
                        used.setdefault(f"{who}_{where}", []).append(ms)
        for target in targets:
            r = runs[target.name][kind]
            print(
                f"patches {target.name} {kind}: connector {summary(r['connector'])['median']:.0f}/s, "
                f"naive {summary(r['naive'])['median']:.0f}/s, ceiling {summary(r['ceiling'])['median']:.0f}/s",
                flush=True,
            )
    out: dict[str, Any] = {"points": points, "window_max_events": WINDOW, "targets": {}}
    for target in targets:
        workloads = {}
        for kind, r in runs[target.name].items():
            result = {name: summary(values) for name, values in r.items()}
            result["connector_vs_naive"] = summary([c / n_ for c, n_ in zip(r["connector"], r["naive"], strict=True)])
            result["connector_vs_ceiling"] = summary([c / e for c, e in zip(r["connector"], r["ceiling"], strict=True)])
            result["cpu_ms_per_1000"] = {name: summary(values) for name, values in cpus[target.name][kind].items()}
            workloads[kind] = result
        out["targets"][target.name] = {
            "events": sizes[target.name],
            "qdrant": target.describe(),
            "workloads": workloads,
        }
    return out
