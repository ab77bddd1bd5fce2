"""Run the benchmarks, write the results as JSON, and turn them into BENCHMARKS.md with plots.

    .venv/bin/python -m bench.run                 # everything, full size (about an hour here)
    .venv/bin/python -m bench.run --size tiny     # every section at a toy size (the smoke test)
    .venv/bin/python -m bench.run --only patches --only windows
    .venv/bin/python -m bench.run --qdrant server # only the measurements on a Qdrant server
    .venv/bin/python -m bench.run --only peer --qdrant server  # upserts beside the official Qdrant sink

``--qdrant`` chooses the Qdrant targets: ``memory`` and ``disk`` (embedded local mode), ``rest``
and ``grpc`` (a real Qdrant server started for the run by connector/dev/qdrant_server.py on free
loopback ports with temporary storage, and killed at the end); ``local`` and ``server`` name
both of a kind. Default: all four, or the local two with the reason when no server can start.
Sections that measure on none of the chosen targets are skipped. A partial run (``--only`` or
``--qdrant``) keeps the other sections and targets of the results file it updates.

``peer`` (bench/peer.py) runs only when named with ``--only``: it needs Java, the official
sink from ``../shared/peers/qdrant-kafka/`` and, once, Maven to fetch its dependencies; without
them it says why and keeps what the results file holds.

Every headline number is a ratio of two things measured in the same run, repeated; the report
gives the median and the spread. Nothing here is a test: nothing asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from bench import backlog, documents, pages, patches, peer, profile, reembed, scale, seed_claim, windows
from bench.common import LOCAL, ROOT, SERVER, TARGETS, Context, MachineUse, QdrantTarget, TargetName, machine
from bench.report import write_report
from connector.cli import new_event_loop
from connector.dev.broker import KafkaBroker
from connector.dev.qdrant_server import QdrantServer, server_start_script
from connector.embedding.offline_model import assemble_all
from connector.heap import settle_heap
from connector.settings import Settings

Section = Callable[[Context], Awaitable[dict[str, Any]]]
# each section and the targets it can measure on; the local-only ones pick their own local mode
SECTIONS: dict[str, tuple[Section, tuple[TargetName, ...]]] = {
    "patches": (patches.measure, patches.SUPPORTED),
    "reembed": (reembed.measure, reembed.SUPPORTED),
    "seed_claim": (seed_claim.measure, ("disk",)),
    "windows": (windows.measure, windows.SUPPORTED),
    "pages": (pages.measure, ("disk",)),
    "backlog": (backlog.measure, ("disk",)),
    "scale": (scale.measure, scale.SUPPORTED),
    "profile": (profile.measure, profile.SUPPORTED),
    "documents": (documents.measure, documents.SUPPORTED),
}
# run only when named with --only (an outside peer, Java, minutes of Kafka Connect start-ups)
OPT_IN: dict[str, tuple[Section, tuple[TargetName, ...]]] = {"peer": (peer.measure, peer.SUPPORTED)}
ALL = {**SECTIONS, **OPT_IN}
GROUPS: dict[str, tuple[TargetName, ...]] = {"local": LOCAL, "server": SERVER}


def chosen_targets(names: list[str] | None) -> list[TargetName]:
    """``--qdrant`` values in the canonical order; the default leaves the server out, with the
    reason, when there is none to start."""
    if names is None:
        script, reason = server_start_script()
        if script is None:
            print(f"measuring on local mode only: {reason}", flush=True)
            return list(LOCAL)
        return list(TARGETS)
    wanted = {t for name in names for t in GROUPS.get(name, (name,))}
    return [t for t in TARGETS if t in wanted]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    use = MachineUse()
    models = assemble_all(Path(args.models))
    results: dict[str, Any] = {"size": args.size, "repeats": args.repeats, "machine": machine(),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "sections": {}}
    names = chosen_targets(args.qdrant)
    sections = [s for s in (args.only or list(SECTIONS)) if set(ALL[s][1]) & set(names)]
    skipped = sorted(set(args.only or SECTIONS) - set(sections))
    if skipped:
        print(f"skipped (they measure on none of {', '.join(names)}): {', '.join(skipped)}", flush=True)
    broker = server = None
    bootstrap = args.bootstrap
    try:
        if bootstrap is None:
            broker = KafkaBroker(heap="1g")
            broker.start()
            bootstrap = broker.bootstrap
        if set(names) & set(SERVER):
            server = QdrantServer().start()  # free ports, temporary storage; one server for REST and gRPC
            print(f"Qdrant server on {server.url} (gRPC port {server.grpc_port})", flush=True)
        targets = tuple(QdrantTarget(n, server if n in SERVER else None) for n in names)
        with tempfile.TemporaryDirectory(prefix="qcc-bench-") as tmp:
            ctx = Context(bootstrap, models, Path(tmp), args.size, args.repeats, targets)
            for name in sections:
                print(
                    f"== {name} on {', '.join(n for n in names if n in ALL[name][1]) or 'its local mode'}",
                    flush=True,
                )
                started, section_use = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), MachineUse()
                section = await ALL[name][0](ctx)
                if "skipped" in section:  # it said why; the results file keeps what it had
                    continue
                stamp = {"size": args.size, "repeats": args.repeats, "started": started,
                         "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
                         "qdrant_client": results["machine"]["versions"]["qdrant-client"],
                         "seconds": round(time.monotonic() - section_use.wall, 1), **section_use.result()}
                for part in section.get("targets", {"": section}).values():  # each target knows its own run
                    part["run"] = stamp
                section["seconds"] = stamp["seconds"]
                results["sections"][name] = section
                print(f"   {stamp['seconds']} s; other processes used {stamp['other_cpu_share']:.0%} of the cores, "
                      f"this run {stamp['own_cpu_share']:.0%}", flush=True)
    finally:
        if server is not None:
            server.kill()  # SIGKILL: nothing of its storage is kept
            server.cleanup()
        if broker is not None:
            broker.cleanup()
    results["machine_use"] = use.result()
    return results


def merge(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The previous results with the sections (and within them, the targets) ``new`` measured."""
    sections = dict(previous["sections"])
    for name, section in new["sections"].items():
        old = sections.get(name, {})
        if "targets" in old and "targets" in section:
            sections[name] = {**old, **section, "targets": {**old["targets"], **section["targets"]}}
        else:
            sections[name] = section
    return {**previous, **{k: v for k, v in new.items() if k != "sections"}, "sections": sections}


def run_as_the_worker_does(measure: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run the in-process sections on the worker command's event loop (uvloop unless
    ``QCC_EVENT_LOOP=asyncio``) and under its collector policy (connector/heap.py), so that the
    connector measured in this process runs as a worker does; the contenders beside it share both."""
    settings = Settings()
    loop = new_event_loop(settings)
    settle_heap()
    try:
        results = loop.run_until_complete(measure)
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--repeats", type=int, help="repeats of each side-by-side measurement (default 3, tiny 1)")
    parser.add_argument("--only", action="append", choices=sorted(ALL),
                        help="repeatable; default: all but the opt-in peer")
    parser.add_argument("--qdrant", action="append", choices=[*TARGETS, *GROUPS],
                        help="repeatable: Qdrant targets to measure on; default: all (see above)")
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
    if args.qdrant and set(chosen_targets(args.qdrant)) & set(SERVER):
        script, reason = server_start_script()
        if script is None:
            sys.exit(reason)
    results = run_as_the_worker_does(run(args))
    if (args.only or args.qdrant) and args.out.exists():  # a partial run updates what it measured
        results = merge(json.loads(args.out.read_text()), results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, args.report, args.out.parent / "plots")
    print(f"wrote {args.out} and {args.report}")


if __name__ == "__main__":
    main()
