"""A broker SIGKILLed for 15 s while a worker is under load: the worker waits, catches up with
the exact state, and says so in a few lines (an outage is one warning when it begins, a summary
at most every 30 s, one line when it ends), every line of them JSON."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.dev.broker import KafkaBroker
from connector.dev.spawn import free_port
from tests.integration.harness import Stack, Worker, all_covered, covered_offsets, produce, read_topic, upserts

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 15
MOST_LINES = 10  # at warning or above, over the whole run


def _lines(worker: Worker) -> list[dict[str, object]]:
    return [json.loads(line) for line in worker.output().splitlines() if line.strip()]


async def test_broker_killed_under_load(model_env: dict[str, str], tmp_path: Path) -> None:
    broker = KafkaBroker(data_dir=tmp_path / "kafka").start()
    try:
        stack = Stack(broker.bootstrap, tmp_path, model_env,
                      extra_env={"QCC_LOG_FORMAT": "json", "QCC_HTTP_PORT": str(free_port()),
                                 "QCC_HTTP_HOST": "127.0.0.1"})
        await stack.create_topics()
        local = QdrantClient(path=str(tmp_path / "qdrant"))
        local.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.EUCLID))
        local.close()
        topic = stack.env["QCC_PATCH_TOPIC"]
        sent = await produce(broker.bootstrap, topic, upserts(0, 6000, value=1.0))
        worker = Worker(stack)
        try:
            await worker.wait_for_line("applied", timeout=120)  # under load: the first windows are in
            assert broker.process is not None
            broker.process.kill()  # SIGKILL: no goodbye to the clients
            broker.process.wait()
            broker.process = None
            killed = time.monotonic()
            await worker.wait_for_line("Kafka broker unreachable", timeout=60)
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - killed)))  # the outage's length
            broker.start()
            sent += await produce(broker.bootstrap, topic, upserts(0, 500, value=2.0))
            verifications = await read_topic(broker.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"],
                                             until=all_covered(sent), timeout=300)
            await worker.wait_for_line("Kafka broker answers again", timeout=60)
        finally:
            code = worker.stop()
        assert code == 0, worker.output()[-3000:]

        lines = _lines(worker)  # each line a JSON object (json.loads raises on any other)
        loud = [line for line in lines if line["level"] in ("warning", "error", "critical")]
        by_message = Counter(f"{line['logger']}: {str(line['message'])[:100]}" for line in loud)
        print(f"{len(lines)} lines, {len(loud)} at warning or above: {dict(by_message)}")
        assert len(loud) <= MOST_LINES, by_message.most_common(20)

        # every event applied, the last value of each point in Qdrant
        covered = covered_offsets(verifications)
        assert all(offset in covered.get(partition, ()) for partition, offset in sent)
        assert all(v["verification"]["status"] == "verified" for v in verifications)
        local = QdrantClient(path=str(tmp_path / "qdrant"))
        try:
            points, _ = local.scroll("docs", limit=10_000, with_vectors=True)
        finally:
            local.close()
        state = {p.id: list(p.vector) for p in points}  # type: ignore[arg-type]
        expected = {i: [2.0 if i < 500 else 1.0, float(i)] for i in range(6000)}
        assert state == expected
        applied = Counter((r["partition"], o) for v in verifications for r in v["ranges"]
                          for o in range(r["first_offset"], r["last_offset"] + 1))
        print(f"offsets confirmed twice: {sum(1 for n in applied.values() if n > 1)}")
    finally:
        broker.cleanup()
