"""The REST and gRPC fast paths (requests and reads without qdrant-client's models) beside the models, side by side.

    .venv/bin/python -m bench.rest_wire [--windows 20] [--repeats 3] [--protocol rest|grpc]

The window processor of the worker, in this process, on a real Qdrant server over REST (no
Kafka: the peer section's end-to-end numbers carry that), with every guarantee on (existence
read where the plan needs it, ``wait=true``, read-back). The same windows go once through the
models wire (batch requests built as qdrant-client's models and encoded by the client, reads
decoded into models), and once the worker's way over REST: the REST wire, requests encoded
straight from the ops with orjson, reads taken from the answer's bytes
(connector/qdrant/wires/rest.py); the two alternate within each repeat, each on a fresh
collection. ``--protocol grpc`` does the same over gRPC: the models converted to protobuf by the
client and read back through its conversion to models, against the gRPC wire, protobuf built
straight from the ops and read as it comes (connector/qdrant/wires/grpc.py).
Reported: events per second of processing, and the CPU of this process per event (the server's
CPU is not in it), median (min, max) over the repeats, and fast / models per repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.profile import vector_workload
from connector.dev.qdrant_server import QdrantServer
from connector.embedding.embedder import Embedder
from connector.qdrant.client import make_client, make_retrying
from connector.qdrant.wires import ModelsWire
from connector.settings import Settings
from connector.stream.window import Record, WindowProcessor

WINDOW = 500
KINDS = ("upserts", "distinct", "mixed")


async def one_run(server: QdrantServer, folder: Path, kind: str, windows: int, fast: bool,
                  protocol: str = "rest") -> tuple[float, float]:
    """Events per second and CPU µs per event of processing ``windows`` windows of ``kind``."""
    settings = Settings(qdrant_url=server.url, data_dir=folder, window_max_events=WINDOW, http_port=0,
                        qdrant_prefer_grpc=protocol == "grpc", qdrant_grpc_port=server.grpc_port)
    client = make_client(settings)
    for existing in (await client.get_collections()).collections:
        await client.delete_collection(existing.name)
    events = await vector_workload(client, kind, windows * WINDOW)
    embedder = Embedder(settings)  # never called: these windows carry their vectors
    # the worker's client, retry policy and wire; not ``fast``: sent and read through qdrant-client's models
    qdrant = make_retrying(settings, client)
    if not fast:
        qdrant.wire = ModelsWire(client)
    processor = WindowProcessor(settings, client, qdrant, embedder, "patch")
    records = [Record(topic="t", partition=0, offset=i, value=json.dumps(e).encode()) for i, e in enumerate(events)]
    await processor.process(records[:WINDOW])  # warm: schema cache, connections
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(WINDOW, len(records), WINDOW):
        result = await processor.process(records[i : i + WINDOW])
        assert all(v.verification.status == "verified" for v in result.verifications), kind
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.close()
    embedder.close()
    n = len(records) - WINDOW
    return n / wall, cpu / n * 1e6


async def measure(windows: int, repeats: int, protocol: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
    out: dict[str, dict[str, list[tuple[float, float]]]] = {k: {"models": [], "fast": []} for k in KINDS}
    with QdrantServer() as server, tempfile.TemporaryDirectory(prefix="qcc-rest-wire-") as tmp:
        for repeat in range(repeats):
            for kind in KINDS:
                order = (False, True) if repeat % 2 == 0 else (True, False)
                for fast in order:
                    run = await one_run(server, Path(tmp), kind, windows, fast, protocol)
                    out[kind]["fast" if fast else "models"].append(run)
                    print(f"  {kind} {'fast' if fast else 'models'}: {run[0]:.0f} events/s, "
                          f"{run[1]:.0f} µs CPU per event", flush=True)
    return out


def spread(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    args = parser.parse_args()
    runs = asyncio.run(measure(args.windows, args.repeats, args.protocol))
    print(f"{args.windows} windows of {WINDOW} a run, {args.repeats} repeats, "
          f"{'gRPC' if args.protocol == 'grpc' else 'REST'}; median (min–max)")
    print("| workload | events/s: models | fast | fast / models | CPU µs per event: models | fast | fast / models |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, sides in runs.items():
        models, fast = sides["models"], sides["fast"]
        rate = [f[0] / m[0] for m, f in zip(models, fast, strict=True)]
        cpu = [f[1] / m[1] for m, f in zip(models, fast, strict=True)]
        print(f"| {kind} | {spread([m[0] for m in models])} | {spread([f[0] for f in fast])} | {spread(rate, 2)}× "
              f"| {spread([m[1] for m in models])} | {spread([f[1] for f in fast])} | {spread(cpu, 2)}× |")


if __name__ == "__main__":
    main()
