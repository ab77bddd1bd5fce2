"""A steady stream of patches and re-embeds produced while a migration runs (the migration tests)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from aiokafka import AIOKafkaProducer

from connector.settings import Settings


async def stream_during_migration(bootstrap: str, settings: Settings, events: list[dict[str, Any]],
                                  sent: dict[str, list[tuple[int, int]]], done: asyncio.Event, fast: int) -> None:
    """Produce ``events`` (keyed by collection and first point id, re-embeds to their topic) and
    note each (partition, offset) in ``sent`` by topic: the first ``fast`` quickly, the rest slowly
    until ``done`` (the migration ended), then quickly again."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i, event in enumerate(events):
            topic = settings.reembed_topic if event.get("kind") == "reembed" else settings.patch_topic
            ids = event.get("ids") or [event["points"][0]["id"]]
            meta = await producer.send_and_wait(topic, json.dumps(event).encode(), key=f"docs/{ids[0]}".encode())
            sent[topic].append((meta.partition, meta.offset))
            await asyncio.sleep(0.004 if done.is_set() or i < fast else 0.02)
    finally:
        await producer.stop()


def stream_events(rng: random.Random, n: int, first_new_id: int) -> list[dict[str, Any]]:
    """Patches and re-embeds on the alias ``docs``: payload changes, text upserts (embedded by
    whoever applies them), raw vectors of the old model, deletes; on points below ``first_new_id + 50``."""
    events = []
    for i in range(n):
        pid = rng.randrange(first_new_id + 50)
        roll = rng.random()
        base = {"schema_version": 1, "collection": "docs"}
        if roll < 0.35:
            events.append({**base, "op": "set_payload", "ids": [pid], "payload": {"v": i, "tag": rng.choice("xyz")}})
        elif roll < 0.45:
            events.append({**base, "op": "delete_payload", "ids": [pid], "keys": ["tag"]})
        elif roll < 0.55:
            events.append(
                {**base, "op": "overwrite_payload", "ids": [pid], "payload": {"body": f"rewritten {i}", "v": i}}
            )
        elif roll < 0.75:
            text = f"article {pid} version {i}"
            events.append({**base, "op": "upsert", "vector_name": "dense",
                           "points": [{"id": pid, "text": text, "payload": {"body": text}}]})
        elif roll < 0.85:
            events.append({**base, "op": "update_vectors",
                           "points": [{"id": pid, "vector": {"dense": [rng.random() for _ in range(384)]}}]})
        elif roll < 0.92:
            events.append({**base, "op": "delete", "ids": [pid]})
        else:
            events.append({**base, "kind": "reembed", "vector_name": "dense", "ids": [pid], "text_field": "body"})
    return events
