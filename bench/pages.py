"""Scroll page size for export: points per second and peak memory, page sizes 10 ... 10,000.

Each export runs as its own ``qdrant-change-connector export`` process so that its peak RSS
(``wait4``) is its own. Local mode loads the whole collection into memory when it opens it,
so the same process opening the collection without exporting is measured as the baseline;
the page size's cost is the peak above it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from bench.common import ROOT, Context, summary

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
    cells = []
    for size in sizes:
        # the process start and the collection load are the baseline's time, not the export's
        rate = summary([points / max(seconds - base_seconds, 1e-3) for seconds, _ in runs[size]])
        peak = summary([rss / 2**20 for _, rss in runs[size]])
        cells.append({"page_size": size, "points_per_second": rate, "peak_rss_mib": peak,
                      "above_baseline_mib": round(peak["median"] - baseline / 2**20, 1)})
        print(f"export page {size}: {rate['median']:.0f} points/s, peak {peak['median']:.0f} MiB", flush=True)
    return {"points": points, "payload_bytes": payload_bytes, "vector": "384 dense", "qdrant": "disk",
            "baseline_open_only_mib": round(baseline / 2**20, 1), "baseline_open_only_seconds": round(base_seconds, 2),
            "cells": cells}
