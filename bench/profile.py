"""Where a window's time goes, per event: pyinstrument on the pipeline, in this process.

The window processor (the code between consuming and publishing) runs on prepared records
with Qdrant in memory and on disk; every sample's time is charged to the innermost stage on
its stack. Kafka consuming and publishing are not in this picture (they are in the end-to-end
numbers); embedding runs in the embedding thread and shows as the time the window awaits it.
"""

from __future__ import annotations

import json
from typing import Any

from pyinstrument import Profiler
from qdrant_client import models as qm

from bench.common import Context, TargetName, create_kv
from bench.patches import workload
from bench.reembed import texts
from connector.qdrant import RetryingClient
from connector.stream.embedder import Embedder
from connector.stream.window import Record, WindowProcessor

# (file suffix, function) -> stage; the innermost match on a stack wins
STAGES: dict[tuple[str, str], str] = {
    ("connector/domain/events.py", "_decode_json"): "JSON decode",
    ("connector/domain/events.py", "parse_change"): "event model (pydantic)",
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


async def profile_windows(ctx: Context, mode: TargetName, kind: str, windows: int, window: int) -> dict[str, Any]:
    client = await ctx.local(mode).fresh_client(ctx.scratch("qdrant"))
    settings = ctx.settings("profile", window_max_events=window)
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
        await create_kv(client, 2000)
        events = workload(kind, windows * window, 2000)
    embedder = Embedder(settings)
    embedder.warm_up()
    processor = WindowProcessor(
        settings, client, RetryingClient(client), embedder, "reembed" if kind == "reembed" else "patch"
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
    return {"events": len(records), "window": window, "qdrant": mode, "microseconds_per_event": per_event,
            "share": {name: round(seconds / total, 3) for name, seconds in stages.items()} if total else {},
            "events_per_second_in_process": round(len(records) / total, 1) if total else None}


async def measure(ctx: Context) -> dict[str, Any]:
    full = ctx.size == "full"
    windows, window = (30, 500) if full else (4, 100)
    out: dict[str, Any] = {}
    for mode in ("memory", "disk"):
        for kind in ("distinct", "mixed"):
            out[f"{kind}_{mode}"] = await profile_windows(ctx, mode, kind, windows, window)
            print(f"profile {kind} {mode}: {out[f'{kind}_{mode}']['microseconds_per_event']}", flush=True)
    out["reembed_memory"] = await profile_windows(ctx, "memory", "reembed", max(2, windows // 3), window)
    print(f"profile reembed: {out['reembed_memory']['microseconds_per_event']}", flush=True)
    return out
