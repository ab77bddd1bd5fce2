"""A re-embed that reads its text from the payload waits for the patches published before it.

The two input topics are consumed independently, so a re-embed on an idle re-embed topic can
run before a text patch that was published earlier but waits behind a patch backlog: it would
embed the old text, and nothing would repair it. The contract (docs/design.md, "Re-embeds
see the text written before them"): before a window reads texts from payload fields, the
worker takes the end offsets of the patch topic (every patch published before the re-embed
was read is below them) and waits until the consumer group has committed the patch topic up
to them. A worker commits a patch only after it is applied and confirmed, so the texts read
then include every earlier patch, whichever worker applies them. Re-embeds with their texts
inline do not wait; patches never wait for re-embeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from connector import metrics
from connector.errors import WindowAbandoned
from connector.kafka.options import client_options
from connector.settings import Settings

log = logging.getLogger(__name__)


def behind(ends: dict[TopicPartition, int], committed: dict[TopicPartition, int],
           starts: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Per partition not yet committed up to its end, how many records are missing. A partition
    the group never committed counts from its log start (retention may have emptied it). Pure."""
    missing = {tp: end - committed.get(tp, starts.get(tp, 0)) for tp, end in ends.items()}
    return {tp: count for tp, count in missing.items() if count > 0}


class PatchWatermark:
    """``await watermark.wait()``: returns True once the group has applied every patch published
    so far, False when a rebalance cut the wait short.

    Each wait opens its own short-lived Kafka clients: re-embed windows are slow (embedding),
    so a connection per window costs little, and nothing is left open at shutdown.
    """

    def __init__(self, settings: Settings, poll_seconds: float = 0.2,
                 stopping: Callable[[], bool] = lambda: False,
                 rebalancing: Callable[[], bool] = lambda: False) -> None:
        """``stopping`` ends a wait at shutdown (as abandoned: the window is replayed).
        ``rebalancing`` ends it too, but the window goes on reading texts: Faust waits for the
        window before the rebalance can finish, and no patch is applied during one, so waiting
        would stall the group; abandoning it there is not safe either (see app.py). The texts
        read then may predate patches that were still in the backlog: the wait returns False and
        the window publishes those re-embeds again to be re-done after them (docs/design.md)."""
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.stopping = stopping
        self.rebalancing = rebalancing

    async def _ends(self, consumer: AIOKafkaConsumer) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """The patch topic's end offsets, and its log start offsets."""
        partitions = consumer.partitions_for_topic(self.settings.patch_topic)
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
            partitions = consumer.partitions_for_topic(self.settings.patch_topic) or set()
        tps = [TopicPartition(self.settings.patch_topic, p) for p in sorted(partitions)]
        if not tps:
            return {}, {}
        return dict(await consumer.end_offsets(tps)), dict(await consumer.beginning_offsets(tps))

    async def _committed(self, admin: AIOKafkaAdminClient) -> dict[TopicPartition, int]:
        offsets: dict[Any, Any] = await admin.list_consumer_group_offsets(self.settings.consumer_group)
        return {tp: meta.offset for tp, meta in offsets.items()
                if tp.topic == self.settings.patch_topic and meta.offset >= 0}

    async def wait(self) -> bool:
        """Wait until the patch topic is committed up to its end as of now: True; False when a
        rebalance began first.

        A broker that is down or restarting is waited for like a slow patch topic (retried,
        never raised): it is no record's fault, and the re-embeds must not pass before the
        patches either way."""
        started = time.monotonic()
        while True:
            try:
                settled = await self._wait_once(started)
                break
            except (KafkaError, OSError) as exc:
                log.warning("re-embeds wait for the broker: %s: %s", type(exc).__name__, exc)
                if self.rebalancing():
                    settled = False
                    metrics.REEMBED_WAIT_CUT_SHORT.inc()
                    break
                await self._sleep_unless_stopping(1.0)
        metrics.REEMBED_WAIT_SECONDS.observe(time.monotonic() - started)
        return settled

    async def _wait_once(self, started: float) -> bool:
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(self.settings))
        admin = AIOKafkaAdminClient(**client_options(self.settings))
        try:
            await consumer.start()
            await admin.start()
            ends, starts = await self._ends(consumer)
            logged = False
            while missing := behind(ends, await self._committed(admin), starts):
                if self.rebalancing():
                    log.warning("a rebalance began while re-embeds waited for %d earlier patches: reading texts "
                                "now, and re-doing those re-embeds after the patches", sum(missing.values()))
                    metrics.REEMBED_WAIT_CUT_SHORT.inc()
                    return False
                if not logged and time.monotonic() - started > 5:
                    log.info("re-embeds wait for %d earlier patches to be applied first", sum(missing.values()))
                    logged = True
                await self._sleep_unless_stopping(self.poll_seconds)
            return True
        finally:
            await consumer.stop()
            await admin.close()

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        if self.stopping():
            raise WindowAbandoned("re-embeds no longer wait for patches: the worker is stopping")
        await asyncio.sleep(seconds)
