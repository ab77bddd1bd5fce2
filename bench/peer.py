"""Upserts side by side with the official Qdrant Kafka sink (qdrant-kafka), on a Qdrant server.

The same points (N upserts of 384-d vectors on P distinct points, each point written N/P
times) are produced once, before anything consumes, to two topics with the same keys and
partitions: in the sink's format (``{"collection_name", "id", "vector", "payload"}``) and as
the connector's ``upsert`` events. Then, in each repeat, on a freshly created collection each:

- sink: Kafka Connect standalone running qdrant-kafka with its defaults (one task, gRPC,
  500-record batches, no ``wait``), :mod:`bench.peer_sink`;
- connector: a worker process with default settings (every guarantee on: ``wait=true``,
  read-back verification, verification events), over REST and over gRPC;
- unverified: the same worker with ``QCC_VERIFY_AFTER_APPLY=false`` (no read-back): what
  the read-back costs;
- naive: an aiokafka consumer in this process sending one upsert per event with ``wait=true``;
- ceiling: the points sent straight to Qdrant in 500-point ``upsert`` calls with
  ``wait=true``: no Kafka, no parsing (done beforehand).

Each contender reads the backlog with a consumer group of its own; the order of the
contenders rotates from one repeat to the next.

How the clock runs: a REST client polls the collection every 50 ms. The first poll that
counts a point marks *first visible*: for the sink and the connector that is their first
batch (up to 500 records) consumed and applied; for the naive consumer, its first upsert
returning. Start-up is process start (or consumer start) to first visible. The last write of
every point carries ``"last": true`` (payload-indexed): the run is *done* when P points count
with it, which, per-key order being kept by all, means every record has been applied; for
the connector, also when every offset is confirmed by a verification event. Events/s is the
events applied after first visible (N minus the points counted then) over the time from
first visible to done. The CPU each contender's process and the Qdrant server used in that
time is recorded too (per 1,000 events).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from bench import peer_sink
from bench.common import (
    REQUEST_TIMEOUT,
    Confirmations,
    Context,
    QdrantTarget,
    TargetName,
    WorkerProcess,
    new_topics,
    produce,
    summary,
)
from connector.dev.qdrant_server import QdrantServer
from connector.domain.changes import parse_change
from connector.domain.operations import op_from_patch
from connector.kafka.admin import ensure_topics
from connector.qdrant import to_qdrant

SUPPORTED: tuple[TargetName, ...] = ("rest", "grpc")
COLLECTION = "peer"
DIMENSIONS = 384
PARTITIONS = 2
BATCH = 500  # the sink's batch (Connect's max.poll.records), the connector's window and the ceiling's request
POLL_SECONDS = 0.05
TIMEOUT_SECONDS = 900.0
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
SIZES = {"full": (20_000, 2_000), "tiny": (2_400, 1_200)}  # (events, points)
WHO = ("connector", "unverified", "naive", "ceiling")  # every contender but the sink, per protocol


@dataclass(frozen=True)
class Backlog:
    """The produced records: N events on P points, in both formats, and where they landed."""

    events: int
    points: int
    sink_topic: str
    connector_topic: str
    connector_sent: list[tuple[int, int, float]]  # (partition, offset, send time) of each upsert event
    ceiling_points: list[qm.PointStruct]


@dataclass(frozen=True)
class Timing:
    """One contender's run: start, first point visible (and how many were), done; CPU seconds."""

    started: float
    first: float
    first_count: int
    done: float
    own_cpu: float
    server_cpu: float
    windows: dict[str, float] = field(default_factory=dict)  # the connector's, from its verification events

    def events_per_second(self, events: int) -> float:
        return (events - self.first_count) / (self.done - self.first)

    def startup_seconds(self) -> float:
        return self.first - self.started

    def cpu_ms_per_1000(self, events: int) -> tuple[float, float]:
        """CPU of the contender's process and of the server per 1,000 events applied."""
        applied = events - self.first_count
        return self.own_cpu * 1e6 / applied, self.server_cpu * 1e6 / applied


def vectors(n: int, seed: int = 11) -> list[str]:
    """n unit vectors as JSON arrays, 5 decimals (what a producer would send)."""
    rows = np.random.default_rng(seed).standard_normal((n, DIMENSIONS)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return [json.dumps([round(float(x), 5) for x in row]) for row in rows]


def payload(i: int, events: int, points: int) -> dict[str, Any]:
    """Event i's payload; the last write of each point says so."""
    return {"seq": i, "last": i >= events - points}


def sink_value(point: int, vector: str, body: dict[str, Any]) -> bytes:
    return (f'{{"collection_name": "{COLLECTION}", "id": {point}, "vector": {vector}, '
            f'"payload": {json.dumps(body)}}}').encode()


def upsert_value(point: int, vector: str, body: dict[str, Any]) -> bytes:
    return (f'{{"schema_version": 1, "collection": "{COLLECTION}", "op": "upsert", '
            f'"points": [{{"id": {point}, "vector": {vector}, "payload": {json.dumps(body)}}}]}}').encode()


def shortest_repeat(partitions: list[int], ids: list[int]) -> int:
    """The fewest records between two writes of one point within a partition.

    The sink groups a batch's points in an unordered map, so two writes of one point within
    one batch may land in either order; at least BATCH records apart, they never share one."""
    last: dict[tuple[int, int], int] = {}
    position: dict[int, int] = {}
    shortest = len(ids)
    for partition, point in zip(partitions, ids, strict=True):
        here = position[partition] = position.get(partition, -1) + 1
        if (partition, point) in last:
            shortest = min(shortest, here - last[partition, point])
        last[partition, point] = here
    return shortest


async def make_backlog(ctx: Context, events: int, points: int) -> Backlog:
    """Both topics, produced in full before any contender starts."""
    tag = uuid.uuid4().hex[:6]
    sink_topic, connector_topic = f"peer-sink-{tag}", f"peer-upserts-{tag}"
    await new_topics(ctx.bootstrap, [sink_topic, connector_topic], PARTITIONS)
    vecs = vectors(events)
    rows = [(i % points, vecs[i], payload(i, events, points)) for i in range(events)]
    keys = [f"{COLLECTION}/{p}".encode() for p, _, _ in rows]  # one key per point: same partition in both topics
    await produce(ctx.bootstrap, sink_topic, zip(keys, (sink_value(*r) for r in rows), strict=True))
    sent = await produce(ctx.bootstrap, connector_topic, zip(keys, (upsert_value(*r) for r in rows), strict=True))
    gap = shortest_repeat([p for p, _, _ in sent], [p for p, _, _ in rows])
    if gap < BATCH:
        raise ValueError(f"a point is written twice within {gap} records of a partition: the sink may reorder them")
    ceiling = [qm.PointStruct(id=p, vector=json.loads(v), payload=b) for p, v, b in rows]
    return Backlog(events, points, sink_topic, connector_topic, sent, ceiling)


async def fresh_collection(target: QdrantTarget, folder: Path) -> None:
    """An empty server with the one collection: 384-d cosine, ``last`` payload-indexed."""
    client = await target.fresh_client(folder)
    try:
        vectors_config = qm.VectorParams(size=DIMENSIONS, distance=qm.Distance.COSINE)
        await client.create_collection(COLLECTION, vectors_config=vectors_config)
        await client.create_payload_index(COLLECTION, "last", qm.PayloadSchemaType.BOOL, wait=True)
    finally:
        await client.close()


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live descendants."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(rest[1]), []).append(int(entry.name))
            ticks[int(entry.name)] = int(rest[11]) + int(rest[12])  # utime stime
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += ticks.get(p, 0)
        stack.extend(children.get(p, []))
    return total / CLOCK_TICK


Visible = tuple[float, int, tuple[float, float]]  # when, points counted, (own, server) CPU seconds then


class Watch:
    """Polls the collection until first visible and until done (see the module docstring)."""

    def __init__(self, server: QdrantServer, points: int, own_cpu: Callable[[], float],
                 check: Callable[[], None]) -> None:
        self.server, self.points, self.own_cpu, self.check = server, points, own_cpu, check
        self.client = AsyncQdrantClient(url=server.url, timeout=REQUEST_TIMEOUT)  # type: ignore[arg-type]
        self.last = qm.Filter(must=[qm.FieldCondition(key="last", match=qm.MatchValue(value=True))])

    def cpu(self) -> tuple[float, float]:
        assert self.server.process is not None
        return self.own_cpu(), cpu_seconds(self.server.process.pid)

    async def first_visible(self, deadline: float) -> Visible:
        while True:
            count = (await self.client.count(COLLECTION, exact=True)).count
            if count:
                return time.time(), count, self.cpu()
            await self._tick(deadline, "no point became visible")

    async def all_last(self, deadline: float) -> float:
        while (await self.client.count(COLLECTION, count_filter=self.last, exact=True)).count < self.points:
            await self._tick(deadline, "not every point's last write became visible")
        return time.time()

    async def _tick(self, deadline: float, what: str) -> None:
        self.check()
        if time.time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(POLL_SECONDS)

    async def close(self) -> None:
        await self.client.close()


def window_stats(records: list[dict[str, Any]], topic: str) -> dict[str, float]:
    """What the connector's verification events say about its windows: how many, how full, the
    seconds spent applying (``wait=true``) and reading back, and anything not verified."""
    mine = [r for r in records if r["topic"] == topic]
    return {"windows": len(mine), "events_per_window": sum(r["event_count"] for r in mine) / max(1, len(mine)),
            "apply_seconds": sum(r["latency"]["apply_seconds"] for r in mine),
            "verify_seconds": sum(r["latency"]["verify_seconds"] for r in mine),
            "not_verified": sum(r["verification"]["status"] != "verified" for r in mine),
            "dead_letters": sum(r["dead_letter_count"] for r in mine)}


def timing(started: float, first: Visible, done: float, cpu: tuple[float, float]) -> Timing:
    (t1, count, (own1, server1)), (own2, server2) = first, cpu
    return Timing(started, t1, count, done, own2 - own1, server2 - server1)


async def run_sink(ctx: Context, server: QdrantServer, backlog: Backlog, folder: Path, jars: Path) -> Timing:
    await fresh_collection(QdrantTarget("grpc", server), ctx.scratch("qdrant"))
    workdir = ctx.scratch("sink")
    started = time.time()
    sink = peer_sink.SinkProcess(folder, jars, workdir, ctx.bootstrap, f"http://127.0.0.1:{server.grpc_port}",
                                 backlog.sink_topic, f"peer-sink-{uuid.uuid4().hex[:6]}")
    watch = Watch(server, backlog.points, lambda: cpu_seconds(sink.process.pid), sink.check_alive)
    try:
        first = await watch.first_visible(started + TIMEOUT_SECONDS)
        done = await watch.all_last(started + TIMEOUT_SECONDS)
        return timing(started, first, done, watch.cpu())
    except TimeoutError as e:
        raise TimeoutError(f"{e}; the sink's log ends: {sink.log.read_text()[-3000:]}") from None
    finally:
        await watch.close()
        sink.stop()


async def run_connector(ctx: Context, target: QdrantTarget, backlog: Backlog, *, verify: bool = True,
                        **overrides: Any) -> Timing:
    """``verify=False``: the same worker with ``QCC_VERIFY_AFTER_APPLY=false`` (no read-back), to
    measure what the read-back costs; ``overrides``: other settings."""
    assert target.server is not None
    folder = ctx.scratch("qdrant")
    await fresh_collection(target, folder)
    settings = ctx.settings("peer", patch_topic=backlog.connector_topic, verify_after_apply=verify, **overrides)
    await ensure_topics(settings, partitions=PARTITIONS)
    log = ctx.scratch("worker") / "worker.log"
    seen = Confirmations(ctx.bootstrap, settings.verification_topic)
    async with seen:
        started = time.time()
        worker = WorkerProcess(settings, target.worker_env(folder), log)

        def check() -> None:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited: {log.read_text()[-2000:]}")

        watch = Watch(target.server, backlog.points, lambda: cpu_seconds(worker.process.pid), check)
        try:
            first = await watch.first_visible(started + TIMEOUT_SECONDS)
            visible = await watch.all_last(started + TIMEOUT_SECONDS)
            confirmed = await seen.wait(backlog.connector_topic, backlog.connector_sent, timeout=TIMEOUT_SECONDS)
            result = timing(started, first, max(visible, confirmed), watch.cpu())
            return replace(result, windows=window_stats(seen.records, backlog.connector_topic))
        finally:
            await watch.close()
            worker.stop()


async def run_naive(ctx: Context, target: QdrantTarget, backlog: Backlog) -> Timing:
    await fresh_collection(target, ctx.scratch("qdrant"))
    client = _client(target)
    watch = Watch(_server(target), backlog.points, time.process_time, lambda: None)
    started = time.time()
    consumer = AIOKafkaConsumer(backlog.connector_topic, bootstrap_servers=ctx.bootstrap, auto_offset_reset="earliest",
                                group_id=f"naive-{uuid.uuid4().hex[:6]}", enable_auto_commit=True)
    await consumer.start()
    try:
        first: Visible | None = None
        for _ in range(backlog.events):
            message = await consumer.getone()
            op = op_from_patch(parse_change(message.value, expect="patch"), 0)  # type: ignore[arg-type]
            await client.batch_update_points(COLLECTION, [to_qdrant(op)], wait=True)
            if first is None:
                first = (time.time(), 1, watch.cpu())
        assert first is not None
        return timing(started, first, time.time(), watch.cpu())
    finally:
        await consumer.stop()
        await client.close()
        await watch.close()


async def run_ceiling(ctx: Context, target: QdrantTarget, backlog: Backlog) -> Timing:
    await fresh_collection(target, ctx.scratch("qdrant"))
    client = _client(target)
    watch = Watch(_server(target), backlog.points, time.process_time, lambda: None)
    try:
        started = time.time()
        first = (started, 0, watch.cpu())
        for i in range(0, backlog.events, BATCH):
            await client.upsert(COLLECTION, backlog.ceiling_points[i : i + BATCH], wait=True)
        return timing(started, first, time.time(), watch.cpu())
    finally:
        await client.close()
        await watch.close()


def _server(target: QdrantTarget) -> QdrantServer:
    assert target.server is not None
    return target.server


def _client(target: QdrantTarget) -> AsyncQdrantClient:
    server = _server(target)
    # cloud_inference: no walk of every request for inference objects, as in the worker's client
    return AsyncQdrantClient(url=server.url, prefer_grpc=target.name == "grpc", grpc_port=server.grpc_port,
                             timeout=REQUEST_TIMEOUT, cloud_inference=True)  # type: ignore[arg-type]


def window_summary(timings: list[Timing]) -> dict[str, float]:
    """Medians over the repeats of the window figures, and the shares of the measured time that
    went to applying and to reading back (windows are applied one after another)."""
    values: dict[str, list[float]] = {}
    for t in timings:
        span = t.done - t.first
        shares = {"apply_share": t.windows.get("apply_seconds", 0) / span,
                  "verify_share": t.windows.get("verify_seconds", 0) / span}
        for key, value in {**t.windows, **shares}.items():
            values.setdefault(key, []).append(value)
    return {k: summary(v)["median"] for k, v in values.items()}


def rotated(items: list[str], repeat: int) -> list[str]:
    """The contenders' order in one repeat: each repeat starts one further along."""
    k = repeat % len(items)
    return items[k:] + items[:k]


async def sink_jars() -> tuple[Path, Path] | str:
    """The sink's folder and its resolved jars, or why it cannot run here."""
    reason = peer_sink.unavailable()
    folder, _ = peer_sink.peer_folder()
    if reason is not None or folder is None:
        return reason or "no qdrant-kafka peer"
    try:
        return folder, await asyncio.to_thread(peer_sink.resolve_jars, folder)
    except (OSError, subprocess.SubprocessError) as e:  # Maven Central unreachable, a broken pom
        stderr = (getattr(e, "stderr", b"") or b"").decode(errors="replace")[-500:]
        return f"no qdrant-kafka peer: fetching its dependencies failed: {e} {stderr}"


async def measure(ctx: Context) -> dict[str, Any]:
    found = await sink_jars()
    if isinstance(found, str):
        print(f"peer skipped: {found}", flush=True)
        return {"skipped": found}
    folder, jars = found
    targets = ctx.chosen(SUPPORTED)
    server = _server(targets[0])
    events, points = SIZES[ctx.size]
    backlog = await make_backlog(ctx, events, points)
    contenders = ["sink", *(f"{who} {t.name}" for t in targets for who in WHO)]
    runs: dict[str, list[Timing]] = {c: [] for c in contenders}
    runners: dict[str, Callable[[Context, QdrantTarget, Backlog], Awaitable[Timing]]] = {
        "connector": run_connector, "unverified": partial(run_connector, verify=False),
        "naive": run_naive, "ceiling": run_ceiling,
    }
    for repeat in range(ctx.repeats):
        for name in rotated(contenders, repeat):
            who, _, protocol = name.partition(" ")
            if who == "sink":
                result = await run_sink(ctx, server, backlog, folder, jars)
            else:
                result = await runners[who](ctx, next(t for t in targets if t.name == protocol), backlog)
            runs[name].append(result)
            print(f"peer {name}: {result.events_per_second(events):.0f}/s, "
                  f"start-up {result.startup_seconds():.1f} s", flush=True)
    return summarise(runs, [t.name for t in targets], events, points, version=peer_sink.version_of(folder),
                     qdrant={t.name: t.describe() for t in targets})


def summarise(runs: dict[str, list[Timing]], targets: list[str], events: int, points: int, *, version: str,
              qdrant: dict[str, str]) -> dict[str, Any]:
    """Per protocol: every contender's events/s and start-up, the sink's beside them (it ran in the
    same repeats), and the ratios per repeat."""
    def rates(name: str) -> list[float]:
        return [r.events_per_second(events) for r in runs[name]]

    def cpu(name: str) -> dict[str, float]:
        own, server = zip(*(r.cpu_ms_per_1000(events) for r in runs[name]), strict=True)
        return {"own": summary(own)["median"], "server": summary(server)["median"]}

    def ratio(a: list[float], b: list[float]) -> dict[str, Any]:
        return summary([x / y for x, y in zip(a, b, strict=True)])

    sink = rates("sink")
    out: dict[str, Any] = {"events": events, "points": points, "dimensions": DIMENSIONS, "partitions": PARTITIONS,
                           "batch": BATCH, "targets": {},
                           "sink": f"{version} (Kafka Connect standalone, one task, gRPC, its defaults)"}
    for t in targets:
        names = {**{who: f"{who} {t}" for who in WHO}, "sink": "sink"}
        c, u, n, e = (rates(names[who]) for who in WHO)
        out["targets"][t] = {
            "qdrant": qdrant[t], "connector": summary(c), "unverified": summary(u), "naive": summary(n),
            "ceiling": summary(e), "sink": summary(sink), "connector_vs_sink": ratio(c, sink),
            "unverified_vs_sink": ratio(u, sink), "connector_vs_unverified": ratio(c, u),
            "connector_vs_ceiling": ratio(c, e),
            "sink_vs_ceiling": ratio(sink, e), "connector_vs_naive": ratio(c, n),
            "startup_seconds": {who: summary([r.startup_seconds() for r in runs[names[who]]])
                                for who in ("connector", "unverified", "naive", "sink")},
            "connector_windows": window_summary(runs[names["connector"]]),
            "cpu_ms_per_1000_events": {who: cpu(name) for who, name in names.items()},
        }
    return out
