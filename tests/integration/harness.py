"""Drive a real worker process against the real broker, and read what it published."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from connector.dev import spawn
from connector.kafka.admin import ensure_topics
from connector.settings import Settings
from tests.qdrant_targets import QdrantTarget


@dataclass
class Stack:
    """One isolated set of topics, consumer group and Qdrant storage for a test."""

    bootstrap: str
    workdir: Path
    model_env: dict[str, str]
    extra_env: dict[str, str] = field(default_factory=dict)
    qdrant: QdrantTarget | None = None  # None: local mode in workdir/qdrant
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def env(self) -> dict[str, str]:
        return {
            "QCC_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "QCC_CONSUMER_GROUP": f"qcc-test-{self.name}",
            "QCC_PATCH_TOPIC": f"patches-{self.name}",
            "QCC_REEMBED_TOPIC": f"reembeds-{self.name}",
            "QCC_VERIFICATION_TOPIC": f"verifications-{self.name}",
            "QCC_DEAD_LETTER_TOPIC": f"dead-{self.name}",
            **(self.qdrant.env() if self.qdrant is not None else {"QCC_QDRANT_PATH": str(self.workdir / "qdrant")}),
            "QCC_DATA_DIR": str(self.workdir / "state"),
            "QCC_WINDOW_MAX_EVENTS": "100",
            "QCC_WINDOW_MAX_WAIT_SECONDS": "0.3",
            "QCC_RETRY_MAX_SECONDS": "1",
            "QCC_COMMIT_INTERVAL_SECONDS": "0.5",
            "QCC_SESSION_TIMEOUT_SECONDS": "6",
            "QCC_HTTP_PORT": "0",
            **self.model_env,
            **self.extra_env,
        }

    def settings(self) -> Settings:
        old = dict(os.environ)
        os.environ.update(self.env)
        try:
            return Settings()
        finally:
            os.environ.clear()
            os.environ.update(old)

    async def create_topics(self, partitions: int = 2) -> None:
        await ensure_topics(self.settings(), partitions=partitions)


class Worker:
    """A worker subprocess: ``python -m connector.cli worker``."""

    def __init__(self, stack: Stack, *, max_file_bytes: int | None = None, env: dict[str, str] | None = None) -> None:
        """``max_file_bytes`` caps every file the worker writes (RLIMIT_FSIZE): a full disk;
        ``env`` adds settings of this worker's own to the stack's."""
        self.stack = stack
        self.log = stack.workdir / f"worker-{time.monotonic_ns()}.log"
        env = {**os.environ, **stack.env, **(env or {}), "PYTHONUNBUFFERED": "1"}
        argv = spawn.command([sys.executable, "-m", "connector.cli", "worker"], stop_with_parent=False,
                             max_file_bytes=max_file_bytes)
        self.process = subprocess.Popen(argv, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for_line(self, line: str, timeout: float = 60, *, after: int = 0, show: str | None = None) -> None:
        """Until the worker's log holds ``line`` more than ``after`` times (AssertionError with the
        log's end if not, or with its lines holding ``show``: what was seen of a noisy debug log)."""
        deadline = time.monotonic() + timeout
        while self.output().count(line) <= after and time.monotonic() < deadline:  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.1)
        output = self.output()
        seen = output[-3000:] if show is None else "\n".join(s for s in output.splitlines() if show in s)[-3000:]
        assert output.count(line) > after, f"{line!r} not seen {after + 1} times in {timeout:.0f} s:\n{seen}"


def upserts(first: int, count: int, value: float = 1.0) -> list[tuple[bytes, bytes]]:
    """Keyed upsert events of points first.. of a 2-d ``docs`` collection, vector [value, id]."""
    return [(f"docs/{i}".encode(), json.dumps({"schema_version": 1, "collection": "docs", "op": "upsert",
                                               "points": [{"id": i, "vector": [value, float(i)]}]}).encode())
            for i in range(first, first + count)]


async def produce(bootstrap: str, topic: str,
                  records: Iterable[tuple[bytes | None, bytes | None]]) -> list[tuple[int, int]]:
    """Send records in order; returns (partition, offset) of each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        metas = [await f for f in futures]
        return [(m.partition, m.offset) for m in metas]
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, *, until: Any = None, timeout: float = 120) -> list[dict[str, Any]]:
    """Read a topic from the start until ``until(records)`` is true (or timeout: AssertionError);
    without ``until``, every record up to the end offsets it has now (none where it does not exist),
    however slowly the broker answers: a pause in fetching is never taken for the end."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        if until is None:
            return await _read_to_end(consumer, topic, deadline)
        while True:
            if until is not None and until(records):
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if until is None:
                    return records
                raise AssertionError(f"timed out reading {topic}: {len(records)} records")
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000))
            for messages in batch.values():
                records.extend(json.loads(m.value) for m in messages)
    finally:
        await consumer.stop()


async def _read_to_end(consumer: AIOKafkaConsumer, topic: str, deadline: float) -> list[dict[str, Any]]:
    """The records of ``topic`` below the end offsets it has when the partitions are known."""
    if topic not in await consumer.topics():
        return []
    while not consumer.assignment():
        assert time.monotonic() < deadline, f"no partition of {topic} assigned"
        await asyncio.sleep(0.05)
    partitions = sorted(consumer.assignment())
    ends = await consumer.end_offsets(partitions)
    records: list[dict[str, Any]] = []
    while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
        assert time.monotonic() < deadline, f"timed out reading {topic} to its ends {ends}: {len(records)} records"
        batch = await consumer.getmany(*partitions, timeout_ms=500)
        for tp, messages in batch.items():
            records.extend(json.loads(m.value) for m in messages if m.offset < ends[tp])
    return records


def covered_offsets(verifications: list[dict[str, Any]]) -> dict[int, set[int]]:
    """Per partition, the source offsets inside some verification event's ranges."""
    covered: dict[int, set[int]] = {}
    for v in verifications:
        for r in v["ranges"]:
            covered.setdefault(r["partition"], set()).update(range(r["first_offset"], r["last_offset"] + 1))
    return covered


def all_covered(sent: list[tuple[int, int]]) -> Callable[[list[dict[str, Any]]], bool]:
    """A predicate for read_topic: every sent (partition, offset) is in some verification."""

    def check(verifications: list[dict[str, Any]]) -> bool:
        covered = covered_offsets(verifications)
        return all(offset in covered.get(partition, ()) for partition, offset in sent)

    return check


async def stream_through(stack: Stack, records: list[tuple[bytes | None, bytes | None]], *,
                         timeout: float = 120) -> tuple[list[dict[str, Any]], Worker]:
    """Produce ``records`` to the patch topic, run a worker until every one is in a verification
    event, stop it (exit 0, else the log's end): the verifications read, and the stopped worker."""
    sent = await produce(stack.bootstrap, stack.env["QCC_PATCH_TOPIC"], records)
    worker = Worker(stack)
    try:
        verifications = await read_topic(stack.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"],
                                         until=all_covered(sent), timeout=timeout)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    return verifications, worker


@contextmanager
def qdrant_outage(target: QdrantTarget, failpoints: Path) -> Iterator[None]:
    """Qdrant unreachable inside the block. A server is killed (connections refused) and started
    again on the same ports and storage; local mode cannot be unreachable, so the worker's
    ``qdrant-unavailable`` failpoint (in ``failpoints``, its QCC_FAILPOINTS_DIR) stands in."""
    server = target.server
    if server is None:
        (failpoints / "qdrant-unavailable").touch()
    else:
        server.kill()
    try:
        yield
    finally:
        if server is None:
            (failpoints / "qdrant-unavailable").unlink()
        else:
            server.start()


def run(coro: Any) -> Any:
    return asyncio.get_event_loop().run_until_complete(coro)


class TopicFollower:
    """Reads topics from the start in the background; each JSON record goes to ``on_record``."""

    def __init__(self, bootstrap: str, topics: Iterable[str], on_record: Callable[[str, dict[str, Any]], None]) -> None:
        self._on_record = on_record
        self._consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                          enable_auto_commit=False)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicFollower:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        # stopped in a task of its own: aiokafka's fetcher, closing a fetch that waits in its retry
        # backoff after a request timed out, raises that fetch's CancelledError out of stop() (an
        # hour-long bench ended so after its last measurement); the consumer is stopped all the same
        await asyncio.gather(asyncio.ensure_future(self._consumer.stop()), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for tp, messages in batch.items():
                for message in messages:
                    self._on_record(tp.topic, json.loads(message.value))


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, sorted labels) -> value


def http_get(port: int, path: str) -> tuple[int, str]:
    """A worker's endpoint: (status, body); (0, "") when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


async def until_http(port: int, path: str, status: int, timeout: float = 90) -> str:
    """The body of the first answer of ``path`` with ``status``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, body = await asyncio.to_thread(http_get, port, path)
        if code == status:
            return body
        await asyncio.sleep(0.3)
    raise AssertionError(f"{path} never answered {status}")


def parse_samples(text: str) -> Samples:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def metric_samples(port: int, until: Callable[[Samples], bool] = lambda _: True, timeout: float = 60) -> Samples:
    """The worker's /metrics, read until ``until`` holds of them (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = await asyncio.to_thread(http_get, port, "/metrics")
        samples = parse_samples(body) if status == 200 else {}
        if until(samples):
            return samples
        assert time.monotonic() < deadline, f"/metrics never held the condition: {sorted(samples.items())[:40]}"
        await asyncio.sleep(0.2)
