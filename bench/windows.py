"""Window settings: throughput and latency for a grid of max-events x max-wait.

For each setting and each Qdrant target (in memory, so that the window and not the storage
decides; and the server over REST and gRPC, where each request also pays its round trip), one
in-process connector: throughput on a backlog of distinct patches (repeated), then latency from
the producer's send to the verification event's arrival at a steady rate of half that
setting's backlog throughput. The targets take turns at each setting.

The latency goal (issue 12): p99 at half the maximum rate within the window's max wait plus
twice one batch time, a batch time being one full window at the backlog rate (max events /
backlog events per second): ``p99_bound_ms``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench.common import (
    Confirmations,
    Context,
    InProcessConnector,
    QdrantTarget,
    TargetName,
    create_kv,
    percentile,
    produce,
    summary,
)
from bench.patches import workload

SUPPORTED: tuple[TargetName, ...] = ("memory", "rest", "grpc")


def keyed(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(f"kv/{e['ids'][0]}".encode(), json.dumps(e).encode()) for e in events]


async def one_setting(
    ctx: Context,
    target: QdrantTarget,
    max_events: int,
    max_wait: float,
    backlog: int,
    seconds: float,
    points: int,
) -> dict[str, Any]:
    client = await target.fresh_client(ctx.scratch("qdrant"))
    await create_kv(client, points)
    settings = ctx.settings("windows", window_max_events=max_events, window_max_wait_seconds=max_wait)
    events = keyed(workload("distinct", backlog, points))
    try:
        async with (
            InProcessConnector(settings, client),
            Confirmations(ctx.bootstrap, settings.verification_topic) as seen,
        ):
            await seen.wait(settings.patch_topic, await produce(ctx.bootstrap, settings.patch_topic, events[:1]))
            throughput = []
            for _ in range(ctx.repeats):
                start = time.time()
                done = await seen.wait(settings.patch_topic, await produce(ctx.bootstrap, settings.patch_topic, events))
                throughput.append(len(events) / (done - start))
            backlog_rate = summary(throughput)["median"]
            rate = backlog_rate / 2
            steady = keyed(workload("distinct", max(1, int(rate * seconds)), points))
            sent = await produce(ctx.bootstrap, settings.patch_topic, steady, rate=rate)
            await seen.wait(settings.patch_topic, sent)
            latencies = [seen.seen[(settings.patch_topic, p, o)] - stamp for p, o, stamp in sent]
    finally:
        await client.close()
    batch_seconds = max_events / backlog_rate  # one full window at the backlog rate
    return {
        "max_events": max_events,
        "max_wait_seconds": max_wait,
        "events_per_second": summary(throughput),
        "latency_rate": round(rate, 1),
        "latency_events": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "batch_ms": round(batch_seconds * 1000, 1),
        "p99_bound_ms": round((max_wait + 2 * batch_seconds) * 1000, 1),
    }


async def measure(ctx: Context) -> dict[str, Any]:
    targets = ctx.chosen(SUPPORTED)
    full = ctx.size == "full"
    grid_events = [50, 500, 2000] if full else [50, 500]
    grid_wait = [0.1, 0.5, 2.0] if full else [0.2]
    backlog, seconds = (5000, 10.0) if full else (200, 1.0)
    points = 2000 if full else 100
    out: dict[str, Any] = {
        "backlog_events": backlog,
        "targets": {t.name: {"qdrant": t.describe(), "cells": []} for t in targets},
    }
    for max_events in grid_events:
        for max_wait in grid_wait:
            for target in targets:
                cell = await one_setting(ctx, target, max_events, max_wait, backlog, seconds, points)
                out["targets"][target.name]["cells"].append(cell)
                print(f"window {target.name} {max_events} x {max_wait}s: {cell['events_per_second']['median']:.0f}/s, "
                      f"at {cell['latency_rate']:.0f}/s p50 {cell['p50_ms']} ms, p99 {cell['p99_ms']} ms "
                      f"(bound {cell['p99_bound_ms']} ms)", flush=True)
                await asyncio.sleep(0)
    return out
