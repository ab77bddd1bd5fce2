"""The lag gauge on a real broker: log end minus the group's commit, read by clients of the
gauge's own. Faust's consumer is asked only which partitions it holds: a read through it holds
back the worker's fetches (connector/stream/lag.py), so the stand-in below offers nothing else."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from connector.kafka.admin import ensure_topics
from connector.metrics import REGISTRY
from connector.settings import Settings
from connector.stream.lag import ConsumerLag

pytestmark = pytest.mark.integration


class Assigned:
    """What the gauge may ask of the worker's consumer: its assignment, and nothing more."""

    def __init__(self, partitions: set[TopicPartition]) -> None:
        self.partitions = partitions

    def assignment(self) -> set[TopicPartition]:
        return self.partitions


def gauge(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("qdrant_connector_consumer_lag", {"topic": topic, "partition": str(partition)})


async def test_the_lag_is_the_log_end_minus_the_groups_commit_read_beside_the_consumer(kafka, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = Settings(kafka_bootstrap_servers=kafka.bootstrap, consumer_group=f"lag-{tag}", patch_topic=f"p-{tag}",
                        reembed_topic=f"r-{tag}", verification_topic=f"v-{tag}", dead_letter_topic=f"d-{tag}",
                        data_dir=tmp_path)
    await ensure_topics(settings, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for partition, count in ((0, 7), (1, 4)):
            for _ in range(count):
                await producer.send_and_wait(settings.patch_topic, b"{}", partition=partition)
    finally:
        await producer.stop()
    held = Assigned({TopicPartition(settings.patch_topic, 0), TopicPartition(settings.patch_topic, 1)})
    lag = ConsumerLag(settings, lambda: held)  # type: ignore[arg-type,return-value]
    try:
        await lag.refresh()  # nothing committed: everything from the earliest offset is behind
        assert (gauge(settings.patch_topic, 0), gauge(settings.patch_topic, 1)) == (7, 4)
        group = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=settings.consumer_group,
                                 enable_auto_commit=False)
        await group.start()
        try:
            group.assign([TopicPartition(settings.patch_topic, 0)])  # a commit without joining, as a tool would
            await group.commit({TopicPartition(settings.patch_topic, 0): OffsetAndMetadata(5, "")})
        finally:
            await group.stop()
        await lag.refresh()
        assert (gauge(settings.patch_topic, 0), gauge(settings.patch_topic, 1)) == (2, 4)
    finally:
        await lag.close()
