"""The headline ratios of two commits, side by side in one run: has a change made the connector slower?

    .venv/bin/python -m bench.commits ed48ac1 HEAD                   # patches and peer, server, 3 rounds
    .venv/bin/python -m bench.commits ed48ac1 HEAD --only patches --qdrant memory --rounds 2
    .venv/bin/python -m bench.commits ed48ac1 HEAD --direct          # the connectors themselves, long runs

Each commit's own ``bench.run`` measures, from a worktree of that commit made beside this checkout
(so that ``../shared`` is found there too), one repeat of the chosen sections per round; the two
commits take turns (A B, then B A, ...), so a machine that gets busier or quieter weighs on both.
The ratios each run reports (connector vs naive consumer and vs ceiling for patches, connector vs
the official sink for peer) are kept per commit under ``commits`` in the results file, and
BENCHMARKS.md gets them as a table (bench/report.py, ``commits_table``). Absolute rates of the two
are not compared: only each run's own ratios, which were measured side by side within it.

``--direct`` compares the two connectors themselves instead (bench/direct.py): rates and CPU per
event on long workloads, each commit's connector taking turns on one broker and server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import direct
from bench.common import machine, summary
from bench.report import CPU_LABEL, write_report

ROOT = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def worktree(sha: str) -> Path:
    """A worktree of ``sha`` beside this checkout (made once, kept for the next run), sharing its caches."""
    path = ROOT.parent / f"bench-{sha[:10]}"
    if not path.exists():
        git("worktree", "add", "--detach", str(path), sha)
    cache = path / ".cache"
    if not cache.exists():
        cache.symlink_to(ROOT / ".cache")
    return path


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """One run's headline ratios (one repeat each), by a label naming section, target and workload, and
    the connector's CPU per 1,000 events in each patch workload."""
    found: dict[str, float] = {}
    sections = results["sections"]
    for target, part in sections.get("patches", {}).get("targets", {}).items():
        for kind, workload in part["workloads"].items():
            for ratio in ("connector_vs_naive", "connector_vs_ceiling"):
                found[f"patches, {kind}, {target}: {ratio.replace('_', ' ')}"] = workload[ratio]["values"][0]
            # the connector's own CPU per event, a steadier view than a rate when Qdrant has little to do
            own = workload.get("cpu_ms_per_1000", {}).get("connector_own")
            if own:
                found[f"patches, {kind}, {target}: {CPU_LABEL}"] = own["values"][0]
    for target, part in sections.get("peer", {}).get("targets", {}).items():
        found[f"peer, {target}: connector vs sink"] = part["connector_vs_sink"]["values"][0]
    return found


def others_share(results: dict[str, Any]) -> float:
    """The share of the cores' time other processes used while the run's sections ran (the largest)."""
    runs = [part["run"] for section in results["sections"].values() for part in section.get("targets", {}).values()]
    return max((run.get("other_cpu_share", 0.0) for run in runs), default=0.0)


def measure(path: Path, options: list[str], out: Path) -> tuple[dict[str, float], float]:
    """One repeat of the chosen sections by the bench of the commit checked out at ``path``, and how
    busy other processes kept the machine meanwhile."""
    command = [sys.executable, "-m", "bench.run", "--repeats", "1", *options, "--out", str(out),
               "--report", str(out.with_suffix(".md"))]
    env = {**os.environ, "PYTHONPATH": str(path)}
    done = subprocess.run(command, cwd=path, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench.run at {path} ended with exit {done.returncode}; see its output above")
    results = json.loads(out.read_text())
    return ratios(results), others_share(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--only", action="append", choices=["patches", "peer"])
    parser.add_argument("--qdrant", action="append", help="as bench.run's (default: server)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--name", default="commits", help="the results' section (another name keeps an earlier "
                        "comparison beside this one)")
    parser.add_argument("--direct", action="store_true", help="the connectors themselves on long workloads, in "
                        "turns on one broker and server (bench/direct.py), instead of each commit's bench ratios")
    parser.add_argument("--events", type=int, help="with --direct: events of every workload (default: "
                        f"{', '.join(f'{w} {n}' for w, n in direct.EVENTS.items())})")
    args = parser.parse_args()
    shas = {"before": git("rev-parse", args.before), "after": git("rev-parse", args.after)}
    paths = {side: worktree(sha) for side, sha in shas.items()}
    started, wall = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), time.monotonic()
    if args.direct:
        targets = [t for q in args.qdrant or ["server"] for t in (direct.TARGETS if q == "server" else (q,))]
        if not set(targets) <= set(direct.TARGETS):
            parser.error(f"--direct measures on the server only: --qdrant rest, grpc or server, not {args.qdrant}")
        chosen = set(args.only or ["patches", "peer"])
        events = {w: args.events or n for w, n in direct.EVENTS.items()
                  if ("peer" if w == "peer" else "patches") in chosen}
        section = direct.compare(paths, args.rounds, tuple(dict.fromkeys(targets)), events)
        name = "commits direct" if args.name == "commits" else args.name
    else:
        section, name = compare_benches(paths, args), args.name
    section.update({"commits": {side: {"sha": sha, "subject": git("log", "-1", "--format=%s", sha)}
                                for side, sha in shas.items()},
                    "rounds": args.rounds, "started": started, "seconds": round(time.monotonic() - wall, 1)})
    results = json.loads(args.out.read_text()) if args.out.exists() else {  # a new file: what the report heads with
        "size": args.size, "repeats": 1, "machine": machine(), "started": started, "sections": {}}
    results["sections"][name if name.startswith("commits") else f"commits {name}"] = section
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, args.report, args.out.parent / "plots")
    print(f"wrote {args.out} and {args.report}")


def compare_benches(paths: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    """Each commit's own bench, one repeat of the chosen sections a round, in turns: its ratios."""
    options = [f"--size={args.size}", *(f"--only={name}" for name in (args.only or ["patches", "peer"]))]
    options += [f"--qdrant={name}" for name in (args.qdrant or ["server"])]
    taken: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    busy: list[float] = []
    with tempfile.TemporaryDirectory(prefix="qcc-commits-") as tmp:
        for round_ in range(args.rounds):
            for side in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                print(f"== round {round_ + 1} of {args.rounds}: {side} ({paths[side].name})", flush=True)
                found, others = measure(paths[side], options, Path(tmp) / f"{side}-{round_}.json")
                busy.append(others)
                for label, value in found.items():
                    taken[side].setdefault(label, []).append(value)
    return {"options": options, "other_cpu_share_max": round(max(busy), 2),
            "ratios": {label: {side: summary(taken[side][label]) for side in taken if label in taken[side]}
                       for label in taken["after"]}}


if __name__ == "__main__":
    main()
