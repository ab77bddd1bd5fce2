"""Windows through an agent, overlapped: while a runner task applies window N, window N+1
waits parsed in a queue of one and the agent collects and parses the window after it.

Commit discipline. Faust acknowledges a window's events when the agent asks ``take_events``
for the next window, which with a runner is before the window is applied. So the agent takes
one more reference on each message (Faust's own reference count) before it hands the window
over; the runner drops it after the window is applied and its verification events, dead
letters and re-checks are published (``send_and_wait``). Only then does Faust see the message
acknowledged and commit it.

Windows in flight. A window that writes no point of the windows still in flight, and addresses
none by a filter, starts while they are applied and read back (connector/stream/window/footprint.py:
independent windows cannot see each other's writes, so each one's read-back still checks
exactly what it did); any other window waits for the ones it shares a point with. At most
``QCC_WINDOWS_IN_FLIGHT`` are in flight, and each is published and confirmed only after the
one before it, so verification events and commits keep the order of the windows, and per-key
order holds (two windows on one point never overlap). What overlaps is the next window's CPU
(Faust's delivery, JSON, the event models) and its requests with the current one's waits on
Qdrant and Kafka.

Partitions revoked while the worker stops. Faust waits for unacknowledged events when a
rebalance revokes partitions, but not once the app is stopping: then it closes the consumer
at once, and the partitions' next owner replays, from the last commit, the window this
worker may still be applying (two workers stopping together: the second one's revocation).
Two workers applying the same window at once break per-key order and the read-back. So
:class:`WindowsInHand` counts the windows being applied, and the app's revocation waits
until none is before it lets the partitions go (app.py).

A window that is cancelled midway (shutdown) or gives up waiting at shutdown
(``WindowAbandoned``) is *abandoned*: its messages are marked so that Faust never
acknowledges them, nothing of it is committed, and the next owner replays it. From then on
every later window is abandoned too, one already applied included (:func:`abandon` says
why; replayed after the earlier one, it ends in the same state, as any replay). Any other failure exits the
process: code 74 when local mode cannot write its storage, 78 for a setting that cannot work, 70 for anything
else; so does an agent whose body raises (:func:`end_worker`), rather than being restarted by Faust.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import faust
from aiokafka.errors import ConsumerStoppedError, KafkaError
from faust.exceptions import ConsumerNotStarted
from faust.streams import Stream
from faust.types import EventT

from connector.errors import ConfigurationError, StorageError, WindowAbandoned
from connector.exit_codes import EX_CONFIG, EX_IOERR, EX_SOFTWARE
from connector.kafka.publishing import dead_letter_message, verification_value
from connector.metrics import REEMBED_RECHECKS, WINDOWS_QUEUED, observe_window
from connector.settings import Settings
from connector.stream.window import Record, WindowProcessor, WindowResult
from connector.stream.window.footprint import Footprint, footprint, independent
from connector.stream.window.items import Item

__all__ = ["RECHECK_HEADER", "WindowsInHand", "abandon", "end_worker", "publish", "run_windows"]

log = logging.getLogger(__name__)

RECHECK_HEADER = "qcc.recheck-of"


class WindowsInHand:
    """How many windows this process's runners are applying (from taking one off the queue
    to confirming or abandoning it); :meth:`idle` waits until none is."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self) -> None:
        self.count += 1
        self._idle.clear()

    def end(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()


@dataclass
class Window:
    """A window handed from the agent to the runner: its events (each holding one reference
    the runner drops once the window is confirmed), their records, and the records parsed
    ahead (None when parsing raised: the runner parses again, quarantining what breaks)."""

    events: Sequence[EventT[Any]]
    records: list[Record]
    parsed: list[Item] | None


def _record(event: EventT[Any]) -> Record:
    message = event.message
    stamp = message.timestamp
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        value=message.value,
        key=message.key,
        timestamp_ms=int(stamp * 1000) if stamp else None,
    )


def abandon(events: Sequence[EventT[Any]]) -> None:
    """Make Faust skip acknowledging these events, so their offsets are never committed.

    Only safe when no later event of the same partition is acknowledged in this process:
    Faust commits past a gap of one offset at the head of a partition's acknowledged offsets.
    So a worker abandons at shutdown only, and then every window after the first one it
    abandons too."""
    for event in events:
        event.message.acked = True


def _confirm(events: Sequence[EventT[Any]]) -> None:
    """Drop the runner's reference: Faust acknowledges each event (its offset may be committed)."""
    for event in events:
        event.ack()


async def publish(app: faust.App, settings: Settings, result: WindowResult) -> None:
    """Dead letters first, then re-checks, then verification events; each sized to fit
    (publishing.py), each waiting for the broker's ack."""
    for dead in result.dead_letters:
        original = base64.b64decode(dead.original_value_base64 or "")
        value, headers, form = dead_letter_message(dead, original, settings.publish_max_bytes)
        if form != "envelope":
            log.warning("dead letter of %s:%d:%d published as %s (original of %d bytes)", dead.source.topic,
                        dead.source.partition, dead.source.offset, form, len(original))
        await app.producer.send_and_wait(
            settings.dead_letter_topic,
            dead.source.key.encode() if dead.source.key else None,
            value,
            None,
            None,
            headers,
        )
    for record in result.rechecks:
        # The same re-embed again, same key (same partition, after it): re-done once the patches
        # published before it are applied (docs/design.md, "Re-embeds see the text written before them").
        source = f"{record.topic}:{record.partition}:{record.offset}"
        log.warning("re-embed %s read its texts before earlier patches were applied (a rebalance); published again "
                    "to be re-done after them", source)
        await app.producer.send_and_wait(settings.reembed_topic, record.key, record.value, None, None,
                                         [(RECHECK_HEADER, source.encode())])
        REEMBED_RECHECKS.inc()
    for verification in result.verifications:
        await app.producer.send_and_wait(
            settings.verification_topic,
            (verification.collection or "").encode(),
            verification_value(verification, settings.publish_max_bytes),
            None,
            None,
            None,
        )


@dataclass
class Flight:
    """A window started by the runner: the points it writes (None: unknown) and its task."""

    points: Footprint | None
    task: asyncio.Future[bool]


class Runner:
    """Applies the windows the agent hands over: independent ones at the same time, each one
    published and confirmed after the one before it (see the module docstring)."""

    def __init__(self, app: faust.App, settings: Settings, processor: WindowProcessor, in_hand: WindowsInHand,
                 stopping: Callable[[], bool], crash_after_confirm: Callable[[], None]) -> None:
        self.app, self.settings, self.processor, self.in_hand = app, settings, processor, in_hand
        self.stopping, self.crash_after_confirm = stopping, crash_after_confirm
        self.queue: asyncio.Queue[Window] = asyncio.Queue(maxsize=1)
        self.in_flight: list[Flight] = []  # windows started and not yet ended, oldest first
        self.abandoning = False  # set by the first window abandoned: every window started later is too

    def abandon(self, window: Sequence[EventT[Any]], why: str) -> None:
        self.abandoning = True
        abandon(window)
        log.warning("window of %d events abandoned (%s); it will be replayed", len(window), why)

    async def run(self) -> None:
        try:
            while True:
                window = await self.queue.get()
                self.in_hand.begin()  # before any await: a revocation at shutdown sees it from here on
                WINDOWS_QUEUED.labels(window.events[0].message.topic).set(self.queue.qsize())
                points = footprint(window.parsed)
                try:
                    await self._room_for(points)
                except asyncio.CancelledError:
                    self._ended()
                    self.abandon(window.events, "the agent stopped")
                    raise
                before = self.in_flight[-1].task if self.in_flight else None
                self.in_flight.append(Flight(points, asyncio.ensure_future(self._flight(window, before))))
        except asyncio.CancelledError:  # the agent stops: the windows in flight and those queued are replayed
            self.drain("the agent stopped")  # first: a second cancel may interrupt the wait below
            flights, self.in_flight = self.in_flight, []
            for flight in flights:
                flight.task.cancel()
            await asyncio.gather(*(flight.task for flight in flights), return_exceptions=True)
            raise

    async def _room_for(self, points: Footprint | None) -> None:
        """Wait until a window that writes ``points`` may start: every window in flight that it
        is not independent of has ended (they end in order), and fewer than the limit remain."""
        while True:
            self.in_flight = [flight for flight in self.in_flight if not flight.task.done()]
            conflicting = [flight for flight in self.in_flight if not independent(flight.points, points)]
            if not conflicting and len(self.in_flight) < self.settings.windows_in_flight:
                return
            await asyncio.wait({(conflicting or self.in_flight)[-1 if conflicting else 0].task})

    async def _flight(self, window: Window, before: asyncio.Future[bool] | None) -> bool:
        """Whether the window was confirmed (else abandoned: the windows after it are too)."""
        try:
            return await self._one(window, before)
        except asyncio.CancelledError:
            self.abandon(window.events, "the agent stopped")
            raise
        finally:
            self._ended()

    def _ended(self) -> None:
        self.in_hand.end()
        self.queue.task_done()

    def drain(self, why: str) -> None:
        """Abandon every window still queued."""
        while not self.queue.empty():
            events = self.queue.get_nowait().events
            self.abandon(events, why)
            self.queue.task_done()
            WINDOWS_QUEUED.labels(events[0].message.topic).set(self.queue.qsize())

    async def close(self, task: asyncio.Future[None]) -> None:
        """The stream ended (shutdown): abandon what is queued, let the window in hand end
        (applied, or given up: the Qdrant retries and the patch watermark stop waiting at
        shutdown), then stop the runner."""
        self.drain("not started at shutdown")
        await self.queue.join()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def commit_acknowledged(self) -> None:
        """Commit what is acknowledged now rather than at the next commit interval. Faust
        forgets acknowledged offsets not yet committed when their partition is revoked and
        seeks each partition it is given to the last commit, so every rebalance replayed up
        to an interval's worth of windows (tests/server/test_rebalance.py); now at most the
        windows in hand. Best effort: the interval's commit takes what this one could not."""
        try:
            await self.app.consumer.commit()
        # the broker is away or the group rebalancing (the interval retries), or the consumer is
        # already stopped at shutdown (Faust's own last commit, or the replay, covers it)
        except (KafkaError, ConsumerStoppedError, ConsumerNotStarted) as exc:
            log.warning("commit after a window failed (%r); the periodic commit retries it", exc)

    async def _one(self, window: Window, before: asyncio.Future[bool] | None) -> bool:
        """Apply a window (while ``before``, the window started before it, may still be in flight),
        then, once ``before`` has ended, publish and confirm it."""
        events = window.events
        if self.abandoning or self.stopping():  # buffered before shutdown: the next owner replays it
            self.abandon(events, "not started at shutdown")
            return False
        try:
            result = await self.processor.process_quarantining(window.records, window.parsed)
            if before is not None and not await _confirmed(before):  # confirmed in order
                self.abandon(events, "an earlier window was abandoned")  # replayed after it, so this one too
                return False
            await publish(self.app, self.settings, result)
            self.crash_after_confirm()
        except WindowAbandoned as given_up:  # it waited (Qdrant retries, the patch watermark) at shutdown
            self.abandon(events, str(given_up))
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Bad input never gets here (it is dead-lettered): this is local storage that cannot
            # be written, a bug, a configuration error or a broker failure. Exit at once so the
            # orchestrator restarts the worker: nothing of this window is committed, and the
            # restart replays it.
            abandon(events)
            if isinstance(exc, StorageError):
                log.critical("Qdrant local storage failed: %s. Nothing of this window of %d events is committed; "
                             "free space or make %s writable, then restart: the window is replayed",
                             exc, len(events), self.settings.qdrant_path)
            elif isinstance(exc, ConfigurationError):  # a setting no retry mends: one line, no traceback
                log.critical("%s (nothing of this window of %d events is committed; fix the setting, then restart: "
                             "the window is replayed)", exc, len(events))
            else:
                log.critical("window of %d events failed; exiting so that it is replayed", len(events),
                             exc_info=True)
            logging.shutdown()
            os._exit(_exit_code(exc))
        _confirm(events)
        await self.commit_acknowledged()
        observe_window(events[0].message.topic, len(events), result.verifications, result.dead_letters)
        lag = getattr(self.app, "consumer_lag", None)  # the gauge's one writer (stream/lag.py); none in unit tests
        if lag is not None:
            lag.soon()
        for v in result.verifications:
            log.info(
                "batch %s applied: %s, %d/%d events, %s",
                v.batch_id, v.collection, v.applied_event_count, v.event_count, v.verification.status,
                extra={"batch_id": v.batch_id, "collection": v.collection, "events": v.event_count,
                       "applied": v.applied_event_count, "dead_letters": len(v.dead_letters),
                       "verification": v.verification.status, "topic": v.topic},
            )
        return True


def _exit_code(exc: BaseException) -> int:
    """The worker's code for a failure no window survives: its storage (74), a setting (78), else a bug (70)."""
    if isinstance(exc, StorageError):
        return EX_IOERR
    return EX_CONFIG if isinstance(exc, ConfigurationError) else EX_SOFTWARE


def end_worker(agent: str, exc: Exception) -> NoReturn:
    """An agent's body raised: end the process (78 for a setting, else 70), never let Faust restart it.

    Faust's supervisor restarts a crashed agent on a new stream, forever: each crash one more
    traceback (a URL typo made 430 lines in 46 s), and the events the old stream had taken stay
    unacknowledged, so commits and shutdown wait for them. Exiting without Faust's last commit
    leaves every uncommitted window to be replayed after a restart."""
    if isinstance(exc, ConfigurationError):
        log.critical("the %s agent cannot run: %s; exiting", agent, exc)
    else:
        log.critical("the %s agent crashed (%s: %s); exiting so that a restart replays what is not committed",
                     agent, type(exc).__name__, exc, exc_info=exc)
    logging.shutdown()
    os._exit(_exit_code(exc))


async def _confirmed(window: asyncio.Future[bool]) -> bool:
    """Wait for a window to end: whether it was confirmed (cancelled: abandoned, not confirmed)."""
    await asyncio.wait({window})
    return not window.cancelled() and window.exception() is None and window.result()


async def run_windows(app: faust.App, settings: Settings, processor: WindowProcessor, stream: Stream[Any],
                      in_hand: WindowsInHand, stopping: Callable[[], bool], crash_after_confirm: Callable[[], None],
                      expect: Literal["patch", "reembed", "cdc"]) -> None:
    """The agent's body: collect windows, parse each ahead, hand it to the runner."""
    runner = Runner(app, settings, processor, in_hand, stopping, crash_after_confirm)
    task = asyncio.ensure_future(runner.run())
    try:
        async for events in stream.take_events(settings.window_max_events, settings.window_max_wait_seconds):
            if task.done():  # the runner only ends by exiting the process or being cancelled
                task.result()
            if runner.abandoning or stopping():
                # Not raised on: Faust would restart the agent on a new stream, and a window the old
                # stream had buffered would stay unacknowledged, so shutdown waited for it forever.
                runner.abandon(events, "not started at shutdown")
                continue
            for event in events:
                event.message.incref()  # the runner's reference: dropped once the window is confirmed
            try:
                records = [_record(e) for e in events]
                window = Window(events, records, processor.parse_ahead(records))
                await runner.queue.put(window)
                WINDOWS_QUEUED.labels(events[0].message.topic).set(runner.queue.qsize())
                log.debug("window of %d events taken, its last at %s:%d:%d", len(events),  # tests wait for it
                          events[-1].message.topic, events[-1].message.partition, events[-1].message.offset)
            except asyncio.CancelledError:
                runner.abandon(events, "the agent stopped")
                raise
    except BaseException:
        task.cancel()  # the runner abandons the window in hand and those queued
        await asyncio.gather(task, return_exceptions=True)
        raise
    if not task.done():
        await runner.close(task)
    log.debug("%s windows stopped", expect)
