"""What the audit reads from Kafka: the verification and dead-letter topics whole, and the
offsets to prove on each source partition. No consumer group is joined (partitions are
assigned and read to their end), so the audit never moves the worker's offsets."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from connector.audit.accounting import DeadLetter, Verification, verification_from_json
from connector.kafka.options import client_options
from connector.kafka.publishing import read_dead_letter
from connector.settings import Settings

__all__ = ["Trail", "read_trail", "source_ranges"]

Progress = Callable[[str, int, int], None]  # (topic, records read, records in all)


@dataclass
class Trail:
    verifications: list[Verification]
    dead_letters: list[DeadLetter]
    unreadable: int  # records of the trail topics that are not JSON the audit understands


async def _partitions(settings: Settings, topics: list[str]) -> list[TopicPartition]:
    """The partitions of ``topics`` (a topic that does not exist has none)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return sorted(TopicPartition(t["topic"], p["partition"]) for t in described if t["error_code"] == 0
                  for p in t["partitions"])


async def _read_whole(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], on_record: Callable[[Any], None],
                      progress: Progress | None) -> None:
    if not partitions:
        return
    consumer.assign(partitions)
    starts = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    total = sum(ends[tp] - starts[tp] for tp in partitions)
    for tp in partitions:  # set now: a lazy reset (seek_to_beginning) could lose a race with the assignment's own
        consumer.seek(tp, starts[tp])
    remaining = {tp for tp in partitions if ends[tp] > starts[tp]}
    done = 0
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
        for tp, messages in batch.items():
            for message in messages:
                if message.offset < ends[tp]:
                    on_record(message)
                    done += 1
        for tp in list(remaining):  # by position: a compacted or deleted record leaves no message behind
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        if progress is not None:
            progress(partitions[0].topic, done, total)


async def read_trail(settings: Settings, topics: set[str], progress: Progress | None = None) -> Trail:
    """Every verification event and dead letter about ``topics``, in publish order."""
    trail = Trail([], [], 0)
    verification_partitions = await _partitions(settings, [settings.verification_topic])
    dead_letter_partitions = await _partitions(settings, [settings.dead_letter_topic])
    # earliest: with no group, an offset out of range is reset to the start, never past the records
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **client_options(settings))
    try:
        await consumer.start()

        def on_verification(message: Any) -> None:
            try:
                record = json.loads(message.value)
                verification = verification_from_json(record, (record.get("applied_at", ""), message.partition,
                                                               message.offset))
            except (ValueError, KeyError, TypeError):
                trail.unreadable += 1
                return
            if verification is not None and verification.topic in topics:
                trail.verifications.append(verification)

        def on_dead_letter(message: Any) -> None:
            try:
                envelope, _ = read_dead_letter(message.value, message.headers)
                source = envelope["source"]
                dead = DeadLetter(str(source["topic"]), int(source["partition"]), int(source["offset"]),
                                  str(envelope["error"]["code"]))
            except (ValueError, KeyError, TypeError):
                trail.unreadable += 1
                return
            if dead.topic in topics:
                trail.dead_letters.append(dead)

        await _read_whole(consumer, verification_partitions, on_verification, progress)
        await _read_whole(consumer, dead_letter_partitions, on_dead_letter, progress)
    finally:
        await consumer.stop()
    trail.verifications.sort(key=lambda v: v.order)
    return trail


async def source_ranges(settings: Settings, topics: list[str], *, from_offset: int | None = None,
                        since: datetime | None = None,
                        to: Literal["committed", "end"] = "committed") -> dict[tuple[str, int], tuple[int, int]]:
    """Per source partition, the offsets [start, end) to prove: from the earliest retained (or
    ``from_offset``, or the first at ``since``) up to the consumer group's committed offset (or
    the log end)."""
    partitions = await _partitions(settings, topics)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings))
    try:
        await consumer.start()
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        if since is not None:
            at = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
            starts = {tp: (found.offset if found is not None else ends[tp]) for tp, found in at.items()}
        elif from_offset is not None:
            starts = {tp: max(starts[tp], from_offset) for tp in partitions}
    finally:
        await consumer.stop()
    if to == "committed":
        ends = await _committed(settings, partitions)
    return {(tp.topic, tp.partition): (starts[tp], max(starts[tp], ends.get(tp, starts[tp]))) for tp in partitions}


async def _committed(settings: Settings, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        offsets = await admin.list_consumer_group_offsets(settings.consumer_group, partitions=partitions)
    finally:
        await admin.close()
    return {tp: found.offset for tp, found in offsets.items() if found is not None and found.offset >= 0}
