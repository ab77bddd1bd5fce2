"""Run the benchmarks, write the results as JSON, and turn them into BENCHMARKS.md with plots.

    .venv/bin/python -m bench.run                 # everything, full size (about half an hour here)
    .venv/bin/python -m bench.run --size tiny     # every section at a toy size (the smoke test)
    .venv/bin/python -m bench.run --only patches --only windows

Every headline number is a ratio of two things measured in the same run, repeated; the report
gives the median and the spread. Nothing here is a test: nothing asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import backlog, pages, patches, profile, reembed, scale, seed_claim, windows
from bench.common import ROOT, Context, machine
from bench.report import write_report
from connector.devbroker import KafkaBroker
from connector.offline_model import assemble_all

Section = Callable[[Context], Awaitable[dict[str, Any]]]
SECTIONS: dict[str, Section] = {
    "patches": lambda ctx: patches.measure(ctx, ["memory", "disk"]),
    "reembed": reembed.measure,
    "seed_claim": seed_claim.measure,
    "windows": windows.measure,
    "pages": pages.measure,
    "backlog": backlog.measure,
    "scale": scale.measure,
    "profile": profile.measure,
}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    models = assemble_all(Path(args.models))
    results: dict[str, Any] = {"size": args.size, "repeats": args.repeats, "machine": machine(),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "sections": {}}
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = KafkaBroker(heap="1g")
        broker.start()
        bootstrap = broker.bootstrap
    try:
        with tempfile.TemporaryDirectory(prefix="qcc-bench-") as tmp:
            ctx = Context(bootstrap, models, Path(tmp), args.size, args.repeats)
            for name in args.only or list(SECTIONS):
                started = time.monotonic()
                print(f"== {name}", flush=True)
                results["sections"][name] = await SECTIONS[name](ctx)
                results["sections"][name]["seconds"] = round(time.monotonic() - started, 1)
    finally:
        if broker is not None:
            broker.cleanup()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--repeats", type=int, help="repeats of each side-by-side measurement (default 3, tiny 1)")
    parser.add_argument("--only", action="append", choices=sorted(SECTIONS), help="repeatable; default: all")
    parser.add_argument("--bootstrap", help="an existing broker; default: start one")
    parser.add_argument("--models", default=str(ROOT / ".cache" / "models"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS.md", help="the Markdown report to write")
    parser.add_argument("--report-only", action="store_true", help="measure nothing: render --out again")
    args = parser.parse_args()
    if args.report_only:
        write_report(json.loads(args.out.read_text()), args.report, args.out.parent / "plots")
        return
    if args.repeats is None:
        args.repeats = 3 if args.size == "full" else 1
    results = asyncio.run(run(args))
    if args.only and args.out.exists():  # a partial run updates the sections it ran
        previous = json.loads(args.out.read_text())
        previous["sections"].update(results["sections"])
        results = {**previous, "machine": results["machine"], "started": results["started"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, args.report, args.out.parent / "plots")
    print(f"wrote {args.out} and {args.report}")


if __name__ == "__main__":
    main()
