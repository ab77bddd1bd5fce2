"""Re-embed throughput through the connector against raw fastembed on the same texts.

Raw fastembed is the ceiling: the same model embedding the same texts in window-sized calls in
this process, nothing else. The connector consumes re-embed events from the broker, embeds,
updates the vectors and verifies them. Within each repeat, each target's connector run is
followed by a raw run, so each ratio pairs two measurements taken next to each other.
"""

from __future__ import annotations

import json
import time
from typing import Any

from qdrant_client import models as qm

from bench.common import Confirmations, Context, InProcessConnector, QdrantTarget, TargetName, produce, summary
from connector.embedding.embedder import Embedder
from connector.settings import Settings

WINDOW = 500
SUPPORTED: tuple[TargetName, ...] = ("memory", "rest", "grpc")
WORDS = [
    "kafka",
    "qdrant",
    "vector",
    "window",
    "batch",
    "offset",
    "replay",
    "commit",
    "embed",
    "model",
    "payload",
    "point",
    "shard",
    "search",
    "index",
]


def texts(n: int) -> list[str]:
    return [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(8 + i % 9)) + f" number {i}" for i in range(n)]


async def run_connector(ctx: Context, target: QdrantTarget, items: list[str], points: int) -> float:
    client = await target.fresh_client(ctx.scratch("qdrant"))
    await client.create_collection(
        "docs", vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)}
    )
    await client.upsert("docs", [qm.PointStruct(id=i, vector={"dense": [1.0] + [0.0] * 383}) for i in range(points)])
    settings = ctx.settings("reembed", window_max_events=WINDOW)
    events = [{"schema_version": 1, "kind": "reembed", "collection": "docs", "vector_name": "dense",
               "points": [{"id": i % points, "text": text}]} for i, text in enumerate(items)]
    records = [(f"docs/{i % points}".encode(), json.dumps(e).encode()) for i, e in enumerate(events)]
    try:
        async with (
            InProcessConnector(settings, client),
            Confirmations(ctx.bootstrap, settings.verification_topic) as seen,
        ):
            await seen.wait(settings.reembed_topic, await produce(ctx.bootstrap, settings.reembed_topic, records[:1]))
            start = time.time()
            done = await seen.wait(
                settings.reembed_topic, await produce(ctx.bootstrap, settings.reembed_topic, records)
            )
            return len(events) / (done - start)
    finally:
        await client.close()


def run_raw(embedder: Embedder, model: str, items: list[str]) -> float:
    start = time.perf_counter()
    for i in range(0, len(items), WINDOW):
        embedder.embed_sync(model, "dense", items[i : i + WINDOW])
    return len(items) / (time.perf_counter() - start)


async def measure(ctx: Context) -> dict[str, Any]:
    targets = ctx.chosen(SUPPORTED)
    n = 3000 if ctx.size == "full" else 60
    points = 1000 if ctx.size == "full" else 30
    items = texts(n)
    settings = Settings(model_paths=ctx.model_paths)
    embedder = Embedder(settings)
    embedder.embed_sync(settings.dense_model, "dense", items[:16])  # load the model before timing
    runs: dict[str, dict[str, list[float]]] = {t.name: {"connector": [], "raw_fastembed": []} for t in targets}
    for _ in range(ctx.repeats):
        for target in targets:
            runs[target.name]["connector"].append(await run_connector(ctx, target, items, points))
            runs[target.name]["raw_fastembed"].append(run_raw(embedder, settings.dense_model, items))
    embedder.close()
    out: dict[str, Any] = {"events": n, "model": settings.dense_model, "window_max_events": WINDOW, "targets": {}}
    for target in targets:
        r = runs[target.name]
        result: dict[str, Any] = {"qdrant": target.describe(), **{k: summary(v) for k, v in r.items()}}
        result["connector_vs_raw"] = summary([c / w for c, w in zip(r["connector"], r["raw_fastembed"], strict=True)])
        out["targets"][target.name] = result
        print(f"reembed {target.name}: connector {result['connector']['median']:.0f}/s, "
              f"raw {result['raw_fastembed']['median']:.0f}/s", flush=True)
    return out
