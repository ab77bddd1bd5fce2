"""End to end: a PostgreSQL table (wal_level=logical, REPLICA IDENTITY FULL), Debezium's
PostgreSQL connector 3.6.1.Final in Kafka Connect standalone, the worker, the Qdrant server.

A snapshot of existing rows, inserts, price updates, text updates, a text set to NULL, deletes,
a Debezium restart and a worker SIGKILL mid-stream. The collection ends equal to the table
(payload as Debezium's types convert, vectors of the current texts at cosine >= 0.999 to a fresh
embedding), every record on the topic is in a verification event, nothing is dead-lettered, and
while no worker was killed the worker embedded exactly the texts that changed (none for prices).

Beside it a second table of TOASTed texts (real prose, stored out of line) under PostgreSQL's
default REPLICA IDENTITY, then FULL: price updates, for which Debezium sends its placeholder
instead of the unchanged texts, leave payloads and vectors equal to the table; a text over
QCC_CDC_MAX_TEXT_CHARS costs its row nothing; a row dead-lettered at first (its record over
QCC_MAX_EVENT_BYTES) is written as far as it is sent by its next change, named as lacking its
text, and whole by the one after.

A third table's text column is chunked (docs/design.md, "Chunked documents"): its rows become chunk
points, an edit in the middle of a text embeds only the chunks it changed, a title changed while the
TOASTed text is not sent reaches every chunk, and the chunks end as the chunking of each row's text.
"""

from __future__ import annotations

import asyncio
import inspect
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
from connector.domain.chunking import Chunker
from connector.domain.debezium import DEBEZIUM_PLACEHOLDER
from connector.domain.documents import CHUNK_KEY
from connector.embedding.embedder import Embedder
from connector.settings import DEFAULT_DENSE_MODEL, ChunkedField, Settings
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
  public.articles:
    collection: articles
    key: [id]
    payload: {id: id, title: title, body: body, price: price}   # not raw
    texts:
      body: {vector: body}
      title: {vector: title}
  public.wiki:
    collection: wiki
    key: [id]
    texts:
      body: {chunked: true}
"""
TABLE = """
CREATE TABLE products (id int PRIMARY KEY, title text, description text, price numeric(10,2),
                       released date, attrs jsonb, tags text[]);
ALTER TABLE products REPLICA IDENTITY FULL;
"""
EMBEDDED = "qdrant_connector_texts_embedded_total"
PARTITIONS = 2
MAX_EVENT_BYTES = 300_000


def prose() -> str:
    """Real, varied English (the standard library's docstrings), which does not compress below
    PostgreSQL's TOAST threshold as repeated characters would."""
    import argparse
    import asyncio
    import collections
    import email.message
    import logging
    import pydoc
    import typing
    import unittest

    docs = []
    for module in (argparse, asyncio, collections, email.message, logging, pydoc, typing, unittest, inspect):
        docs.append(inspect.getdoc(module) or "")
        docs += [inspect.getdoc(getattr(module, name)) or "" for name in sorted(vars(module))
                 if not name.startswith("_") and callable(getattr(module, name))]
    return "\n\n".join(doc for doc in dict.fromkeys(docs) if doc)


def articles() -> str:
    """Rows with texts of 12,000 characters, TOASTed; row 5's is 120,000 characters (over
    QCC_CDC_MAX_TEXT_CHARS); row 6 has a column of 448 KB, so its first record is over the
    worker's QCC_MAX_EVENT_BYTES (dead-lettered)."""
    text = prose().replace("$", "")  # quoted as $t$...$t$
    assert len(text) >= 60_000, len(text)
    body = [text[i * 12_000:(i + 1) * 12_000] for i in range(5)]
    rows = [f"({i}, 'article {i}', $t${body[i - 1]}$t$, {i}, NULL)" for i in range(1, 5)]
    rows.append(f"(5, 'article 5', repeat($t${body[4]}$t$, 10), 5, NULL)")
    rows.append(f"(6, 'article 6', $t${body[0][::-1]}$t$, 6, (SELECT string_agg(md5(i::text), '') "
                "FROM generate_series(1, 14000) i))")
    return ("CREATE TABLE articles (id int PRIMARY KEY, title text, body text, price int, raw text);"
            f"INSERT INTO articles VALUES {', '.join(rows)};"
            "CREATE TABLE wiki (id int PRIMARY KEY, title text, body text);"
            f"INSERT INTO wiki VALUES (1, 'page 1', $t${text[:12_000]}$t$), (2, 'page 2', $t${text[-12_000:]}$t$);")


WIKI_EDIT = "A new sentence about kumquats, inserted in the middle of the page. "


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


async def until_caught_up(pg: PostgresServer, stack: Stack, topic: str, marker: int, timeout: float = 240,
                          also: str | tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Insert a marker row, then wait until Debezium wrote it and every record on the topic (and on
    ``also``) up to then is in a verification event; the verification events."""
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
    also = (also,) if isinstance(also, str) else also
    ends = {name: await end_offsets(stack.bootstrap, name) for name in (topic, *also)}

    def covered(verifications: list[dict[str, Any]]) -> bool:
        for name, last in ends.items():
            have = covered_offsets([v for v in verifications if v["topic"] == name])
            if not all(set(range(end)) <= have.get(p, set()) for p, end in last.items()):
                return False
        return True

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
    pg.sql(TABLE + insert(1, 40) + articles())  # the rows Debezium's snapshot reads
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING)
    port = free_port()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target)
    prefix = f"shop{stack.name}"
    topic, toasted, wiki = f"{prefix}.public.products", f"{prefix}.public.articles", f"{prefix}.public.wiki"
    stack.extra_env.update({"QCC_CDC_TOPICS": f"{topic},{toasted},{wiki}", "QCC_CDC_MAPPING": str(mapping),
                            "QCC_HTTP_PORT": str(port), "QCC_MAX_EVENT_BYTES": str(MAX_EVENT_BYTES)})
    await stack.create_topics(partitions=PARTITIONS)  # the CDC topics too, before Debezium writes to them
    client = qdrant_target.client()
    for collection in ("products", "articles"):
        client.create_collection(collection, vectors_config={
            name: qm.VectorParams(size=384, distance=qm.Distance.COSINE) for name in ("body", "title")})
    client.create_collection("wiki", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
    client.close()
    pages = {row["id"]: row for row in json.loads(pg.sql("SELECT json_agg(w) FROM wiki w"))}
    sizes = ChunkedField(text_field="body")  # the mapping's chunked column takes the default chunk sizes
    chunker = Embedder(Settings(model_paths=model_paths)).chunker(DEFAULT_DENSE_MODEL, sizes.max_tokens,
                                                                  sizes.overlap_tokens)
    held = {pid: {c.sha256 for c in chunker.chunks(page["body"])} for pid, page in pages.items()}
    edited = pages[1]["body"][:6000] + WIKI_EDIT + pages[1]["body"][6000:]
    fresh = {c.sha256 for c in chunker.chunks(edited)} - held[1]
    dbz = DebeziumConnect(pg, kafka.bootstrap, ["public.products", "public.articles", "public.wiki"], prefix=prefix,
                          folder=tmp_path / "debezium")
    dbz.start()
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    worker = Worker(stack, env={"QCC_FAILPOINTS_DIR": str(failpoints)})
    try:
        # the snapshot and the marker row: every text embedded once (articles 1-5: row 6 is over
        # QCC_MAX_EVENT_BYTES; row 5's text over QCC_CDC_MAX_TEXT_CHARS is embedded from its first characters)
        await until_caught_up(pg, stack, topic, marker=1000, also=(toasted, wiki))
        texts = embedded(await metric_samples(port))
        assert texts == 2 * 41 + 2 * 5 + len(held[1] | held[2])  # the pages: each chunk
        # inserts, prices, texts: only new and changed texts are embedded. The articles' prices,
        # under the default REPLICA IDENTITY: Debezium sends its placeholder for the TOASTed texts,
        # so each is a merge that re-embeds the title it was sent (row 6, not in Qdrant, is written
        # without its text), then row 6's column too large for an event set to NULL: its title again
        pg.sql(insert(41, 10) + "UPDATE products SET price = price * 2 WHERE id <= 20;"
               "UPDATE products SET description = 'rewritten ' || id WHERE id BETWEEN 21 AND 25;"
               "UPDATE products SET title = NULL WHERE id IN (26, 27);"
               "DELETE FROM products WHERE id BETWEEN 30 AND 34;"
               "UPDATE articles SET price = price + 10; UPDATE articles SET raw = NULL WHERE id = 6;"
               f"UPDATE wiki SET body = overlay(body placing '{WIKI_EDIT}' from 6001 for 0) WHERE id = 1;"
               "UPDATE wiki SET title = 'page two' WHERE id = 2;")
        await until_caught_up(pg, stack, topic, marker=1001, also=(toasted, wiki))
        # inserts, descriptions, marker; the articles' titles; of page 1 the chunks the edit changed
        assert 0 < len(fresh) < len(held[1]) / 2
        assert embedded(await metric_samples(port)) == texts + 2 * 10 + 5 + 2 + 6 + 1 + len(fresh)
        texts = embedded(await metric_samples(port))
        # every row, no text; under REPLICA IDENTITY FULL, article 6 (lacking its text) becomes whole
        pg.sql("ALTER TABLE articles REPLICA IDENTITY FULL;")
        pg.sql("UPDATE products SET price = price + 1, tags = ARRAY['sale']; UPDATE articles SET price = price + 1;")
        await until_caught_up(pg, stack, topic, marker=1002, also=toasted)
        assert embedded(await metric_samples(port)) == texts + 2 + 2  # the marker's two texts, article 6's two

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
        verifications = await until_caught_up(pg, stack, topic, marker=1003, also=(toasted, wiki))
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
        dbz.cleanup()

    applied = [v for v in verifications if v["topic"] in (topic, toasted, wiki) and v["applied_event_count"]]
    assert all(v["verification"]["status"] == "verified" for v in applied), json.dumps(applied)[:3000]
    dead = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=3)
    assert [(d["source"]["topic"], d["error"]["code"]) for d in dead] == [(toasted, "event_too_large")]
    # what the verification events say: article 6 lacked its text while it was sent as the placeholder
    assert {u["id"] for v in verifications for u in v["verification"]["unavailable"]} == {6}
    # every article's body is over the model's window (it reads ~2,000 of 12,000 characters), article 5's
    # over QCC_CDC_MAX_TEXT_CHARS too; the chunked pages are not cut
    cut = {(c["id"], c["vector"]): (c["chars"], c["embedded_chars"]) for v in verifications for c in v["texts_cut"]}
    assert set(cut) == {(i, "body") for i in range(1, 7)}
    assert cut[(5, "body")][0] == 120_000
    assert all(read < 12_000 for _, read in cut.values())
    sent = await read_topic(kafka.bootstrap, toasted, timeout=3)
    assert DEBEZIUM_PLACEHOLDER in json.dumps(sent)  # the texts were TOASTed: else this would prove nothing
    assert_equal(pg, qdrant_target, model_paths, "articles", ("title", "title"), ("body", "body"))
    assert_equal(pg, qdrant_target, model_paths, "products", ("title", "title"), ("description", "body"))
    assert_chunked(pg, qdrant_target, chunker)
    print(f"end to end with Debezium: {time.monotonic() - started:.0f} s")


def assert_chunked(pg: PostgresServer, qdrant_target: QdrantTarget, chunker: Chunker) -> None:
    """The wiki collection holds each row as the chunking of its text, its other columns on each chunk."""
    rows = {row["id"]: row for row in json.loads(pg.sql("SELECT json_agg(w) FROM wiki w"))}
    assert rows[2]["title"] == "page two"
    assert WIKI_EDIT in rows[1]["body"]
    client = qdrant_target.client()
    try:
        points = client.scroll("wiki", limit=1000, with_payload=True)[0]
    finally:
        client.close()
    for pid, row in rows.items():
        chunks = sorted((p.payload[CHUNK_KEY] for p in points if p.payload and
                         p.payload[CHUNK_KEY]["document_id"] == str(pid)), key=lambda c: c["index"])
        assert [c["sha256"] for c in chunks] == [c.sha256 for c in chunker.chunks(row["body"])], pid
    assert len(points) == sum(len(chunker.chunks(row["body"])) for row in rows.values())  # no stale chunk
    assert all(p.payload and p.payload["title"] == rows[int(p.payload[CHUNK_KEY]["document_id"])]["title"]
               and "body" not in p.payload for p in points)


def assert_equal(pg: PostgresServer, qdrant_target: QdrantTarget, model_paths: dict[str, str], table: str,
                 *texts: tuple[str, str]) -> None:
    """The collection named as the table holds its rows: payloads as Debezium converts them, and per
    text column (column, vector) a vector at cosine >= 0.999 to a fresh embedding of the whole text."""
    rows = {row["id"]: row for row in json.loads(pg.sql(f"SELECT json_agg(p ORDER BY id) FROM {table} p"))}
    client = qdrant_target.client()
    try:
        points = {p.id: p for p in client.scroll(table, limit=1000, with_vectors=True)[0]}
    finally:
        client.close()
    if table == "articles":  # its mapping leaves the column raw out
        rows = {pid: {k: v for k, v in row.items() if k != "raw"} for pid, row in rows.items()}
    assert sorted(points) == sorted(rows)
    for pid, row in rows.items():
        assert points[pid].payload == {k: v for k, v in row.items() if v is not None}, pid
    embedder = Embedder(Settings(model_paths=model_paths))
    try:
        for column, vector in texts:
            ids = [pid for pid, row in rows.items() if row[column] is not None]
            fresh = embedder.embed_sync(DEFAULT_DENSE_MODEL, "dense", [rows[pid][column] for pid in ids])
            for pid, expected in zip(ids, fresh, strict=True):
                stored = points[pid].vector
                assert isinstance(stored, dict)
                assert cosine(stored[vector], expected) >= 0.999, (pid, vector)  # type: ignore[arg-type]
            assert all(vector not in (points[pid].vector or {}) for pid, row in rows.items() if row[column] is None)
    finally:
        embedder.close()
