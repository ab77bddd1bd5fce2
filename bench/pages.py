"""Scroll page size for export: points per second and peak memory, page sizes 10 ... 10,000.

Each export runs as its own ``qdrant-change-connector export`` process so that its time and
peak RSS (``wait4``) are its own. Local mode loads the whole collection into memory when it
opens it, which hides the export's own memory under the RSS; so the export also runs once per
page size in this process under ``tracemalloc``, started after the collection is open: its
peak is what the export itself holds at once (pages, records, encoded lines).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient, QdrantClient
from qdrant_client import models as qm

from bench.common import ROOT, Context, summary
from connector.bulk.export import export_collection
from connector.qdrant import RetryingClient

OPEN_ONLY = "from qdrant_client import QdrantClient; import sys; print(QdrantClient(path=sys.argv[1]).count('pages'))"


def seed(path: Path, points: int, payload_bytes: int) -> None:
    client = QdrantClient(path=str(path))
    client.create_collection("pages", vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)})
    for start in range(0, points, 1000):
        client.upsert("pages", [qm.PointStruct(id=i, vector={"dense": [((i * 31 + j) % 97) / 97 for j in range(384)]},
                                               payload={"body": "x" * payload_bytes, "n": i})
                                for i in range(start, min(points, start + 1000))])
    client.close()


def timed_process(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args} failed: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
    return seconds, usage.ru_maxrss * 1024


async def export_heap_peak(path: Path, page_size: int, dump: Path) -> int:
    """Peak bytes the export allocates at once, the opened collection not counted."""
    client = AsyncQdrantClient(path=str(path))
    try:
        await client.count("pages")  # opened and loaded before tracing starts
        tracemalloc.start()
        await export_collection(RetryingClient(client), "pages", dump, page_size=page_size, show_progress=False)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        await client.close()
        await asyncio.sleep(0)


async def measure(ctx: Context) -> dict[str, Any]:
    full = ctx.size == "full"
    points, payload_bytes = (20_000, 1000) if full else (300, 200)
    sizes = [10, 100, 1000, 10_000] if full else [10, 100]
    folder = ctx.scratch("pages")
    seed(folder / "qdrant", points, payload_bytes)
    env = {**os.environ, "QCC_QDRANT_PATH": str(folder / "qdrant")}
    base_seconds, baseline = timed_process([sys.executable, "-c", OPEN_ONLY, str(folder / "qdrant")], env)
    runs: dict[int, list[tuple[float, int]]] = {size: [] for size in sizes}
    for repeat in range(ctx.repeats):
        for size in sizes:
            dump = folder / f"dump-{size}-{repeat}.jsonl"
            runs[size].append(timed_process([sys.executable, "-m", "connector.cli", "export", "pages", str(dump),
                                             "--page-size", str(size)], env))
            dump.unlink()
            for extra in folder.glob(f"dump-{size}-{repeat}.jsonl*"):
                extra.unlink()
    heap = {size: await export_heap_peak(folder / "qdrant", size, folder / f"traced-{size}.jsonl") for size in sizes}
    cells = []
    for size in sizes:
        # the process start and the collection load are the baseline's time, not the export's
        rate = summary([points / max(seconds - base_seconds, 1e-3) for seconds, _ in runs[size]])
        peak = summary([rss / 2**20 for _, rss in runs[size]])
        cells.append({"page_size": size, "points_per_second": rate, "peak_rss_mib": peak,
                      "above_baseline_mib": round(peak["median"] - baseline / 2**20, 1),
                      "export_heap_peak_mib": round(heap[size] / 2**20, 2)})
        print(f"export page {size}: {rate['median']:.0f} points/s, peak {peak['median']:.0f} MiB, "
              f"export's own heap peak {heap[size] / 2**20:.1f} MiB", flush=True)
    return {"points": points, "payload_bytes": payload_bytes, "vector": "384 dense", "qdrant": "disk",
            "baseline_open_only_mib": round(baseline / 2**20, 1), "baseline_open_only_seconds": round(base_seconds, 2),
            "cells": cells}
