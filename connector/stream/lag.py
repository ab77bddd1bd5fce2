"""``qdrant_connector_consumer_lag`` from the broker, from the first assignment on.

Per assigned partition: the log end minus the consumer group's committed offset (where the group
committed nothing, minus the earliest retained offset: the worker starts there). Set as soon as
partitions are assigned, before any window, and again every few seconds, so that a worker whose
windows cannot finish (Qdrant down) shows its lag grow rather than a value of its last window.
After each confirmed window it is set again soon (pipeline.py asks, at most once a second): one
meaning, the records the group has not committed. Partitions given up lose their series.

Every offset is read by clients of its own (an admin client, a consumer in no group), never
through Faust's consumer: that one runs its calls one at a time on its own thread, so a read of
the log ends there held back the fetches behind it (the distinct patch workload over REST went
from ~2,400 to ~1,550 events/s with a read a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import ConsumerT

from connector.kafka.options import client_options
from connector.metrics import CONSUMER_LAG
from connector.settings import Settings

__all__ = ["ConsumerLag", "lag"]

log = logging.getLogger(__name__)


def lag(log_end: int, committed: int | None, earliest: int) -> int:
    """Records of a partition the group has not committed yet."""
    return max(0, log_end - (committed if committed is not None else earliest))


class ConsumerLag:
    """Sets the gauge for the partitions assigned to the worker's consumer (``consumer()``: Faust
    creates it on first use): log ends and earliest offsets from a consumer of its own (in no
    group), the group's commits from an admin client of its own."""

    def __init__(self, settings: Settings, consumer: Callable[[], ConsumerT], *, every: float = 5.0) -> None:
        self._settings = settings
        self._consumer = consumer
        self._every = every
        self._assigned = asyncio.Event()
        self._shown: set[TopicPartition] = set()
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    def assigned(self) -> None:
        """Partitions were assigned, or a window committed: set the gauge soon (nothing waits for it)."""
        self._assigned.set()

    soon = assigned

    async def watch(self) -> None:
        """Forever: after the first assignment, at each assignment and every ``every`` seconds."""
        try:
            await self._assigned.wait()
            while True:
                self._assigned.clear()
                try:
                    await self.refresh()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - broker outages are the broker probe's to report; tried again
                    log.debug("consumer lag not read: %s: %s", type(exc).__name__, exc)
                    await self.close()
                await asyncio.sleep(min(1.0, self._every))  # windows commit often: one read a second at most
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._assigned.wait(), timeout=self._every)
        finally:
            await self.close()

    async def refresh(self) -> None:
        consumer = self._consumer()
        partitions = sorted(TopicPartition(tp.topic, tp.partition) for tp in consumer.assignment())
        for gone in self._shown - set(partitions):
            CONSUMER_LAG.remove(gone.topic, str(gone.partition))
        self._shown &= set(partitions)
        if not partitions:
            return
        offsets = await self._offsets_reader()
        log_ends = await offsets.end_offsets(partitions)
        committed = await self._committed(partitions)
        uncommitted = [tp for tp in partitions if tp not in committed]
        earliest = await offsets.beginning_offsets(uncommitted) if uncommitted else {}
        for tp in partitions:
            if tp in log_ends:
                CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                    lag(log_ends[tp], committed.get(tp), earliest.get(tp, 0)))
                self._shown.add(tp)

    async def _committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self._admin is None:
            admin = AIOKafkaAdminClient(**client_options(self._settings), client_id="qcc-consumer-lag")
            try:
                await admin.start()
            except BaseException:
                await admin.close()
                raise
            self._admin = admin
        offsets = await self._admin.list_consumer_group_offsets(self._settings.consumer_group, partitions=partitions)
        return {TopicPartition(tp.topic, tp.partition): found.offset for tp, found in offsets.items()
                if found is not None and found.offset >= 0}

    async def _offsets_reader(self) -> AIOKafkaConsumer:
        if self._offsets is None:
            reader = AIOKafkaConsumer(**client_options(self._settings), client_id="qcc-consumer-lag",
                                      enable_auto_commit=False)
            try:
                await reader.start()
            except BaseException:
                await reader.stop()
                raise
            self._offsets = reader
        return self._offsets

    async def close(self) -> None:
        """Close the gauge's own clients (made again at the next refresh)."""
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.close()
        if self._offsets is not None:
            reader, self._offsets = self._offsets, None
            await reader.stop()
