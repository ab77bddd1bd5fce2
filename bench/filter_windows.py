"""What verifying filter-addressed events costs: windows per second of payload patches on a
Qdrant server, with no filter ops, with one event in ten by filter (verified: each filter
scrolled before its op, its points read back), and the same with verification off.

    .venv/bin/python -m bench.filter_windows [--windows 10] [--repeats 3] [--grpc]

Runs the window processor in process (no broker): what differs between the modes is Qdrant
work. Modes alternate within each repeat, so the machine's noise falls on all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from qdrant_client import models as qm

from bench.common import rate_lines
from connector.dev.qdrant_server import QdrantServer
from connector.embedding.embedder import Embedder
from connector.embedding.offline_model import assemble_all
from connector.qdrant import make_client, make_retrying
from connector.settings import Settings
from connector.stream.window import Record, WindowProcessor

POINTS = 5_000
TAGS = 50  # a filter on one tag matches ~100 points
WINDOW = 500


def window_events(rng: random.Random, filters: bool) -> list[dict[str, Any]]:
    events = []
    for i in range(WINDOW):
        if filters and i % 10 == 0:
            tag = rng.randrange(TAGS)
            events.append({"schema_version": 1, "collection": "docs", "op": "set_payload",
                           "filter": {"must": [{"key": "tag", "match": {"value": tag}}]},
                           "payload": {"seen": rng.randrange(1000)}})
        else:
            events.append({"schema_version": 1, "collection": "docs", "op": "set_payload",
                           "ids": [rng.randrange(POINTS)], "payload": {"v": rng.random()}})
    return events


async def run_mode(settings: Settings, windows: int, filters: bool, seed: int) -> float:
    client = make_client(settings)
    processor = WindowProcessor(settings, client, make_retrying(settings, client), Embedder(settings), "patch")
    rng = random.Random(seed)
    batches = [[Record("patches", 0, w * WINDOW + i, json.dumps(e).encode(), None)
                for i, e in enumerate(window_events(rng, filters))] for w in range(windows)]
    started = time.perf_counter()
    for records in batches:
        result = await processor.process(records)
        statuses = {v.verification.status for v in result.verifications}
        if statuses - {"verified", "skipped"}:
            bad = [v.verification for v in result.verifications if v.verification.status == "mismatch"]
            raise RuntimeError(f"unexpected verification: {bad[0].model_dump_json()[:3000]}")
    took = time.perf_counter() - started
    await client.close()
    return windows / took


async def seed_collection(settings: Settings) -> None:
    client = make_client(settings)
    if await client.collection_exists("docs"):
        await client.delete_collection("docs")
    await client.create_collection("docs", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT))
    await client.create_payload_index("docs", "tag", qm.PayloadSchemaType.INTEGER)
    for start in range(0, POINTS, 1000):
        await client.upsert("docs", [qm.PointStruct(id=i, vector=[1.0, 0.0, 0.5, i / POINTS], payload={"tag": i % TAGS})
                                     for i in range(start, start + 1000)])
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grpc", action="store_true")
    args = parser.parse_args()
    modes = {"id-addressed only": (False, True), "1 in 10 by filter, verified": (True, True),
             "1 in 10 by filter, verification off": (True, False)}
    rates: dict[str, list[float]] = {name: [] for name in modes}
    with tempfile.TemporaryDirectory() as tmp, QdrantServer(storage=Path(tmp) / "qdrant").start() as server:
        base: dict[str, Any] = {"qdrant_url": server.url, "qdrant_prefer_grpc": args.grpc,
                                "qdrant_grpc_port": server.grpc_port, "model_paths": assemble_all()}
        for repeat in range(args.repeats):
            for name, (filters, verify) in modes.items():
                settings = Settings(**base, verify_after_apply=verify)
                asyncio.run(seed_collection(settings))
                rates[name].append(asyncio.run(run_mode(settings, args.windows, filters, seed=repeat)))
    print(f"windows of {WINDOW} payload patches on {POINTS:,} points, {'gRPC' if args.grpc else 'REST'}, "
          f"{args.repeats} alternating repeats")
    print("\n".join(rate_lines(rates, "id-addressed only", "windows/s")))

if __name__ == "__main__":
    main()
