"""End-to-end throughput and latency of the stream connector on this machine.

    .venv/bin/python bench/e2e.py [--patches 20000] [--reembeds 3000] [--rate 400]

Runs a real Kafka broker and a real worker process (Qdrant local mode on disk), and measures
1. payload-patch throughput on a backlog: identical patches (coalescible) and distinct ones;
2. re-embed throughput on a backlog, next to raw fastembed on the same texts in this process
   (a ratio: both measured in the same run);
3. latency from produce to verification event, at a steady produce rate below capacity.
Results go to bench/results/e2e.json. Not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from qdrant_client import QdrantClient
from qdrant_client import models as qm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector.devbroker import KafkaBroker  # noqa: E402
from connector.kafka_admin import ensure_topics  # noqa: E402
from connector.offline_model import assemble_all  # noqa: E402
from connector.settings import Settings  # noqa: E402

POINTS = 2000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, broker: KafkaBroker, workdir: Path, window: int, wait: float) -> None:
        self.broker, self.workdir = broker, workdir
        self.models = assemble_all(ROOT / ".cache" / "models")
        self.env = {
            "QCC_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "QCC_QDRANT_PATH": str(workdir / "qdrant"),
            "QCC_DATA_DIR": str(workdir / "state"),
            "QCC_MODEL_PATHS": json.dumps(self.models),
            "QCC_WINDOW_MAX_EVENTS": str(window),
            "QCC_WINDOW_MAX_WAIT_SECONDS": str(wait),
            "QCC_LOG_LEVEL": "warning",
        }
        os.environ.update(self.env)
        self.settings = Settings()

    def create_collection(self) -> None:
        client = QdrantClient(path=self.env["QCC_QDRANT_PATH"])
        client.create_collection("bench", vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)})
        for start in range(0, POINTS, 500):
            client.upsert("bench", [qm.PointStruct(id=i, vector={"dense": [1.0] + [0.0] * 383},
                                                   payload={"body": f"document {i} about topic {i % 17}"})
                                    for i in range(start, start + 500)])
        client.close()

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = (self.workdir / "worker.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "connector.cli", "worker"], env={**os.environ},
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    async def produce(self, topic: str, events: list[dict[str, Any]], rate: float | None = None) -> list[tuple[int, int, float]]:
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        sent = []
        try:
            futures = []
            start = time.monotonic()
            for i, event in enumerate(events):
                if rate:
                    delay = start + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                ids = event.get("ids") or [p["id"] for p in event["points"]]
                futures.append((time.time(), await producer.send(topic, json.dumps(event).encode(), key=f"bench/{ids[0]}".encode())))
            for stamp, fut in futures:
                meta = await fut
                sent.append((meta.partition, meta.offset, stamp))
        finally:
            await producer.stop()
        return sent

    async def wait_confirmed(self, consumer: AIOKafkaConsumer, topic: str, sent: list[tuple[int, int, float]]) -> dict[tuple[int, int], float]:
        """Receive verification events until every sent offset is covered; offset -> receive time."""
        pending = {(p, o) for p, o, _ in sent}
        confirmed: dict[tuple[int, int], float] = {}
        while pending:
            batch = await consumer.getmany(timeout_ms=1000)
            now = time.time()
            for messages in batch.values():
                for message in messages:
                    record = json.loads(message.value)
                    if record["topic"] != topic:
                        continue
                    for r in record["ranges"]:
                        for o in range(r["first_offset"], r["last_offset"] + 1):
                            key = (r["partition"], o)
                            if key in pending:
                                pending.discard(key)
                                confirmed[key] = now
        return confirmed


def patch_events(n: int, identical: bool) -> list[dict[str, Any]]:
    return [{"schema_version": 1, "collection": "bench", "op": "set_payload", "ids": [i % POINTS],
             "payload": {"archived": True} if identical else {"seq": i}} for i in range(n)]


def reembed_events(n: int) -> list[dict[str, Any]]:
    return [{"schema_version": 1, "kind": "reembed", "collection": "bench", "vector_name": "dense",
             "points": [{"id": i % POINTS, "text": f"re-embedded text number {i} about topic {i % 17}"}]} for i in range(n)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "qdrant": "embedded local mode on disk (a server behaves differently)",
        "window": {"max_events": args.window, "max_wait_seconds": args.wait},
    }
    with tempfile.TemporaryDirectory(prefix="qcc-bench-") as tmp, KafkaBroker(heap="1g") as broker:
        bench = Bench(broker, Path(tmp), args.window, args.wait)
        bench.create_collection()
        await ensure_topics(bench.settings, partitions=2)
        consumer = AIOKafkaConsumer(bench.settings.verification_topic, bootstrap_servers=broker.bootstrap,
                                    auto_offset_reset="earliest")
        await consumer.start()
        worker = bench.start_worker()
        try:
            # warm-up: the worker joins the group and loads the model
            warm = await bench.produce(bench.settings.patch_topic, patch_events(10, True))
            await bench.wait_confirmed(consumer, bench.settings.patch_topic, warm)
            warm = await bench.produce(bench.settings.reembed_topic, reembed_events(10))
            await bench.wait_confirmed(consumer, bench.settings.reembed_topic, warm)

            for name, identical in (("patch_identical", True), ("patch_distinct", False)):
                events = patch_events(args.patches, identical)
                start = time.time()
                sent = await bench.produce(bench.settings.patch_topic, events)
                await bench.wait_confirmed(consumer, bench.settings.patch_topic, sent)
                elapsed = time.time() - start
                results[name] = {"events": len(events), "seconds": round(elapsed, 2), "events_per_second": round(len(events) / elapsed, 1)}
                print(name, results[name], flush=True)

            events = reembed_events(args.reembeds)
            start = time.time()
            sent = await bench.produce(bench.settings.reembed_topic, events)
            await bench.wait_confirmed(consumer, bench.settings.reembed_topic, sent)
            elapsed = time.time() - start
            results["reembed"] = {"events": len(events), "seconds": round(elapsed, 2), "events_per_second": round(len(events) / elapsed, 1)}
            print("reembed", results["reembed"], flush=True)

            # latency: confirmations are read while producing, at a steady rate below capacity
            events = patch_events(int(args.rate * args.latency_seconds), False)
            confirmed: dict[tuple[int, int], float] = {}
            producing = asyncio.create_task(bench.produce(bench.settings.patch_topic, events, rate=args.rate))
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                now = time.time()
                for messages in batch.values():
                    for message in messages:
                        record = json.loads(message.value)
                        if record["topic"] != bench.settings.patch_topic:
                            continue
                        for r in record["ranges"]:
                            for o in range(r["first_offset"], r["last_offset"] + 1):
                                confirmed.setdefault((r["partition"], o), now)
                if producing.done() and len(confirmed) >= len(events):
                    break
            sent = producing.result()
            latencies = [confirmed[(p, o)] - stamp for p, o, stamp in sent]
            results["latency_patch"] = {
                "rate_events_per_second": args.rate, "events": len(latencies),
                "p50_ms": round(percentile(latencies, 0.5) * 1000, 1), "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
                "max_ms": round(max(latencies) * 1000, 1),
            }
            print("latency", results["latency_patch"], flush=True)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            await consumer.stop()

    # raw fastembed on the same texts, in this process, right after: the ceiling for re-embeds
    from connector.embedder import Embedder

    embedder = Embedder(bench.settings)
    texts = [e["points"][0]["text"] for e in reembed_events(args.reembeds)]
    embedder.embed_sync(bench.settings.dense_model, "dense", texts[:32])
    start = time.time()
    for i in range(0, len(texts), args.window):
        embedder.embed_sync(bench.settings.dense_model, "dense", texts[i : i + args.window])
    raw = len(texts) / (time.time() - start)
    results["raw_fastembed_texts_per_second"] = round(raw, 1)
    results["reembed_vs_raw_fastembed"] = round(results["reembed"]["events_per_second"] / raw, 3)
    print("raw fastembed", round(raw, 1), "ratio", results["reembed_vs_raw_fastembed"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=20_000)
    parser.add_argument("--reembeds", type=int, default=3_000)
    parser.add_argument("--rate", type=float, default=300.0, help="events/s for the latency run")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--wait", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "e2e.json")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
