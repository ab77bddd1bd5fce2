"""What the audit reads from Kafka: the verification and dead-letter topics whole, and the
offsets to prove on each source partition. No consumer group is joined (partitions are
assigned and read to their end), so the audit never moves the worker's offsets; and no topic is
named to the broker before it is known to exist, so the audit never creates one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from connector.audit.accounting import DeadLetter, Verification, verification_from_json
from connector.audit.documents import DocumentBatch, DocumentQuestion, document_batch
from connector.audit.scope import PartitionState, caught_up
from connector.kafka.options import client_options
from connector.kafka.publishing import read_dead_letter
from connector.settings import Settings

__all__ = ["Trail", "committed_offsets", "missing_topics", "partition_states", "read_document_batches", "read_trail",
           "wait_for_commits"]

Progress = Callable[[str, int, int], None]  # (topic, records read, records in all)


@dataclass
class Trail:
    verifications: list[Verification]
    dead_letters: list[DeadLetter]
    unreadable: int  # records of the trail topics that are not JSON the audit understands


async def _partitions(settings: Settings, topics: list[str]) -> list[TopicPartition]:
    """The partitions of ``topics``, which exist (:func:`missing_topics`): describing a missing
    topic makes a broker with auto-creation on create it."""
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


async def read_document_batches(settings: Settings, topics: set[str], question: DocumentQuestion,
                                progress: Progress | None = None) -> tuple[list[DocumentBatch], int]:
    """The verification events about ``topics`` that the question needs (connector/audit/documents.py),
    in publish order, and how many records of the verification topic could not be read."""
    batches: list[DocumentBatch] = []
    unreadable = 0
    partitions = await _partitions(settings, [settings.verification_topic])
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **client_options(settings))
    try:
        await consumer.start()

        def on_verification(message: Any) -> None:
            nonlocal unreadable
            try:
                record = json.loads(message.value)
                if record.get("topic") not in topics:
                    return
                batch = document_batch(record, (record.get("applied_at", ""), message.partition, message.offset),
                                       question)
            except (ValueError, KeyError, TypeError, AttributeError):
                unreadable += 1
                return
            if batch is not None:
                batches.append(batch)

        await _read_whole(consumer, partitions, on_verification, progress)
    finally:
        await consumer.stop()
    return sorted(batches, key=lambda b: b.order), unreadable


async def partition_states(settings: Settings, topics: list[str], *, from_offset: int | None = None,
                           since: datetime | None = None) -> list[PartitionState]:
    """Per partition of ``topics`` (which exist: :func:`missing_topics`), the first offset asked
    for (the earliest retained, or ``from_offset``, or the first at ``since``), the log end, and
    the consumer group's committed offset. Read before the trail: every batch the group committed
    by then has its verification event on the topic before the commit (pipeline.py)."""
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
    committed = await committed_offsets(settings, partitions)
    return [PartitionState(tp.topic, tp.partition, starts[tp], ends[tp], committed.get(tp)) for tp in partitions]


async def wait_for_commits(settings: Settings, states: list[PartitionState], timeout: float,
                           on_wait: Callable[[int], None] | None = None,
                           every: float = 0.5) -> tuple[list[PartitionState], float]:
    """Until the group's commits reach each partition's log end of ``states`` (or ``timeout``
    seconds): the states with the commits last read, and the seconds waited. ``on_wait`` is told
    the records still to be committed."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    partitions = [TopicPartition(s.topic, s.partition) for s in states]
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        while True:
            to_go = sum(s.log_end - max(s.start, s.committed or 0) for s in states if not caught_up(s))
            if on_wait is not None:
                on_wait(to_go)
            if not to_go or loop.time() - began >= timeout:
                return states, loop.time() - began
            await asyncio.sleep(min(every, max(0.0, timeout - (loop.time() - began))))
            committed = await _committed(admin, settings.consumer_group, partitions)
            states = [replace(s, committed=committed.get(TopicPartition(s.topic, s.partition))) for s in states]
    finally:
        await admin.close()


async def missing_topics(settings: Settings, topics: list[str]) -> list[str]:
    """Those of ``topics`` the broker does not have. Asked as the list of all topics: a metadata
    request that names a missing topic makes a broker with auto-creation on create it."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return [t for t in dict.fromkeys(topics) if t not in existing]


async def committed_offsets(settings: Settings, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The consumer group's committed offset of each of ``partitions`` that has one."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        return await _committed(admin, settings.consumer_group, partitions)
    finally:
        await admin.close()


async def _committed(admin: AIOKafkaAdminClient, group: str,
                     partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    if not partitions:
        return {}
    offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    return {tp: found.offset for tp, found in offsets.items() if found is not None and found.offset >= 0}
