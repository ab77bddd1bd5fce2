"""What every benchmark section shares: the in-process connector, producing, confirmations, stats."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.dev.qdrant_server import QdrantServer
from connector.dev.spawn import terminate
from connector.kafka.admin import ensure_topics, wait_for_leaders
from connector.settings import Settings
from connector.stream.app import create_app
from tests.integration.harness import TopicFollower

ROOT = Path(__file__).resolve().parent.parent
TargetName = Literal["memory", "disk", "rest", "grpc"]
TARGETS: tuple[TargetName, ...] = ("memory", "disk", "rest", "grpc")
LOCAL: tuple[TargetName, ...] = ("memory", "disk")
SERVER: tuple[TargetName, ...] = ("rest", "grpc")
REQUEST_TIMEOUT = 30.0  # the connector's default qdrant_timeout_seconds, for every client the bench makes
STALLED_SECONDS = 180  # a wait with no progress for this long fails the run with what it waited for, never hangs


@dataclass(frozen=True)
class QdrantTarget:
    """Where a measurement's Qdrant is: embedded local mode in memory (``location=':memory:'``)
    or on disk (a storage folder), or the run's real server over REST or over gRPC."""

    name: TargetName
    server: QdrantServer | None = None

    def __post_init__(self) -> None:
        if (self.name in SERVER) != (self.server is not None):
            raise ValueError(f"target {self.name}: a server target needs the server, a local one none")

    @property
    def is_server(self) -> bool:
        return self.server is not None

    async def fresh_client(self, folder: Path) -> AsyncQdrantClient:
        """A client on an empty Qdrant: a new local store (``folder`` on disk), or the server with
        every alias and collection deleted, so that no run inherits another's data."""
        if self.server is None:
            return (
                AsyncQdrantClient(location=":memory:") if self.name == "memory" else AsyncQdrantClient(path=str(folder))
            )
        client = AsyncQdrantClient(
            url=self.server.url,
            prefer_grpc=self.name == "grpc",
            grpc_port=self.server.grpc_port,
            timeout=REQUEST_TIMEOUT,
            cloud_inference=True,  # no walk of every request for inference objects, as the worker's client
        )  # type: ignore[arg-type]  # seconds, float as in connector/qdrant/client.py
        for alias in (await client.get_aliases()).aliases:
            await client.delete_alias(alias.alias_name)
        for collection in (await client.get_collections()).collections:
            await client.delete_collection(collection.name)
        return client

    def worker_env(self, folder: Path) -> dict[str, str]:
        """The QCC_ settings that point a worker process at this Qdrant (``folder`` on disk)."""
        if self.server is not None:
            return {
                "QCC_QDRANT_URL": self.server.url,
                "QCC_QDRANT_PREFER_GRPC": "true" if self.name == "grpc" else "false",
                "QCC_QDRANT_GRPC_PORT": str(self.server.grpc_port),
                "QCC_QDRANT_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT),
            }
        if self.name == "memory":
            raise ValueError("local mode in memory lives in one process: a worker process needs disk or a server")
        return {"QCC_QDRANT_PATH": str(folder)}

    def describe(self) -> str:
        if self.server is None:
            return "embedded local mode " + ("in memory" if self.name == "memory" else "on disk")
        return (
            f"Qdrant {server_version(self.server)} server on loopback over {'gRPC' if self.name == 'grpc' else 'REST'}"
        )


def server_version(server: QdrantServer) -> str:
    """What the server says it is (``GET /``)."""
    with urllib.request.urlopen(server.url, timeout=5) as answer:
        return str(json.loads(answer.read())["version"])


@dataclass(frozen=True)
class Context:
    """One benchmark run: the broker, the models, a scratch folder, how big to make things, and
    the Qdrant targets chosen for it."""

    bootstrap: str
    model_paths: dict[str, str]
    workdir: Path
    size: str  # "tiny" or "full"
    repeats: int
    targets: tuple[QdrantTarget, ...] = (QdrantTarget("memory"), QdrantTarget("disk"))

    def chosen(self, supported: Sequence[TargetName]) -> list[QdrantTarget]:
        """The run's targets that a section can measure on, in the run's order."""
        return [t for t in self.targets if t.name in supported]

    @staticmethod
    def local(name: TargetName) -> QdrantTarget:
        """A local-mode target for the sections that measure only there."""
        return QdrantTarget(name)

    def scratch(self, name: str) -> Path:
        path = self.workdir / f"{name}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True)
        return path

    def settings(self, name: str, **overrides: Any) -> Settings:
        """Settings of one isolated connector: its own topics, group and state folder."""
        tag = f"{name}-{uuid.uuid4().hex[:6]}"
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": self.bootstrap, "consumer_group": f"bench-{tag}",
            "patch_topic": f"p-{tag}", "reembed_topic": f"r-{tag}", "verification_topic": f"v-{tag}",
            "dead_letter_topic": f"d-{tag}", "data_dir": self.scratch(f"state-{name}"), "http_port": 0,
            "model_paths": self.model_paths, "session_timeout_seconds": 6, "log_level": "warning",
            "window_max_events": 500, "window_max_wait_seconds": 0.5, **overrides,
        }
        return Settings(**values)


def machine() -> dict[str, Any]:
    """The facts a reader needs to weigh the numbers."""
    from importlib.metadata import version

    memory_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")), 0)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            p: version(p) for p in ("qdrant-client", "fastembed", "faust-streaming", "aiokafka", "onnxruntime")
        },
        "kafka": "Apache Kafka 4.0.1, one KRaft node on loopback",
    }


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median and spread of repeated measurements, and the values in the order they were taken
    (repeat i of one target pairs with repeat i of another: they ran side by side)."""
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 3), "min": round(ordered[0], 3), "max": round(ordered[-1], 3),
            "n": len(ordered), "values": [round(v, 3) for v in values]}


def rate_lines(rates: dict[str, list[float]], reference: str, unit: str, extra: Any = None) -> list[str]:
    """One line per mode of a standalone bench: median rate (min, max) and the share of
    ``reference``'s median; ``extra(median)`` adds a column."""
    base = statistics.median(rates[reference])
    width = max(len(name) for name in rates)
    lines = []
    for name, values in rates.items():
        median = statistics.median(values)
        more = f", {extra(median)}" if extra is not None else ""
        lines.append(f"  {name:{width}s} {median:6.2f} {unit} (min {min(values):.2f}, max {max(values):.2f}){more}, "
                     f"{median / base:.2f}x")
    return lines


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def create_kv(client: AsyncQdrantClient, points: int, name: str = "kv", **layout: Any) -> None:
    """The patched collection: dense "d" (2, dot), sparse "s", ``points`` points with a payload;
    ``layout``: shard_number, replication_factor... of a collection on a cluster."""
    await client.create_collection(name, vectors_config={"d": qm.VectorParams(size=2, distance=qm.Distance.DOT)},
                                   sparse_vectors_config={"s": qm.SparseVectorParams()}, **layout)
    for start in range(0, points, 1000):
        await client.upsert(
            name,
            [
                qm.PointStruct(id=i, vector={"d": [1.0, float(i)]}, payload={"v": i % 100, "body": f"doc {i}"})
                for i in range(start, min(points, start + 1000))
            ],
            wait=True,
        )


async def new_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    """Create topics and wait until the broker serves every partition. A consumer that subscribes to
    a topic the broker's metadata does not list yet gets no partitions and looks again only at its
    next metadata refresh, five minutes later (aiokafka's ``metadata_max_age_ms``): a stalled run."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
        led = await wait_for_leaders(admin, list(names))
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.end_offsets(led), timeout=60)  # a leader named is not yet one serving
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]],
                  rate: float | None = None) -> list[tuple[int, int, float]]:
    """Send records (at ``rate`` per second if given); (partition, offset, send time) of each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        start = time.monotonic()
        for i, (key, value) in enumerate(records):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append((time.time(), await producer.send(topic, value, key=key)))
        out = []
        for stamp, future in pending:
            meta = await future
            out.append((meta.partition, meta.offset, stamp))
        return out
    finally:
        await producer.stop()


class Confirmations(TopicFollower):
    """A verification topic read in the background: (source topic, partition, offset) -> receive time."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.seen: dict[tuple[str, int, int], float] = {}
        self.counts: dict[str, int] = {}  # distinct records confirmed per source topic
        self.records: list[dict[str, Any]] = []
        super().__init__(bootstrap, [topic], self._confirmed)

    def _confirmed(self, _: str, record: dict[str, Any]) -> None:
        now = time.time()
        self.records.append(record)
        for r in record["ranges"]:
            for offset in range(r["first_offset"], r["last_offset"] + 1):
                key = (record["topic"], r["partition"], offset)
                if key not in self.seen:
                    self.seen[key] = now
                    self.counts[record["topic"]] = self.counts.get(record["topic"], 0) + 1

    async def wait(self, topic: str, sent: list[tuple[int, int, float]], timeout: float = 3600) -> float:
        """Until every sent record is confirmed; returns the time the last one was. Fails after
        ``timeout``, or after STALLED_SECONDS in which no record of any topic was confirmed."""
        deadline = time.monotonic() + timeout
        keys = [(topic, p, o) for p, o, _ in sent]
        progress, last_progress = len(self.seen), time.monotonic()
        while not all(k in self.seen for k in keys):
            now = time.monotonic()
            if len(self.seen) != progress:
                progress, last_progress = len(self.seen), now
            if now > deadline or now - last_progress > STALLED_SECONDS:
                raise TimeoutError(f"{sum(k not in self.seen for k in keys)} of {len(keys)} records of {topic} not "
                                   f"confirmed, none for {now - last_progress:.0f} s")
            await asyncio.sleep(0.05)
        return max(self.seen[k] for k in keys)


class InProcessConnector:
    """The connector's Faust app in this process, on a client the benchmark owns (any target)."""

    def __init__(self, settings: Settings, client: AsyncQdrantClient, partitions: int = 2) -> None:
        self.settings, self.client, self.partitions = settings, client, partitions
        self.app: Any = None

    async def __aenter__(self) -> InProcessConnector:
        for name in ("faust", "aiokafka", "mode", "connector"):
            logging.getLogger(name).setLevel(logging.ERROR)
        await ensure_topics(self.settings, partitions=self.partitions)
        self.app = create_app(self.settings, client=self.client)
        self.app.finalize()
        await self.app.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.app.stop()


class WorkerProcess:
    """``qdrant-change-connector worker`` as its own process (for memory and scale-out);
    ``qdrant`` is the target's :meth:`QdrantTarget.worker_env`."""

    def __init__(self, settings: Settings, qdrant: dict[str, str], log: Path) -> None:
        env = {**os.environ, **settings_env(settings), **qdrant, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "connector.cli", "worker"], env=env,
                                        stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)

    def rss_bytes(self) -> int:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        return next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS")), 0)

    def stop(self) -> None:
        terminate(self.process, timeout=60)


def settings_env(settings: Settings) -> dict[str, str]:
    """Settings back as QCC_ variables, for a worker process."""
    out = {}
    for name, value in json.loads(settings.model_dump_json()).items():
        if value is None:
            continue
        out[f"QCC_{name.upper()}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return out


def _busy_ticks() -> int:
    """CPU ticks the whole machine spent busy since boot (all cores; idle and iowait left out)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


def _own_ticks() -> int:
    """CPU ticks of this process and its descendants, the exited and waited-for ones included."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        rest = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid ...
        children.setdefault(int(rest[1]), []).append(int(entry.name))
        ticks[int(entry.name)] = sum(int(v) for v in rest[11:15])  # utime stime cutime cstime
    total, stack = 0, [os.getpid()]
    while stack:
        pid = stack.pop()
        total += ticks.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class MachineUse:
    """How busy the machine was while something ran: the load average before and after, and the
    share of all cores' time that this run (with its broker, server and workers) and that other
    processes used. Other engineers' processes on a shared machine show as ``other_cpu_share``."""

    def __init__(self) -> None:
        self.load_before = round(os.getloadavg()[0], 2)
        self.wall, self.busy, self.own = time.monotonic(), _busy_ticks(), _own_ticks()

    def result(self) -> dict[str, float]:
        capacity = (time.monotonic() - self.wall) * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
        busy, own = _busy_ticks() - self.busy, _own_ticks() - self.own
        return {"load_before": self.load_before, "load_after": round(os.getloadavg()[0], 2),
                "own_cpu_share": round(own / capacity, 3), "other_cpu_share": round(max(busy - own, 0) / capacity, 3)}
