"""Windows in flight: the connector applying independent windows at the same time
(``QCC_WINDOWS_IN_FLIGHT=2``, the default) beside one window at a time (``1``), side by side.

    .venv/bin/python -m bench.in_flight [--repeats 3] [--qdrant rest --qdrant grpc]

Payload patches as in the patch section (bench/patches.py: distinct and mixed, 10,000 events on
2,000 points, the connector in this process on a real Qdrant server), each setting on a fresh
collection, alternating within each repeat, with the ceiling (the same operations sent
straight to Qdrant in window-sized batches) beside them. Reported: events per second, median
(min, max), the share of one-at-a-time per repeat, and each setting against the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bench.common import Context, QdrantTarget, TargetName
from bench.patches import FULL_EVENTS, run_ceiling, run_connector, workload
from connector.dev.broker import KafkaBroker
from connector.dev.qdrant_server import QdrantServer
from connector.embedding.offline_model import assemble_all

POINTS = 2000
KINDS = ("distinct", "mixed")


async def measure(ctx: Context, repeats: int) -> dict[str, dict[str, list[float]]]:
    rates: dict[str, dict[str, list[float]]] = {}
    for kind in KINDS:
        for target in ctx.targets:
            events = workload(kind, FULL_EVENTS[target.name], POINTS)
            mine = rates.setdefault(f"{kind} {target.name}", {"1 in flight": [], "2 in flight": [], "ceiling": []})
            for repeat in range(repeats):
                order = [1, 2] if repeat % 2 == 0 else [2, 1]
                for in_flight in order:
                    rate = await run_connector(ctx, target, events, POINTS, windows_in_flight=in_flight)
                    mine[f"{in_flight} in flight"].append(rate)
                mine["ceiling"].append(await run_ceiling(ctx, target, events, POINTS))
                print(f"{kind} {target.name} repeat {repeat + 1}: "
                      + ", ".join(f"{name} {values[-1]:.0f}/s" for name, values in mine.items()), flush=True)
    return rates


def report(rates: dict[str, dict[str, list[float]]]) -> None:
    for workload_name, mine in rates.items():
        one, two, ceiling = mine["1 in flight"], mine["2 in flight"], mine["ceiling"]
        ratios = [b / a for a, b in zip(one, two, strict=True)]
        print(f"\n{workload_name}:")
        for name, values in mine.items():
            vs = [v / c for v, c in zip(values, ceiling, strict=True)]
            print(f"  {name:12} {statistics.median(values):7.0f}/s ({min(values):.0f}-{max(values):.0f}), "
                  f"vs ceiling {statistics.median(vs):.2f} ({min(vs):.2f}-{max(vs):.2f})")
        print(f"  2 / 1 in flight: {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--qdrant", action="append", choices=["rest", "grpc"])
    args = parser.parse_args()
    names: list[TargetName] = args.qdrant or ["rest"]
    with KafkaBroker(heap="1g") as broker, QdrantServer() as server, tempfile.TemporaryDirectory() as tmp:
        targets = tuple(QdrantTarget(name, server) for name in names)
        ctx = Context(broker.bootstrap, assemble_all(), Path(tmp), "full", args.repeats, targets)
        report(asyncio.run(measure(ctx, args.repeats)))


if __name__ == "__main__":
    main()
