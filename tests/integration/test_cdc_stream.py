"""Debezium change events through a real broker and worker (the cdc agent, QCC_CDC_TOPICS and
QCC_CDC_MAPPING): snapshot rows, inserts, updates of a price and of a text, a text set to NULL,
a key moved, deletes with Debezium's tombstones, a heartbeat, and records the mapping cannot take.
The collection ends equal to the table, every record is in a verification event, and the worker
embedded exactly the texts that changed."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.dev.spawn import free_port
from connector.embedding.embedder import Embedder
from connector.settings import DEFAULT_DENSE_MODEL, Settings
from tests.integration.harness import Stack, Worker, all_covered, metric_samples, produce, read_topic
from tests.integration.test_audit import audit, problems
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration

MAPPING = """\
tables:
  public.products:
    collection: products
    key: [id]
    payload: {title: title, description: description, price: price, tags: tags}
    texts:
      description: {vector: body}
      title: {vector: title}
"""
FIELDS = [{"field": "id", "type": "int32", "optional": False},
          {"field": "title", "type": "string", "optional": True},
          {"field": "description", "type": "string", "optional": True},
          {"field": "price", "type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
           "parameters": {"scale": "2"}},
          {"field": "tags", "type": "array", "optional": True, "items": {"type": "string"}}]
ROW_SCHEMA = {"type": "struct", "optional": True, "fields": FIELDS}
ENVELOPE_SCHEMA = {"type": "struct", "fields": [{**ROW_SCHEMA, "field": "before"}, {**ROW_SCHEMA, "field": "after"},
                                                {"field": "source", "type": "struct", "fields": []},
                                                {"field": "op", "type": "string"}]}


def cents(price: float | None) -> str | None:
    if price is None:
        return None
    unscaled = round(price * 100)
    return base64.b64encode(unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)).decode()


def wire(row: dict[str, Any] | None, schemas: bool) -> dict[str, Any] | None:
    """A row as Debezium's JSON converter writes it: with schemas, the price as a base64 decimal."""
    if row is None or not schemas:
        return row
    return {**row, "price": cents(row["price"])}


def change(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, *, schemas: bool = True,
           table: str = "products") -> tuple[bytes, bytes]:
    row = before if after is None else after
    assert row is not None
    key = json.dumps({"id": row["id"]}).encode()
    payload = {"before": wire(before, schemas), "after": wire(after, schemas), "op": op,
               "source": {"connector": "postgresql", "db": "shop", "schema": "public", "table": table, "lsn": 1}}
    value = {"schema": ENVELOPE_SCHEMA, "payload": payload} if schemas else payload
    return key, json.dumps(value).encode()


def product(pid: int, title: str | None, description: str | None, price: float | None = 9.5) -> dict[str, Any]:
    return {"id": pid, "title": title, "description": description, "price": price, "tags": ["t", str(pid)]}


def history() -> tuple[list[tuple[bytes | None, bytes | None]], dict[int, dict[str, Any]], int]:
    """The records, the table they leave behind, and how many texts they embed."""
    rows = {i: product(i, f"product {i}", f"the description of product {i}") for i in range(1, 6)}
    records: list[tuple[bytes | None, bytes | None]] = [change("r", None, rows[i]) for i in rows]  # snapshot: 10 texts
    embedded = 10
    for i in (6, 7):  # inserts, one of them schemaless: 4 texts
        rows[i] = product(i, f"new product {i}", f"fresh text for {i}")
        records.append(change("c", None, rows[i], schemas=i == 6))
        embedded += 2
    old, rows[1] = rows[1], {**rows[1], "price": 12.25}  # a price: nothing to embed
    records.append(change("u", old, rows[1]))
    old, rows[2] = rows[2], {**rows[2], "description": "a rewritten description of two"}  # one text
    records.append(change("u", old, rows[2]))
    embedded += 1
    old, rows[3] = rows[3], {**rows[3], "title": None}  # a text gone: its vector and key go
    records.append(change("u", old, rows[3]))
    records.append(change("u", rows[5], dict(rows[5])))  # nothing changed
    old = rows.pop(4)
    records += [change("d", old, None), (json.dumps({"id": 4}).encode(), None)]  # Debezium's delete + tombstone
    old = rows.pop(7)
    rows[8] = {**old, "id": 8}  # the key moved: Debezium sends a delete (and tombstone) of the old key, a create
    records += [change("d", old, None), (json.dumps({"id": 7}).encode(), None),
                change("c", None, rows[8], schemas=False)]
    embedded += 2
    records += [(b"hb", b'{"ts_ms": 1764700000000}'),  # a heartbeat
                change("c", None, product(9, "x", "y"), table="orders"),  # no mapping: dead-lettered
                (b"junk", b"not json")]  # not a change event: dead-lettered
    return records, rows, embedded


def cosine(a: list[float], b: tuple[float, ...]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@only_targets("local", "rest")
async def test_a_table_streamed_by_debezium_ends_equal_in_qdrant(kafka, model_env, model_paths, tmp_path: Path,
                                                                  qdrant_target: QdrantTarget) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING)
    port = free_port()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target)
    cdc_topic = f"shop.public.products-{stack.name}"
    stack.extra_env.update({"QCC_CDC_TOPICS": cdc_topic, "QCC_CDC_MAPPING": str(mapping), "QCC_HTTP_PORT": str(port)})
    await stack.create_topics(partitions=1)
    client = qdrant_target.client()
    client.create_collection("products", vectors_config={
        name: qm.VectorParams(size=384, distance=qm.Distance.COSINE) for name in ("body", "title")})
    client.close()
    records, table, embedded = history()
    sent = await produce(kafka.bootstrap, cdc_topic, records)
    worker = Worker(stack)
    try:
        verifications = await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"],
                                         until=all_covered(sent), timeout=180)
        samples = await metric_samples(port, lambda s: ("qdrant_connector_cdc_skipped_total",
                                                        (("reason", "heartbeat"),)) in s)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    assert all(v["topic"] == cdc_topic for v in verifications)
    dead = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], until=lambda d: len(d) >= 2)
    assert sorted(d["error"]["code"] for d in dead) == ["not_a_change_event", "unmapped_change"]
    code, report = audit(stack)  # the trail of the CDC topic is proven like any other
    assert code == 0, problems(report)
    assert {p["topic"] for p in report["partitions"] if p["to_offset"] > p["from_offset"]} == {cdc_topic}
    applied = [v for v in verifications if v["applied_event_count"]]
    assert applied
    assert all(v["verification"]["status"] == "verified" for v in applied), json.dumps(applied)[:3000]
    # one embedding per text written, none for the price, the emptied title or the unchanged row
    texts = sum(value for (name, _), value in samples.items() if name == "qdrant_connector_texts_embedded_total")
    assert texts == embedded
    skipped = {dict(labels)["reason"]: value for (name, labels), value in samples.items()
               if name == "qdrant_connector_cdc_skipped_total"}
    assert skipped == {"heartbeat": 1, "tombstone": 2, "unchanged": 1}

    client = qdrant_target.client()
    try:
        points = {p.id: p for p in client.scroll("products", limit=100, with_vectors=True)[0]}
    finally:
        client.close()
    assert sorted(points) == sorted(table)
    for pid, row in table.items():
        expected = {k: v for k, v in row.items() if k != "id" and v is not None}
        assert points[pid].payload == expected, pid
    embedder = Embedder(Settings(model_paths=model_paths))
    try:
        for pid, row in table.items():
            vectors = points[pid].vector
            assert isinstance(vectors, dict)
            for column, vector in (("title", "title"), ("description", "body")):
                if row[column] is None:
                    assert vector not in vectors, (pid, vector)
                    continue
                [fresh] = embedder.embed_sync(DEFAULT_DENSE_MODEL, "dense", [row[column]])
                assert cosine(vectors[vector], fresh) >= 0.999, (pid, vector)  # type: ignore[arg-type]
    finally:
        embedder.close()
