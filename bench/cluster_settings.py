"""What write ordering and read consistency cost on a replicated collection: windows of payload
patches per second on a three-node Qdrant cluster (6 shards x 2 replicas, write consistency
factor 1), with each setting pair, and the share of the default's rate.

    .venv/bin/python -m bench.cluster_settings [--windows 6] [--repeats 3] [--grpc]

Runs the window processor in process (no broker), so what differs between the modes is the
Qdrant work; the modes alternate within each repeat, so the machine's noise falls on all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

from qdrant_client import models as qm

from bench.common import rate_lines
from connector.dev.qdrant_cluster import QdrantCluster
from connector.embedding.embedder import Embedder
from connector.embedding.offline_model import assemble_all
from connector.qdrant import make_client, make_retrying
from connector.settings import Settings
from connector.stream.window import Record, WindowProcessor

POINTS = 5_000
WINDOW = 500
MODES: dict[str, tuple[str, str | int]] = {  # name: (write ordering, read consistency)
    "weak, 1 (default)": ("weak", 1),
    "weak, majority": ("weak", "majority"),
    "weak, all": ("weak", "all"),
    "medium, majority": ("medium", "majority"),
    "strong, majority": ("strong", "majority"),
}


async def seed_collection(settings: Settings) -> None:
    client = make_client(settings)
    if await client.collection_exists("docs"):
        await client.delete_collection("docs")
    await client.create_collection("docs", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT),
                                   shard_number=6, replication_factor=2, write_consistency_factor=1)
    for start in range(0, POINTS, 1000):
        await client.upsert("docs", [qm.PointStruct(id=i, vector=[1.0, 0.0, 0.5, i / POINTS], payload={"v": 0})
                                     for i in range(start, start + 1000)])
    await client.close()


async def windows_per_second(settings: Settings, windows: int, seed: int) -> float:
    client = make_client(settings)
    processor = WindowProcessor(settings, client, make_retrying(settings, client), Embedder(settings), "patch")
    rng = random.Random(seed)
    batches = [[Record("patches", 0, w * WINDOW + i, json.dumps(
        {"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [rng.randrange(POINTS)],
         "payload": {"v": rng.random()}}).encode(), None) for i in range(WINDOW)] for w in range(windows)]
    started = time.perf_counter()
    for records in batches:
        result = await processor.process(records)
        if any(v.verification.status != "verified" for v in result.verifications):
            raise RuntimeError(f"not verified: {result.verifications[0].verification.model_dump_json()[:2000]}")
    took = time.perf_counter() - started
    await client.close()
    return windows / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grpc", action="store_true")
    args = parser.parse_args()
    rates: dict[str, list[float]] = {name: [] for name in MODES}
    with QdrantCluster(nodes=3) as cluster:
        base: dict[str, Any] = {"qdrant_url": cluster.url, "qdrant_prefer_grpc": args.grpc,
                                "qdrant_grpc_port": cluster.grpc_port, "model_paths": assemble_all()}
        for repeat in range(args.repeats):
            for name, (ordering, consistency) in MODES.items():
                settings = Settings(**base, qdrant_write_ordering=ordering, qdrant_read_consistency=consistency)
                asyncio.run(seed_collection(settings))
                rates[name].append(asyncio.run(windows_per_second(settings, args.windows, seed=repeat)))
    print(f"windows of {WINDOW} payload patches on {POINTS:,} points, 3 nodes, 6 shards x 2 replicas, "
          f"{'gRPC' if args.grpc else 'REST'}, {args.repeats} alternating repeats")
    print("\n".join(rate_lines(rates, "weak, 1 (default)", "windows/s", lambda m: f"{m * WINDOW:7.0f} events/s")))

if __name__ == "__main__":
    main()
