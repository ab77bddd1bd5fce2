"""Debezium input: events per second and embeddings computed, for a table's snapshot and for
updates of it, through the connector's cdc agent (in this process) on a Qdrant server.

    .venv/bin/python -m bench.cdc [--rows 2000] [--repeats 3] [--grpc]

Each repeat: a snapshot of ``rows`` rows (two text columns each, so two embeddings a row), then
the same ``rows`` updates twice, alternating: with the old row (``REPLICA IDENTITY FULL``: only
changed keys are written and only changed texts embedded) and without it (Postgres' default:
every update is the whole row, every text embedded). Of the updates 70% change a price, 20% the
description, 10% the title, as a catalogue's are. The records are made here in the JSON
converter's shape with schemas, as Debezium 3.6 writes them for such a table (tests/cdc runs the
real Debezium); the throughput of Debezium itself is not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from qdrant_client import models as qm

from bench.common import Confirmations, Context, InProcessConnector, QdrantTarget, produce
from connector.dev.broker import KafkaBroker
from connector.dev.qdrant_server import QdrantServer
from connector.embedding.offline_model import assemble_all
from connector.metrics import TEXTS_EMBEDDED

MAPPING = """\
tables:
  public.products:
    collection: products
    key: [id]
    texts: {title: {vector: title}, description: {vector: body}}
"""
DECIMAL = {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
           "parameters": {"scale": "2"}}
ROW = {"type": "struct", "optional": True, "fields": [
    {"field": "id", "type": "int32"}, {"field": "title", "type": "string", "optional": True},
    {"field": "description", "type": "string", "optional": True}, {"field": "price", **DECIMAL}]}
SCHEMA = {"type": "struct", "fields": [{**ROW, "field": "before"}, {**ROW, "field": "after"},
                                       {"field": "source", "type": "struct", "fields": []},
                                       {"field": "op", "type": "string"}]}
WORDS = ["lamp", "desk", "warm", "light", "oak", "steel", "chair", "soft", "table", "bright", "round", "tall",
         "small", "green"]


def row(i: int, version: int = 0) -> dict[str, Any]:
    words = [WORDS[(i * 3 + j + version) % len(WORDS)] for j in range(6 + i % 5)]
    return {"id": i, "title": f"{words[0]} {words[1]} {i}", "description": " ".join(words) + f" v{version}",
            "price": base64.b64encode((999 + i).to_bytes(4, "big", signed=True)).decode()}


def record(op: str, before: dict[str, Any] | None, after: dict[str, Any]) -> tuple[bytes, bytes]:
    payload = {"before": before, "after": after, "op": op,
               "source": {"connector": "postgresql", "db": "shop", "schema": "public", "table": "products"}}
    return json.dumps({"id": after["id"]}).encode(), json.dumps({"schema": SCHEMA, "payload": payload}).encode()


def updates(rows: int, with_before: bool) -> tuple[list[tuple[bytes, bytes]], int]:
    """The update records and how many texts they change."""
    out, changed = [], 0
    for i in range(rows):
        old = row(i)
        new = dict(old)
        if i % 10 < 7:
            new["price"] = base64.b64encode((1999 + i).to_bytes(4, "big", signed=True)).decode()
        elif i % 10 < 9:
            new["description"] = row(i, 1)["description"]
            changed += 1
        else:
            new["title"] = f"renamed {i}"
            changed += 1
        out.append(record("u", old if with_before else None, new))
    return out, changed


async def stream(ctx: Context, target: QdrantTarget, mapping: Path, records: list[tuple[bytes, bytes]],
                 snapshot: list[tuple[bytes, bytes]] | None = None) -> tuple[float, int]:
    """Events per second of ``records`` (after ``snapshot``, untimed, when given) and texts embedded."""
    client = await target.fresh_client(ctx.scratch("qdrant"))
    await client.create_collection("products", vectors_config={
        name: qm.VectorParams(size=384, distance=qm.Distance.COSINE) for name in ("title", "body")})
    topic = f"cdc-{time.monotonic_ns()}"
    settings = ctx.settings("cdc", cdc_topics=[topic], cdc_mapping=mapping)
    try:
        async with InProcessConnector(settings, client), Confirmations(ctx.bootstrap,
                                                                       settings.verification_topic) as seen:
            if snapshot:
                await seen.wait(topic, await produce(ctx.bootstrap, topic, snapshot))
            else:  # a first record, untimed: the model loads and the partitions are assigned
                await seen.wait(topic, await produce(ctx.bootstrap, topic, [record("r", None, row(10**6))]))
            embedded = sum(s.value for m in TEXTS_EMBEDDED.collect() for s in m.samples if s.name.endswith("_total"))
            start = time.time()
            done = await seen.wait(topic, await produce(ctx.bootstrap, topic, records))
            after = sum(s.value for m in TEXTS_EMBEDDED.collect() for s in m.samples if s.name.endswith("_total"))
            return len(records) / (done - start), int(after - embedded)
    finally:
        await client.close()


async def measure(rows: int, repeats: int, grpc: bool) -> dict[str, list[tuple[float, int]]]:
    runs: dict[str, list[tuple[float, int]]] = {"snapshot": [], "updates, old row": [], "updates, no old row": []}
    snapshot = [record("r", None, row(i)) for i in range(rows)]
    with (KafkaBroker() as broker, QdrantServer() as server, tempfile.TemporaryDirectory(prefix="qcc-bench-") as tmp):
        target = QdrantTarget("grpc" if grpc else "rest", server)
        ctx = Context(broker.bootstrap, assemble_all(), Path(tmp), "full", repeats, (target,))
        mapping = Path(tmp) / "mapping.yaml"
        mapping.write_text(MAPPING)
        for _ in range(repeats):
            runs["snapshot"].append(await stream(ctx, target, mapping, snapshot))
            for name, with_before in (("updates, old row", True), ("updates, no old row", False)):
                records, _ = updates(rows, with_before)
                runs[name].append(await stream(ctx, target, mapping, records, snapshot))
            print("  " + ", ".join(f"{k}: {v[-1][0]:.0f}/s, {v[-1][1]} texts" for k, v in runs.items()), flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grpc", action="store_true")
    args = parser.parse_args()
    runs = asyncio.run(measure(args.rows, args.repeats, args.grpc))
    _, changed = updates(args.rows, True)
    print(f"{args.rows:,} rows of two texts, {args.repeats} repeats, {'gRPC' if args.grpc else 'REST'}, "
          f"{os.cpu_count()} cores; the updates change {changed:,} texts")
    for name, values in runs.items():
        rates = [rate for rate, _ in values]
        texts = statistics.median(t for _, t in values)
        print(f"  {name}: {statistics.median(rates):6.0f} events/s (min {min(rates):.0f}, max {max(rates):.0f}), "
              f"{texts:,.0f} texts embedded ({texts / args.rows:.2f} per event)")
    old = statistics.median(r for r, _ in runs["updates, old row"])
    whole = statistics.median(r for r, _ in runs["updates, no old row"])
    print(f"  updates with the old row: {old / whole:.2f}x the events/s of whole-row updates, "
          f"{2 * args.rows - changed:,} of {2 * args.rows:,} embeddings avoided")


if __name__ == "__main__":
    main()
