"""A readable live view of the verification and dead-letter topics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer

from connector.console import console_for
from connector.kafka.options import client_options
from connector.kafka.publishing import read_dead_letter
from connector.settings import Settings

POLL_MS = 200  # how long one fetch waits for records: the idle timeout's resolution
STATUS_STYLE = {"verified": "green", "partial": "magenta", "mismatch": "bold red", "skipped": "yellow"}


def describe(topic_kind: str, record: dict[str, Any], original: bytes | None = None) -> str:
    """One line (rich markup) for a verification event or a dead-letter record."""
    if topic_kind == "verification":
        status = record["verification"]["status"]
        ops = " ".join(f"{k}={v}" for k, v in sorted(record["operations"].items())) or "no ops"
        ranges = " ".join(f"p{r['partition']}:{r['first_offset']}-{r['last_offset']}" for r in record["ranges"])
        dead = len(record["dead_letters"])
        style = STATUS_STYLE.get(status, "white")
        return (
            f"[{style}]{status:<8}[/{style}] batch {record['batch_id'][:12]} "
            f"{record['collection']} {record['applied_event_count']}/{record['event_count']} events "
            f"({ops}) points={record['points']['count']} {ranges} "
            f"{record['latency']['window_seconds'] * 1000:.0f}ms" + (f" [red]dead={dead}[/red]" if dead else "")
        )
    source = record["source"]
    shown = (
        repr(original[:40]) + "..." if original is not None else f"(original not carried: {record['original_form']})"
    )
    return (
        f"[red]DEAD    [/red] {record['error']['code']}: {record['error']['message']} "
        f"({source['topic']}[{source['partition']}]@{source['offset']}) {shown}"
    )


def decode(message: Any, settings: Settings) -> tuple[str, dict[str, Any], bytes | None]:
    """A consumed record of either output topic: its kind, its JSON, and a dead letter's original."""
    if message.topic == settings.verification_topic:
        return "verification", json.loads(message.value), None
    record, original = read_dead_letter(message.value, message.headers)
    return "dead_letter", record, original


async def follow(settings: Settings, *, from_beginning: bool, count: int | None, raw: bool,
                 idle_timeout: float | None = None) -> int:
    """Print records as they come until ``count`` were shown or, with ``idle_timeout``, none came
    for that many seconds; the number shown."""
    console = console_for()
    consumer = AIOKafkaConsumer(
        settings.verification_topic,
        settings.dead_letter_topic,
        **client_options(settings),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    seen = 0
    try:
        await consumer.start()
        loop = asyncio.get_running_loop()
        last = loop.time()
        while count is None or seen < count:
            batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=None if count is None else count - seen)
            if not batches:
                if idle_timeout is not None and loop.time() - last >= idle_timeout:
                    break
                continue
            last = loop.time()
            for message in sorted((m for ms in batches.values() for m in ms), key=lambda m: m.timestamp):
                kind, record, original = decode(message, settings)
                if raw:
                    print(json.dumps(record), flush=True)
                else:
                    console.print(describe(kind, record, original), highlight=False)
                seen += 1
    finally:
        await consumer.stop()
    return seen
