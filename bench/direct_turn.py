"""One turn of ``bench.commits --direct``: one commit's connector on one long workload.

Run by path, with the commit's worktree as the working folder and first on ``PYTHONPATH``, so that
every import below is that commit's own code (this file comes from the checkout that runs the
comparison). The broker and the Qdrant server are the comparison's, shared by both commits.

    python bench/direct_turn.py '{"bootstrap": ..., "url": ..., "grpc_port": ..., "server_pid": ...,
                                  "target": "rest", "workload": "identical", "events": 60000}'

Prints one JSON line: events a second and the connector's CPU ms per 1,000 events.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# this file's folder holds modules named like the standard library's (profile.py): keep it off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path.cwd()))

from bench import patches, peer  # noqa: E402 - the commit's own, found through the path set above
from bench.common import Context, QdrantTarget  # noqa: E402
from connector.embedding.offline_model import assemble_all  # noqa: E402

WARM_EVENTS = 2000  # one window's worth first, so that neither commit pays its start-up in the measured span
POINTS = 2000


async def turn(spec: dict[str, Any]) -> dict[str, float]:
    server = SimpleNamespace(url=spec["url"], grpc_port=spec["grpc_port"],
                             process=SimpleNamespace(pid=spec["server_pid"]))
    events = int(spec["events"])
    with tempfile.TemporaryDirectory(prefix="qcc-direct-") as tmp:
        target = QdrantTarget(spec["target"], server)  # type: ignore[arg-type]  # duck-typed: url, ports, pid
        ctx = Context(spec["bootstrap"], assemble_all(), Path(tmp), "full", 1, (target,))
        if spec["workload"] == "peer":  # the peer section's worker process, on upserts of 384-d vectors
            # every point written at least twice at the peer section's sizes (2,400 events at the least,
            # so that a point's two writes stay a sink batch apart, as make_backlog checks)
            backlog = await peer.make_backlog(ctx, events, min(POINTS, events // 2))
            timing = await peer.run_connector(ctx, target, backlog)
            return {"rate": timing.events_per_second(events), "cpu_ms_per_1000": timing.cpu_ms_per_1000(events)[0]}
        workload = patches.workload(spec["workload"], events, POINTS)
        await patches.run_connector(ctx, target, workload[:WARM_EVENTS], POINTS, {})
        cpu: dict[str, float] = {}
        rate = await patches.run_connector(ctx, target, workload, POINTS, cpu)
        return {"rate": rate, "cpu_ms_per_1000": cpu["own"]}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(turn(json.loads(sys.argv[1])))), flush=True)
