"""Create the connector's topics (idempotent), with aiokafka's admin client."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from connector.kafka_options import client_options
from connector.settings import Settings


async def ensure_topics(settings: Settings, partitions: int = 4, replication: int = 1) -> list[str]:
    """Create the four topics where missing; returns the names that were created."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.patch_topic, settings.reembed_topic, settings.verification_topic, settings.dead_letter_topic]
        missing = [name for name in wanted if name not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(name, partitions, replication) for name in missing])
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        await admin.close()
