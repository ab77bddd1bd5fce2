"""Whether the Kafka brokers answer, for the outage tracker and /readyz.

One aiokafka client of its own asks for the cluster's metadata: at start until a broker
answers (the worker starts Faust only then), and every few seconds while the worker runs, so
that an outage the client libraries report line by line has a clear beginning and end
(:class:`connector.logs.OutageTracker`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from connector.kafka.options import client_options
from connector.logs import OutageTracker
from connector.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["BrokerProbe"]


class BrokerProbe:
    """Asks the brokers for metadata; each answer or failure goes to ``tracker``."""

    def __init__(self, settings: Settings, tracker: OutageTracker, *, timeout: float = 10.0) -> None:
        self._settings = settings
        self._tracker = tracker
        self._timeout = timeout
        self._client: AIOKafkaClient | None = None

    async def check(self) -> bool:
        """One attempt: True when a broker answered."""
        try:
            await asyncio.wait_for(self._ask(), timeout=self._timeout)
        except asyncio.CancelledError:
            raise
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            text = str(exc)
            self._tracker.failed(text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}")
            return False
        self._tracker.recovered()
        return True

    async def _ask(self) -> None:
        if self._client is None:
            client = AIOKafkaClient(**client_options(self._settings), client_id="qcc-broker-probe")
            try:
                await client.bootstrap()
            except BaseException:
                await client.close()
                raise
            self._client = client
            return
        await self._client.fetch_all_metadata()

    async def wait_until_answered(self, stopping: Callable[[], bool], *, first_backoff: float = 0.5,
                                  most_backoff: float = 10.0) -> bool:
        """Until a broker answers (True) or ``stopping()`` (False); backs off between attempts."""
        backoff = first_backoff
        while not stopping():
            if await self.check():
                return True
            self._tracker.tick()
            waited = 0.0
            while waited < backoff and not stopping():  # short steps: a stop request is seen at once
                await asyncio.sleep(min(0.2, backoff - waited))
                waited += 0.2
            backoff = min(backoff * 2, most_backoff)
        return False

    async def watch(self, every: float = 2.0) -> None:
        """Forever: one attempt every ``every`` seconds."""
        while True:
            await self.check()
            self._tracker.tick()
            await asyncio.sleep(every)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
