"""Scale-out: two worker processes in one consumer group against one, on the same 4 partitions.

On a server (REST or gRPC) both workers write the one collection, as in production. Local mode
lets one process open a storage folder, so on disk each worker writes its own copy of the
collection (seeded identically) and each partition's events land in the folder of the worker
that owns it: what that measures is the connector's side (consuming, parsing, planning,
applying, verifying) spread over processes. Each repeat runs one worker then two on every
target in turn.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from bench.common import Confirmations, Context, QdrantTarget, TargetName, WorkerProcess, create_kv, produce, summary
from bench.patches import workload
from bench.peer import cpu_seconds
from connector.kafka.admin import ensure_topics

PARTITIONS = 4
SUPPORTED: tuple[TargetName, ...] = ("disk", "rest", "grpc")


@dataclass
class ScaleRun:
    events_per_second: float
    worker_cpu_ms_per_1000: float  # CPU of all workers while the events were applied, per 1,000 events


async def one_run(ctx: Context, target: QdrantTarget, workers: int, n: int, points: int, *,
                  partitions: int = PARTITIONS, layout: dict[str, Any] | None = None) -> ScaleRun:
    """``workers`` worker processes in one group on ``partitions`` partitions; ``layout`` shapes
    the collection on a server (shards, replicas)."""
    settings = ctx.settings(f"scale{workers}")
    await ensure_topics(settings, partitions=partitions)
    procs = []
    for w in range(workers):
        folder = ctx.scratch(f"scale-{w}")
        if w == 0 or not target.is_server:  # a server's collection is shared; a local one is per worker
            client = await target.fresh_client(folder / "qdrant")
            await create_kv(client, points, **(layout or {}))
            await client.close()
        procs.append(WorkerProcess(settings, target.worker_env(folder / "qdrant"), folder / "worker.log"))
    events = [(f"kv/{e['ids'][0]}".encode(), json.dumps(e).encode()) for e in workload("distinct", n, points)]
    try:
        async with Confirmations(ctx.bootstrap, settings.verification_topic) as seen:
            # warm up until every worker has applied a batch: all joined, models loaded
            pids = {str(p.process.pid) for p in procs}
            warm_up = [(f"kv/{i}".encode(), json.dumps(e).encode()) for i, e in enumerate(workload("distinct", 64, 64))]
            deadline = time.monotonic() + 120
            while {r["worker"].rsplit(":", 1)[1] for r in seen.records} < pids:
                if time.monotonic() > deadline:
                    raise TimeoutError("not every worker took part in the warm-up")
                await seen.wait(settings.patch_topic, await produce(ctx.bootstrap, settings.patch_topic, warm_up))
            start, cpu = time.time(), sum(cpu_seconds(p.process.pid) for p in procs)
            done = await seen.wait(settings.patch_topic, await produce(ctx.bootstrap, settings.patch_topic, events))
            cpu = sum(cpu_seconds(p.process.pid) for p in procs) - cpu
            return ScaleRun(n / (done - start), cpu * 1e6 / n)
    finally:
        for p in procs:
            p.stop()


async def measure(ctx: Context) -> dict[str, Any]:
    targets = ctx.chosen(SUPPORTED)
    full = ctx.size == "full"
    n, points = (20_000, 2000) if full else (400, 100)
    runs: dict[str, dict[str, list[float]]] = {t.name: {"one_worker": [], "two_workers": []} for t in targets}
    for _ in range(ctx.repeats):
        for target in targets:
            runs[target.name]["one_worker"].append((await one_run(ctx, target, 1, n, points)).events_per_second)
            runs[target.name]["two_workers"].append((await one_run(ctx, target, 2, n, points)).events_per_second)
    out: dict[str, Any] = {"events": n, "partitions": PARTITIONS, "targets": {}}
    for target in targets:
        r = runs[target.name]
        result: dict[str, Any] = {"qdrant": target.describe() + ("" if target.is_server else ", one folder per worker"),
                                  **{k: summary(v) for k, v in r.items()}}
        result["two_vs_one"] = summary([b / a for a, b in zip(r["one_worker"], r["two_workers"], strict=True)])
        out["targets"][target.name] = result
        print(f"scale {target.name}: one {result['one_worker']['median']:.0f}/s, "
              f"two {result['two_workers']['median']:.0f}/s", flush=True)
    return out
