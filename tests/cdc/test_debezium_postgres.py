"""End to end: a PostgreSQL table (wal_level=logical, REPLICA IDENTITY FULL), Debezium's
PostgreSQL connector 3.6.1.Final in Kafka Connect standalone, the worker, the Qdrant server.

A snapshot of existing rows, inserts, price updates, text updates, a text set to NULL, deletes,
a Debezium restart and a worker SIGKILL mid-stream. The collection ends equal to the table
(payload as Debezium's types convert, vectors of the current texts at cosine >= 0.999 to a fresh
embedding), every record on the topic is in a verification event, nothing is dead-lettered, and
while no worker was killed the worker embedded exactly the texts that changed (none for prices).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from qdrant_client import models as qm

from connector.dev import debezium, postgres
from connector.dev.debezium import DebeziumConnect
from connector.dev.postgres import PostgresServer
from connector.dev.spawn import free_port
from connector.embedding.embedder import Embedder
from connector.settings import DEFAULT_DENSE_MODEL, Settings
from tests.integration.harness import Stack, Worker, covered_offsets, metric_samples, read_topic
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration

MAPPING = """\
tables:
  public.products:
    collection: products
    key: [id]
    texts:
      description: {vector: body}
      title: {vector: title}
"""
TABLE = """
CREATE TABLE products (id int PRIMARY KEY, title text, description text, price numeric(10,2),
                       released date, attrs jsonb, tags text[]);
ALTER TABLE products REPLICA IDENTITY FULL;
"""
EMBEDDED = "qdrant_connector_texts_embedded_total"
PARTITIONS = 2


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    reason = postgres.unavailable()
    if reason:
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


def insert(first: int, count: int) -> str:
    rows = [f"({i}, 'product {i}', 'the description of product {i}', {i}.25, DATE '2024-01-01' + {i}, "
            f"'{{\"size\": {i}, \"colors\": [\"red\"]}}', ARRAY['t{i % 3}', 'all'])"
            for i in range(first, first + count)]
    return f"INSERT INTO products VALUES {', '.join(rows)};"


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def until_caught_up(pg: PostgresServer, stack: Stack, topic: str, marker: int,
                          timeout: float = 240) -> list[dict[str, Any]]:
    """Insert a marker row, then wait until Debezium wrote it and every record on the topic up to
    then is in a verification event; the verification events."""
    pg.sql(insert(marker, 1))
    deadline = time.monotonic() + timeout
    client = stack.qdrant.client() if stack.qdrant else None
    assert client is not None
    try:
        while not client.retrieve("products", [marker]):
            assert time.monotonic() < deadline, "the marker row never reached Qdrant"
            await asyncio.sleep(0.3)
    finally:
        client.close()
    ends = await end_offsets(stack.bootstrap, topic)

    def covered(verifications: list[dict[str, Any]]) -> bool:
        have = covered_offsets([v for v in verifications if v["topic"] == topic])
        return all(set(range(end)) <= have.get(p, set()) for p, end in ends.items())

    return await read_topic(stack.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=covered,
                            timeout=max(1.0, deadline - time.monotonic()))


def embedded(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return sum(value for (name, _), value in samples.items() if name == EMBEDDED)


def cosine(a: list[float], b: tuple[float, ...]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@only_targets("rest")
async def test_a_postgres_table_through_debezium_ends_equal_in_qdrant(
        pg: PostgresServer, kafka, model_env, model_paths, tmp_path: Path, qdrant_target: QdrantTarget) -> None:
    reason = debezium.unavailable()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    pg.sql(TABLE + insert(1, 40))  # the rows Debezium's snapshot reads
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING)
    port = free_port()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target)
    prefix = f"shop{stack.name}"
    topic = f"{prefix}.public.products"
    stack.extra_env.update({"QCC_CDC_TOPICS": topic, "QCC_CDC_MAPPING": str(mapping), "QCC_HTTP_PORT": str(port)})
    await stack.create_topics(partitions=PARTITIONS)  # the CDC topic too, before Debezium writes to it
    client = qdrant_target.client()
    client.create_collection("products", vectors_config={
        name: qm.VectorParams(size=384, distance=qm.Distance.COSINE) for name in ("body", "title")})
    client.close()
    dbz = DebeziumConnect(pg, kafka.bootstrap, ["public.products"], prefix=prefix, folder=tmp_path / "debezium")
    dbz.start()
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    worker = Worker(stack, env={"QCC_FAILPOINTS_DIR": str(failpoints)})
    try:
        # the snapshot and the marker row: every text embedded once
        await until_caught_up(pg, stack, topic, marker=1000)
        texts = embedded(await metric_samples(port))
        assert texts == 2 * 41
        # inserts, prices, texts: only new and changed texts are embedded
        pg.sql(insert(41, 10) + "UPDATE products SET price = price * 2 WHERE id <= 20;"
               "UPDATE products SET description = 'rewritten ' || id WHERE id BETWEEN 21 AND 25;"
               "UPDATE products SET title = NULL WHERE id IN (26, 27);"
               "DELETE FROM products WHERE id BETWEEN 30 AND 34;")
        await until_caught_up(pg, stack, topic, marker=1001)
        assert embedded(await metric_samples(port)) == texts + 2 * 10 + 5 + 2  # inserts, descriptions, marker
        texts = embedded(await metric_samples(port))
        pg.sql("UPDATE products SET price = price + 1, tags = ARRAY['sale'];")  # every row, no text
        await until_caught_up(pg, stack, topic, marker=1002)
        assert embedded(await metric_samples(port)) == texts + 2  # the marker's two texts, nothing else

        # Debezium restarted: it resumes from its offsets, without a second snapshot
        dbz.stop()
        pg.sql("UPDATE products SET description = 'while Debezium was down ' || id WHERE id BETWEEN 41 AND 45;")
        dbz.start()
        # the worker SIGKILLed mid-stream: once it confirmed a window of new rows, its batch
        # requests are held (the hold-apply failpoint), the rows are rewritten, and it is killed
        # with those changes in hand; the next worker replays what was not committed
        before = await end_offsets(kafka.bootstrap, topic)
        pg.sql(insert(100, 200))

        def confirmed_some(verifications: list[dict[str, Any]]) -> bool:
            return any(v["topic"] == topic and r["last_offset"] >= before.get(r["partition"], 0)
                       for v in verifications for r in v["ranges"])

        await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=confirmed_some)
        # every insert confirmed before the hold, so the window held is one of the rewrite
        await until_caught_up(pg, stack, topic, marker=1004)
        (failpoints / "hold-apply").touch()
        rewritten = await end_offsets(kafka.bootstrap, topic)
        pg.sql("UPDATE products SET description = 'again ' || id WHERE id >= 100;")
        await worker.wait_for_line("failpoint hold-apply: holding")
        worker.kill()
        (failpoints / "hold-apply").unlink()
        # nothing written after the hold was confirmed (else this would test no replay)
        after = await end_offsets(kafka.bootstrap, topic)
        assert sum(after.values()) > sum(rewritten.values())
        so_far = await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], timeout=3)
        trail = covered_offsets([v for v in so_far if v["topic"] == topic])
        assert not any(set(range(rewritten[p], end)) & trail.get(p, set()) for p, end in after.items())
        worker = Worker(stack)
        verifications = await until_caught_up(pg, stack, topic, marker=1003)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
        dbz.cleanup()

    applied = [v for v in verifications if v["topic"] == topic and v["applied_event_count"]]
    assert all(v["verification"]["status"] == "verified" for v in applied), json.dumps(applied)[:3000]
    dead = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=3)
    assert dead == []
    rows = {row["id"]: row for row in json.loads(pg.sql("SELECT json_agg(p ORDER BY id) FROM products p"))}
    client = qdrant_target.client()
    try:
        points = {p.id: p for p in client.scroll("products", limit=1000, with_vectors=True)[0]}
    finally:
        client.close()
    assert sorted(points) == sorted(rows)
    for pid, row in rows.items():
        assert points[pid].payload == {k: v for k, v in row.items() if v is not None}, pid
    embedder = Embedder(Settings(model_paths=model_paths))
    try:
        for column, vector in (("title", "title"), ("description", "body")):
            ids = [pid for pid, row in rows.items() if row[column] is not None]
            fresh = embedder.embed_sync(DEFAULT_DENSE_MODEL, "dense", [rows[pid][column] for pid in ids])
            for pid, expected in zip(ids, fresh, strict=True):
                stored = points[pid].vector
                assert isinstance(stored, dict)
                assert cosine(stored[vector], expected) >= 0.999, (pid, vector)  # type: ignore[arg-type]
            assert all(vector not in (points[pid].vector or {}) for pid, row in rows.items() if row[column] is None)
    finally:
        embedder.close()
    print(f"end to end with Debezium: {time.monotonic() - started:.0f} s")
