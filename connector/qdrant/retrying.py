"""The one retrying Qdrant caller: every Qdrant call of the connector (stream, catalog, bulk
tools) goes through :meth:`RetryingClient.call`.

Transient errors (timeouts, refused connections, 5xx, gRPC UNAVAILABLE) are retried with
exponential backoff and full jitter, for as long as it takes: the caller does not advance the
stream meanwhile, so nothing is lost while Qdrant is down. A rate limit (429) waits as long as
the server says; a refused API key (401/403) is retried the same way and reported not-ready
(``failure``): neither is an event's fault. Anything else is raised, mapped
(:func:`connector.qdrant.errors.classify`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector import metrics
from connector.errors import AccessDenied, RateLimited, TransientError, WindowAbandoned
from connector.failpoints import Failpoints
from connector.qdrant.errors import classify
from connector.qdrant.wires.base import Wire
from connector.qdrant.wires.models import ModelsWire
from connector.versions import LOCAL, ServerVersion

__all__ = ["Backoff", "RetryingClient"]

log = logging.getLogger(__name__)
T = TypeVar("T")
SUMMARY_SECONDS = 30.0  # while a call keeps failing, a warning at most this often (each retry: info)


class Backoff:
    """Exponential backoff with full jitter: sleep uniform(0, min(cap, base * 2**n))."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial, self.maximum, self.attempt = initial, maximum, 0

    def next_delay(self) -> float:
        # the exponent is capped: 2.0**1024 overflows, and retries go on for as long as an outage lasts
        delay = random.uniform(0, min(self.maximum, self.initial * 2.0 ** min(self.attempt, 64)))
        self.attempt += 1
        return max(delay, self.initial / 2)




class RetryingClient:
    """One Qdrant (server or local mode) and the retry policy every call to it follows."""

    def __init__(
        self,
        client: AsyncQdrantClient,
        *,
        retry_initial: float = 0.2,
        retry_max: float = 30.0,
        timeout: float | None = None,
        failpoints: Failpoints | None = None,
        on_retry: Callable[[str, TransientError], None] | None = None,
        stopping: Callable[[], bool] = lambda: False,
        read_consistency: qm.ReadConsistency | None = None,
        wire: Wire[Any, Any] | None = None,
    ) -> None:
        """``timeout`` bounds each call here as given (qdrant-client rounds its own up to whole
        seconds); ``stopping`` says the worker is shutting down, which ends a retry loop (the
        caller abandons its window, to be replayed). A rebalance waits for the retries instead."""
        self.client = client
        self._retry_initial, self._retry_max = retry_initial, retry_max
        self._timeout = timeout
        self._failpoints = failpoints or Failpoints(None)
        self._on_retry = on_retry
        self.stopping = stopping
        self.failure: str | None = None  # why the current call is being retried (readiness reads it)
        self.read_consistency = read_consistency  # replicas that answer a read (connector/qdrant/reads.py)
        # how batches and the reads of a window are spelled (connector/qdrant/wires/: chosen once,
        # where the client is made; without a choice, qdrant-client's models, which every engine takes)
        self.wire = wire or ModelsWire(client)
        # the server's version, asked once at start (connector/qdrant/server_version.py): what it
        # lacks is turned off where it is used (the catalog, admission)
        self.server: ServerVersion = LOCAL

    async def call(self, what: str, fn: Callable[[], Awaitable[T]], *, raise_rate_limit: bool = False) -> T:
        """Run one Qdrant call; transient errors are retried with backoff (or after the wait the
        server asked for), others raised mapped. ``raise_rate_limit`` hands a rate limit to the
        caller instead, after its wait."""
        backoff = Backoff(self._retry_initial, self._retry_max)
        name = metrics.call_name(what)
        failing_since: float | None = None  # an outage seen by this call: its first failure
        last_warning = 0.0
        while True:
            started = time.monotonic()
            try:
                fault = self._failpoints.qdrant_fault()
                if fault is not None:
                    raise fault
                result = await (self._within_timeout(fn) if self._timeout else fn())
                metrics.QDRANT_SECONDS.labels(name).observe(time.monotonic() - started)
                self.failure = None
                if failing_since is not None:
                    log.info("%s succeeded after %.1f s and %d retries", what, time.monotonic() - failing_since,
                             backoff.attempt)
                return result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = classify(exc)
                if not error.retriable:
                    self.failure = None  # Qdrant answered: whatever was retried before is over
                    raise error from exc
                assert isinstance(error, TransientError)
                self.failure = str(error)
                delay = backoff.next_delay()
                if error.retry_after is not None:  # the server said when: earlier is refused again
                    delay = error.retry_after + random.uniform(0, self._retry_initial)
                # An outage is a few lines, not one a retry: a warning at the first failure and at
                # most every SUMMARY_SECONDS after it, each retry between at info (README, Logs).
                now = time.monotonic()
                if failing_since is None:
                    failing_since = last_warning = now
                    level = logging.WARNING
                elif now - last_warning >= SUMMARY_SECONDS:
                    level, last_warning = logging.WARNING, now
                else:
                    level = logging.INFO
                if level == logging.WARNING and isinstance(error, AccessDenied):
                    level = logging.ERROR  # a key that may not write: the setup needs a fix
                log.log(level, "%s failed (%s); retry %d in %.2fs%s", what, error, backoff.attempt, delay,
                        f" (failing for {now - failing_since:.0f} s)" if now > failing_since else "")
                metrics.RETRIES.labels(name).inc()
                if self._on_retry is not None:
                    self._on_retry(what, error)
                await self._sleep_unless_stopping(delay, what)
                if raise_rate_limit and isinstance(error, RateLimited):
                    self.failure = None  # the caller takes it from here (it cuts the request)
                    raise error from exc

    async def _within_timeout(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()``, or TimeoutError once the timeout has passed. Not ``asyncio.wait_for``: it
        waits for the cancelled call to finish, and an HTTP client's clean-up after a peer that
        stopped answering can outlast the timeout (seen: no retry within 30 s of a 0.5 s timeout).
        The cancelled call finishes in the background."""
        task = asyncio.ensure_future(fn())
        try:
            done, _ = await asyncio.wait({task}, timeout=self._timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        task.add_done_callback(_consume_outcome)
        raise TimeoutError(f"no answer within {self._timeout}s")

    async def _sleep_unless_stopping(self, delay: float, what: str) -> None:
        """Sleep before a retry; at shutdown, give up the call instead. (Faust waits for the window
        in hand before it stops; a retry loop must not hold it forever.)"""
        deadline = time.monotonic() + delay
        while True:
            if self.stopping():
                raise WindowAbandoned(f"{what}: not retried, the worker is stopping")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.5))


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    """Retrieve a given-up call's outcome, so that asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()
