"""One worker setting at two or more values, side by side, on the peer section's workload.

    .venv/bin/python -m bench.worker_setting event_loop asyncio uvloop [--repeats 3] [--qdrant rest]

The worker process of the peer section (bench/peer.py: 20,000 upserts of 384-d vectors on 2,000
points, every guarantee on, a freshly created collection of a real Qdrant server each run), once
per value in each repeat, the order rotating from one repeat to the next. Reported per value:
events per second and the worker's CPU per 1,000 events, median (min-max), and each against the
first value, per repeat. For settings whose worth is the worker's own CPU (the event loop,
windows in flight); the other sections compare the connector with other consumers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bench import peer
from bench.common import Context, QdrantTarget, TargetName
from connector.dev.broker import KafkaBroker
from connector.dev.qdrant_server import QdrantServer
from connector.embedding.offline_model import assemble_all
from connector.settings import Settings

Runs = dict[str, dict[str, list[float]]]  # value -> {"events/s": [...], "cpu": [...]}


async def measure(ctx: Context, target: QdrantTarget, setting: str, values: list[str], repeats: int) -> Runs:
    events, points = peer.SIZES["full"]
    backlog = await peer.make_backlog(ctx, events, points)
    runs: Runs = {value: {"events/s": [], "cpu": []} for value in values}
    for repeat in range(repeats):
        shift = repeat % len(values)
        for value in values[shift:] + values[:shift]:
            timing = await peer.run_connector(ctx, target, backlog, **{setting: value})
            runs[value]["events/s"].append(timing.events_per_second(events))
            runs[value]["cpu"].append(timing.cpu_ms_per_1000(events)[0])
            print(f"repeat {repeat + 1} {setting}={value}: {runs[value]['events/s'][-1]:.0f} events/s, "
                  f"{runs[value]['cpu'][-1]:.0f} ms CPU per 1,000", flush=True)
    return runs


def _spread(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def report(setting: str, runs: Runs) -> None:
    first = next(iter(runs.values()))
    print(f"\n{setting}: events/s, worker CPU ms per 1,000 events; against {next(iter(runs))}, per repeat")
    for value, measured in runs.items():
        faster = [b / a for a, b in zip(first["events/s"], measured["events/s"], strict=True)]
        cheaper = [b / a for a, b in zip(first["cpu"], measured["cpu"], strict=True)]
        print(f"  {value:10} {_spread(measured['events/s'])} /s, CPU {_spread(measured['cpu'])} ms; "
              f"events/s {_spread(faster, 2)}x, CPU {_spread(cheaper, 2)}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", help="a worker setting's name, e.g. event_loop")
    parser.add_argument("values", nargs="+", help="its values; the first is the one the others are measured against")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--qdrant", choices=["rest", "grpc"], default="rest")
    args = parser.parse_args()
    if args.setting not in Settings.model_fields:
        parser.error(f"no worker setting {args.setting!r}")
    name: TargetName = args.qdrant
    with KafkaBroker(heap="1g") as broker, QdrantServer() as server, tempfile.TemporaryDirectory() as tmp:
        target = QdrantTarget(name, server)
        ctx = Context(broker.bootstrap, assemble_all(), Path(tmp), "full", args.repeats, (target,))
        report(args.setting, asyncio.run(measure(ctx, target, args.setting, args.values, args.repeats)))


if __name__ == "__main__":
    main()
