"""Create the connector's topics (idempotent), with aiokafka's admin client."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, RequestTimedOutError, TopicAlreadyExistsError, for_code

from connector.errors import ConfigurationError
from connector.kafka.options import client_options
from connector.settings import Settings


@dataclass(frozen=True)
class Topics:
    """What :func:`ensure_topics` found: the topics it created, and every topic's partitions."""

    created: list[str]
    partitions: dict[str, int]

    def existing(self) -> dict[str, int]:
        """The topics that were there before, with their partitions."""
        return {name: count for name, count in self.partitions.items() if name not in self.created}


async def ensure_topics(settings: Settings, partitions: int = 4, replication: int = 1) -> Topics:
    """Create the four topics, and the CDC topics (QCC_CDC_TOPICS), where missing; an existing
    topic is left as it is (its partitions too). A CDC topic made here before Debezium writes to it
    is one the worker is assigned at start: a topic created later is seen only at the consumer's
    next metadata refresh."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [settings.patch_topic, settings.reembed_topic, settings.verification_topic, settings.dead_letter_topic,
                  *settings.cdc_topics]
        missing = [name for name in wanted if name not in existing]
        if missing:
            # the broker answers each topic with an error code rather than failing the call
            answer = await admin.create_topics([NewTopic(name, partitions, replication) for name in missing])
            refused = creation_errors(answer.topic_errors)
            if refused:
                raise ConfigurationError(f"the broker refused to create {'; '.join(refused)} "
                                         "(--partitions, --replication-factor)")
        led = await wait_for_leaders(admin, wanted)
        if missing:
            await _until_served(settings, [tp for tp in led if tp.topic in missing])
        await _until_coordinator(admin, settings.consumer_group)
        counts = {name: sum(1 for tp in led if tp.topic == name) for name in wanted}
        return Topics(missing, counts)
    finally:
        await admin.close()


def creation_errors(topic_errors: list[tuple[Any, ...]]) -> list[str]:
    """What a CreateTopics answer refused, grouped by reason: ``"a, b: Error: message"``. A topic
    that already exists is no refusal (another worker created it first). The answer's rows are
    (topic, code) or (topic, code, message)."""
    by_reason: dict[str, list[str]] = {}
    for row in topic_errors:
        topic, code = row[0], row[1]
        if code in (0, TopicAlreadyExistsError.errno, RequestTimedOutError.errno):
            continue  # created; created by another worker first; still being created (the leaders are awaited)
        message = row[2] if len(row) > 2 and row[2] else ""
        by_reason.setdefault(f"{for_code(code).__name__}{': ' + message if message else ''}", []).append(topic)
    return [f"{', '.join(topics)}: {reason}" for reason, topics in by_reason.items()]


async def wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 30.0
) -> list[TopicPartition]:
    """Until every partition of ``topics`` has a leader; their partitions. A client that starts
    earlier on a new topic logs NotLeaderForPartitionError errors (expected, but they read as
    failures)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(topics)
        ready = all(t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
                    for t in described)
        if ready or asyncio.get_running_loop().time() > deadline:
            return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        await asyncio.sleep(0.1)


async def _until_coordinator(admin: AIOKafkaAdminClient, group: str, timeout: float = 30.0) -> None:
    """Until the group has a coordinator. On a new broker the first lookup creates the offsets
    topic and is refused meanwhile; a worker that asks first logs that as an error."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.find_coordinator(group)
            return
        except KafkaError:
            if asyncio.get_running_loop().time() > deadline:
                return  # the worker retries on its own; this only keeps its start quiet
            await asyncio.sleep(0.2)


class _ExpectedOnNewTopics(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "NotLeaderForPartitionError" not in record.getMessage()


async def _until_served(settings: Settings, partitions: list[TopicPartition]) -> None:
    """Until the broker answers offset requests for every partition of new topics: in KRaft
    the metadata names a leader a moment before that leader serves them. The retries meanwhile
    are expected, so their error lines are held back here, and only here."""
    consumer = AIOKafkaConsumer(**client_options(settings))
    fetcher_log = logging.getLogger("aiokafka.consumer.fetcher")
    quiet = _ExpectedOnNewTopics()
    fetcher_log.addFilter(quiet)
    try:
        await consumer.start()
        await asyncio.wait_for(consumer.end_offsets(partitions), timeout=30)
    finally:
        await consumer.stop()
        fetcher_log.removeFilter(quiet)
