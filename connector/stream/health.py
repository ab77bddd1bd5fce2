"""HTTP endpoints of a worker: /metrics, /livez ("restart me" when it fails), /readyz ("send me work")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connector import metrics

log = logging.getLogger(__name__)


def _never() -> str | None:
    return None


@dataclass
class Readiness:
    """What /readyz reports: the broker answering, partitions assigned, and Qdrant answering."""

    assigned: Callable[[], bool]
    broker_problem: Callable[[], str | None] = _never  # e.g. OutageTracker.reason
    qdrant_ok: bool = False
    qdrant_error: str | None = None
    qdrant_since: str | None = None
    reasons: list[str] = field(default_factory=list)

    def check(self) -> bool:
        reasons = []
        broker = self.broker_problem()
        if broker is not None:
            reasons.append(broker)
        if not self.assigned():
            reasons.append("no Kafka partitions assigned")
        if not self.qdrant_ok:
            since = f" since {self.qdrant_since}" if self.qdrant_since else ""
            reasons.append(f"Qdrant not usable{since}: {self.qdrant_error}" if self.qdrant_error
                           else "Qdrant not checked yet")
        self.reasons = reasons
        metrics.READY.set(0 if reasons else 1)
        return not reasons


def build_app(readiness: Readiness) -> web.Application:
    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})  # checks nothing outside the process

    async def readyz(_: web.Request) -> web.Response:
        ready = readiness.check()
        return web.json_response({"ready": ready, "reasons": readiness.reasons}, status=200 if ready else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def serve(readiness: Readiness, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_app(readiness), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("HTTP endpoints on %s:%d (/metrics, /livez, /readyz)", host, port)
    return runner


async def probe_qdrant(readiness: Readiness, probe: Callable[[], Awaitable[object]], every: float = 2.0) -> None:
    """Keep ``readiness.qdrant_ok`` current: one cheap call every ``every`` seconds."""
    last_error: str | None = None
    while True:
        try:
            await asyncio.wait_for(probe(), timeout=max(every, 1.0))
            if last_error is not None:
                log.info("Qdrant probe succeeds again")
            readiness.qdrant_ok, readiness.qdrant_error, readiness.qdrant_since, last_error = True, None, None, None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; logged once per reason
            error = f"{type(exc).__name__}: {exc}"
            if error != last_error:
                log.warning("Qdrant probe failed: %s", error)
            if readiness.qdrant_since is None:
                readiness.qdrant_since = datetime.now(timezone.utc).isoformat(timespec="seconds")
            readiness.qdrant_ok, readiness.qdrant_error, last_error = False, error, error
        log.debug("Qdrant probe done: %s", "ok" if readiness.qdrant_ok else "failed")  # tests count probes
        await asyncio.sleep(every)
