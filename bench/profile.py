"""Where a window's time goes, per event: pyinstrument on the pipeline, in this process.

The window processor (the code between consuming and publishing) runs on prepared records
with Qdrant in memory, on disk and on the run's server (REST and gRPC, through the client the
worker makes); every sample's time is charged to the innermost stage on its stack. Kafka
consuming and publishing are not in this picture (they are in the end-to-end numbers);
embedding runs in the embedding thread and shows as the time the window awaits it. Workloads:
distinct and mixed patches (bench/patches.py), 384-d upserts as in the peer section
(bench/peer.py), and inline-text re-embeds (in memory only: embedding dwarfs the rest).
"""

from __future__ import annotations

import json
from typing import Any

from pyinstrument import Profiler
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from bench import peer
from bench.common import Context, QdrantTarget, TargetName, create_kv
from bench.patches import workload
from bench.reembed import texts
from connector.embedding.embedder import Embedder
from connector.qdrant import make_client, make_retrying
from connector.settings import Settings
from connector.stream.window import Record, WindowProcessor

# (file suffix, function) -> stage; the innermost match on a stack wins
STAGES: dict[tuple[str, str], str] = {
    ("connector/domain/json_decode.py", "decode_event_json"): "JSON decode",
    ("connector/domain/changes.py", "parse_change"): "event model (pydantic)",
    ("connector/domain/validation.py", "check_event"): "validation",
    ("connector/stream/window/admission.py", "admit"): "validation",
    ("connector/domain/planner.py", "plan"): "planning",
    ("connector/domain/planner.py", "screen_existence"): "planning",
    ("connector/stream/window/embedding.py", "operations_for"): "planning",
    ("connector/stream/window/readback.py", "read_state"): "Qdrant retrieve (existence before, read-back after)",
    ("connector/qdrant/apply.py", "apply"): "Qdrant batch_update_points",
    ("connector/stream/window/readback.py", "verify_applied"): "verification: expected state + compare",
    ("connector/stream/window/embedding.py", "embed_texts"): "embedding",
    ("connector/stream/window/texts.py", "texts"): "embedding",
    ("connector/stream/window/report.py", "report_batch"): "verification event + dead letters",
    # grpc.aio runs each call as a task of its own, so its wait is on no stage's stack
    ("grpc/aio/_call.py", "_invoke"): "Qdrant over gRPC: waiting for an answer (any call)",
}


def breakdown(root: Any) -> dict[str, float]:
    """Seconds per stage: each frame's self time goes to the innermost stage above it."""
    totals: dict[str, float] = {}

    def walk(frame: Any, stage: str) -> None:
        for (suffix, function), name in STAGES.items():
            if frame.function == function and (frame.file_path or "").endswith(suffix):
                stage = name
                break
        self_time = frame.time - sum(child.time for child in frame.children)
        totals[stage] = totals.get(stage, 0.0) + max(self_time, 0.0)
        for child in frame.children:
            walk(child, stage)

    walk(root, "other (connector and asyncio)")
    return totals


SUPPORTED: tuple[TargetName, ...] = ("memory", "disk", "rest", "grpc")


async def connector_client(ctx: Context, target: QdrantTarget, settings: Settings) -> AsyncQdrantClient:
    """An empty Qdrant, and on a server the client the worker would make for it."""
    client = await target.fresh_client(ctx.scratch("qdrant"))
    if target.server is None:
        return client
    await client.close()
    return make_client(settings)


def upsert_events(n: int, points: int) -> list[dict[str, Any]]:
    """The peer section's upserts: one 384-d vector and a small payload each."""
    return [json.loads(peer.upsert_value(i % points, vector, peer.payload(i, n, points)))
            for i, vector in enumerate(peer.vectors(n))]


async def vector_workload(client: AsyncQdrantClient, kind: str, n: int) -> list[dict[str, Any]]:
    """``n`` events of ``kind`` (upserts, or a patch workload of bench/patches.py) that carry their
    vectors, on 2,000 points of the collection made for them here."""
    if kind == "upserts":
        await client.create_collection(peer.COLLECTION, vectors_config=qm.VectorParams(
            size=peer.DIMENSIONS, distance=qm.Distance.COSINE))
        return upsert_events(n, 2000)
    await create_kv(client, 2000)
    return workload(kind, n, 2000)


async def profile_windows(ctx: Context, target: QdrantTarget, kind: str, windows: int, window: int) -> dict[str, Any]:
    server = target.server
    settings = ctx.settings(
        "profile", window_max_events=window, qdrant_url=server.url if server else None,
        qdrant_prefer_grpc=target.name == "grpc", qdrant_grpc_port=server.grpc_port if server else 6334,
    )
    client = await connector_client(ctx, target, settings)
    if kind == "reembed":
        await client.create_collection(
            "docs", vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)}
        )
        await client.upsert(
            "docs", [qm.PointStruct(id=i, vector={"dense": [1.0] + [0.0] * 383}) for i in range(window)]
        )
        events = [{"schema_version": 1, "kind": "reembed", "collection": "docs", "vector_name": "dense",
                   "points": [{"id": i % window, "text": t}]} for i, t in enumerate(texts(windows * window))]
    else:
        events = await vector_workload(client, kind, windows * window)
    embedder = Embedder(settings)
    embedder.warm_up()
    processor = WindowProcessor(
        settings, client, make_retrying(settings, client, bounded=False), embedder,
        "reembed" if kind == "reembed" else "patch",
    )
    records = [Record(topic="t", partition=0, offset=i, value=json.dumps(e).encode()) for i, e in enumerate(events)]
    await processor.process(records[:window])  # warm: schema cache, model
    profiler = Profiler(interval=0.0005, async_mode="enabled")
    profiler.start()
    for i in range(0, len(records), window):
        await processor.process(records[i : i + window])
    profiler.stop()
    await client.close()
    embedder.close()
    root = profiler.last_session.root_frame()
    stages = breakdown(root) if root is not None else {}
    total = sum(stages.values())
    per_event = {
        name: round(seconds / len(records) * 1e6, 1) for name, seconds in sorted(stages.items(), key=lambda kv: -kv[1])
    }
    return {"events": len(records), "window": window, "qdrant": target.name, "microseconds_per_event": per_event,
            "share": {name: round(seconds / total, 3) for name, seconds in stages.items()} if total else {},
            "events_per_second_in_process": round(len(records) / total, 1) if total else None}


async def measure(ctx: Context) -> dict[str, Any]:
    full = ctx.size == "full"
    windows, window = (30, 500) if full else (4, 100)
    out: dict[str, Any] = {"targets": {}}
    for target in ctx.chosen(SUPPORTED):
        runs = out["targets"][target.name] = {}
        for kind in ("distinct", "mixed", "upserts"):
            runs[kind] = await profile_windows(ctx, target, kind, windows, window)
            print(f"profile {kind} {target.name}: {runs[kind]['microseconds_per_event']}", flush=True)
        if target.name == "memory":
            runs["reembed"] = await profile_windows(ctx, target, "reembed", max(2, windows // 3), window)
            print(f"profile reembed: {runs['reembed']['microseconds_per_event']}", flush=True)
    return out
