"""Workers on a Qdrant cluster: events per second and worker CPU per 1,000 events with 1, 2 and 4
worker processes in one consumer group (4 partitions), writing one collection of 6 shards x 2
replicas on a three-node cluster of the real server, every guarantee on (read-back with
majority reads, a verification event per window).

    .venv/bin/python -m bench.cluster_scale [--events 8000] [--repeats 2] [--grpc]

Worker counts alternate within each repeat. On a machine with few cores the workers, the three
nodes and the broker share them: read the ratios with the machine's core count beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path

from bench.common import Context, QdrantTarget
from bench.scale import ScaleRun, one_run
from connector.dev.broker import KafkaBroker
from connector.dev.qdrant_cluster import QdrantCluster
from connector.embedding.offline_model import assemble_all

WORKERS = (1, 2, 4)
LAYOUT = {"shard_number": 6, "replication_factor": 2, "write_consistency_factor": 1}


async def measure(events: int, repeats: int, grpc: bool) -> dict[int, list[ScaleRun]]:
    runs: dict[int, list[ScaleRun]] = {w: [] for w in WORKERS}
    with (KafkaBroker() as broker, QdrantCluster(nodes=3) as cluster,
          tempfile.TemporaryDirectory(prefix="qcc-bench-") as tmp):
        target = QdrantTarget("grpc" if grpc else "rest", cluster.nodes[0])
        ctx = Context(broker.bootstrap, assemble_all(), Path(tmp), "full", repeats, (target,))
        for _ in range(repeats):
            for workers in WORKERS:
                run = await one_run(ctx, target, workers, events, 2000, partitions=4, layout=LAYOUT)
                print(f"  {workers} worker(s): {run.events_per_second:.0f} events/s, "
                      f"{run.worker_cpu_ms_per_1000:.0f} ms worker CPU per 1,000 events", flush=True)
                runs[workers].append(run)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--grpc", action="store_true")
    args = parser.parse_args()
    runs = asyncio.run(measure(args.events, args.repeats, args.grpc))
    one = statistics.median(r.events_per_second for r in runs[1])
    print(f"{args.events:,} distinct payload patches, 4 partitions, 3 nodes, 6 shards x 2 replicas, "
          f"{'gRPC' if args.grpc else 'REST'}, {args.repeats} alternating repeats, {os.cpu_count()} cores")
    for workers, values in runs.items():
        rates = [r.events_per_second for r in values]
        cpu = statistics.median(r.worker_cpu_ms_per_1000 for r in values)
        print(f"  {workers} worker(s): {statistics.median(rates):6.0f} events/s (min {min(rates):.0f}, "
              f"max {max(rates):.0f}), {statistics.median(rates) / one:.2f}x one worker, "
              f"{cpu:.0f} ms worker CPU per 1,000 events")


if __name__ == "__main__":
    main()
