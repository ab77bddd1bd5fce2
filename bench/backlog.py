"""Memory while a worker catches up on a backlog of 1,000,000 events: it must stay bounded.

The backlog is produced first, then one worker process (the production entry point, Qdrant
local mode on disk) starts and catches up; its RSS is sampled from /proc twice a second next
to how much of the backlog is confirmed. Bounded means the RSS at the end of the backlog is
that of the first tenth, not a function of what is still waiting in Kafka. The events are
identical patches on 100 points, so the run is about the stream, not the storage.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench.common import Confirmations, Context, WorkerProcess, create_kv, produce


async def measure(ctx: Context) -> dict[str, Any]:
    n = 1_000_000 if ctx.size == "full" else 3000
    folder = ctx.scratch("backlog")
    disk = ctx.local("disk")
    client = await disk.fresh_client(folder / "qdrant")
    await create_kv(client, 100)
    await client.close()
    settings = ctx.settings("backlog")
    from connector.kafka.admin import ensure_topics

    await ensure_topics(settings, partitions=4)
    value = [json.dumps({"schema_version": 1, "collection": "kv", "op": "set_payload", "ids": [i],
                         "payload": {"archived": True}}).encode() for i in range(100)]
    started = time.monotonic()
    await produce(ctx.bootstrap, settings.patch_topic, ((f"kv/{i % 100}".encode(), value[i % 100]) for i in range(n)))
    produce_seconds = time.monotonic() - started
    samples: list[dict[str, float]] = []
    async with Confirmations(ctx.bootstrap, settings.verification_topic) as seen:
        worker = WorkerProcess(settings, disk.worker_env(folder / "qdrant"), folder / "worker.log")
        start = time.monotonic()
        try:
            while seen.counts.get(settings.patch_topic, 0) < n:
                if worker.process.poll() is not None:
                    raise RuntimeError(f"worker exited: {(folder / 'worker.log').read_text()[-2000:]}")
                samples.append({"seconds": round(time.monotonic() - start, 1),
                                "rss_mib": round(worker.rss_bytes() / 2**20, 1),
                                "confirmed": seen.counts.get(settings.patch_topic, 0)})
                await asyncio.sleep(0.5)
            seconds = time.monotonic() - start
        finally:
            worker.stop()

    def rss_at(fraction: float) -> float:
        return next((s["rss_mib"] for s in samples if s["confirmed"] >= fraction * n), samples[-1]["rss_mib"])

    result = {"events": n, "produce_seconds": round(produce_seconds, 1), "catch_up_seconds": round(seconds, 1),
              "events_per_second": round(n / seconds, 1), "peak_rss_mib": max(s["rss_mib"] for s in samples),
              "rss_mib_at": {f"{int(f * 100)}%": rss_at(f) for f in (0.1, 0.25, 0.5, 0.75, 0.99)},
              "samples": samples[:: max(1, len(samples) // 400)]}
    print(f"backlog {n}: {result['events_per_second']:.0f}/s, peak {result['peak_rss_mib']} MiB, "
          f"at {result['rss_mib_at']}", flush=True)
    return result
