"""Two commits' connectors measured directly, in turns, on one broker and one Qdrant server.

``bench.commits`` compares the ratios each commit's bench measures; a ratio over a run of two
seconds moves by 10% with a few hundred milliseconds at its start or end. This measures the
connector itself instead: each turn is one commit's in-process connector (its own code, from its
worktree, ``bench/direct_turn.py``) on one long workload, long enough (≥ 15 s on this machine) that
the start and the end weigh little, and the two commits take turns (A B, then B A, ...) on the same
broker and server. Per turn: events a second, and the connector's own CPU ms per 1,000 events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from bench.common import summary
from connector.dev.broker import KafkaBroker
from connector.dev.qdrant_server import QdrantServer

TURN = Path(__file__).resolve().parent / "direct_turn.py"
# events a workload needs for a turn of ≥ 15 s over REST on the 2-core machine (bench/notes/commits-direct.md)
EVENTS = {"identical": 60_000, "distinct": 40_000, "mixed": 30_000, "peer": 20_000}
TARGETS = ("rest", "grpc")


def one_turn(tree: Path, spec: dict[str, Any]) -> dict[str, float]:
    """One commit's connector, from its worktree, on one workload; its output on failure."""
    done = subprocess.run([sys.executable, str(TURN), json.dumps(spec)], cwd=tree, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tree)}, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"a turn at {tree} ({spec['workload']}, {spec['target']}) ended with exit "
                         f"{done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def compare(trees: dict[str, Path], rounds: int, targets: tuple[str, ...] = TARGETS,
            events: dict[str, int] | None = None, bootstrap: str | None = None) -> dict[str, Any]:
    """Rates and CPU per workload and target, per commit (``trees``: before and after), in turns;
    on a broker of its own unless given one's ``bootstrap``."""
    events = events or EVENTS
    taken: dict[str, dict[str, dict[str, list[float]]]] = {}
    with (KafkaBroker() if bootstrap is None else nullcontext()) as broker, QdrantServer() as server:
        base = {"bootstrap": bootstrap or broker.bootstrap, "url": server.url, "grpc_port": server.grpc_port,
                "server_pid": server.process.pid}
        for round_ in range(rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for target in targets:
                for workload, n in events.items():
                    for side in order:
                        spec = {**base, "target": target, "workload": workload, "events": n}
                        started = time.monotonic()
                        result = one_turn(trees[side], spec)
                        label = f"{workload}, {target}"
                        mine = taken.setdefault(label, {}).setdefault(side, {"rate": [], "cpu_ms_per_1000": []})
                        for key in mine:
                            mine[key].append(result[key])
                        print(f"round {round_ + 1}: {label}, {side}: {result['rate']:.0f}/s, "
                              f"{result['cpu_ms_per_1000']:.0f} ms CPU per 1,000 ({time.monotonic() - started:.0f} s)",
                              flush=True)
    return {"kind": "direct", "events": events, "qdrant_targets": list(targets),
            "measured": {label: {side: {key: summary(values) for key, values in measures.items()}
                                 for side, measures in sides.items()}
                         for label, sides in taken.items()}}
