"""Scale-out: two worker processes in one consumer group against one, on the same 4 partitions.

Local mode lets one process open a storage folder, so each worker here writes its own copy of
the collection (seeded identically): each partition's events land in the folder of the worker
that owns it. That stands in for a Qdrant server both would share; what is measured is the
connector's side (consuming, parsing, planning, applying, verifying) spread over processes.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.common import Confirmations, Context, WorkerProcess, create_kv, make_client, produce, summary
from bench.patches import workload
from connector.kafka_admin import ensure_topics

PARTITIONS = 4


async def one_run(ctx: Context, workers: int, n: int, points: int) -> float:
    settings = ctx.settings(f"scale{workers}")
    await ensure_topics(settings, partitions=PARTITIONS)
    procs = []
    for w in range(workers):
        folder = ctx.scratch(f"scale-{w}")
        client = await make_client("disk", folder / "qdrant")
        await create_kv(client, points)
        await client.close()
        procs.append(WorkerProcess(settings, folder / "qdrant", folder / "worker.log"))
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
            start = time.time()
            done = await seen.wait(settings.patch_topic, await produce(ctx.bootstrap, settings.patch_topic, events))
            return n / (done - start)
    finally:
        for p in procs:
            p.stop()


async def measure(ctx: Context) -> dict[str, Any]:
    full = ctx.size == "full"
    n, points = (20_000, 2000) if full else (400, 100)
    runs: dict[str, list[float]] = {"one_worker": [], "two_workers": []}
    for _ in range(ctx.repeats):
        runs["one_worker"].append(await one_run(ctx, 1, n, points))
        runs["two_workers"].append(await one_run(ctx, 2, n, points))
    result: dict[str, Any] = {"events": n, "partitions": PARTITIONS, "qdrant": "disk, one folder per worker",
                              **{k: summary(v) for k, v in runs.items()}}
    result["two_vs_one"] = summary([b / a for a, b in zip(runs["one_worker"], runs["two_workers"])])
    print(f"scale: one {result['one_worker']['median']:.0f}/s, two {result['two_workers']['median']:.0f}/s", flush=True)
    return result
