"""The Faust app: two agents (patches, re-embeds), wiring only.

Commit discipline: each agent reads windows with ``stream.take_events(max, within)`` and
runs with ``concurrency=1``. Faust acknowledges a window's events only when the agent body
returns, and commits only acknowledged offsets. The body returns after the batch is applied
and its verification event and dead letters are published (``send_and_wait``). If the body
is cancelled midway (shutdown, rebalance), the window is *abandoned*: its messages are
marked so that Faust never acknowledges them, nothing of it is committed, and the next owner
replays it. A failure that may be a record's fault is quarantined: the window is cut in
halves until the record that fails alone is found and dead-lettered (``poison_record``,
:meth:`WindowProcessor.process_quarantining`). Any other failure abandons the window and
exits the process: code 74 when local mode cannot write its storage (disk full, read-only),
code 70 for anything else (also when more than half of a window fails alone: not its records).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import faust
from faust.streams import Stream
from faust.types import EventT
from qdrant_client import AsyncQdrantClient

from connector.dev.failpoints import Failpoints
from connector.errors import StorageError, WindowAbandoned
from connector.metrics import CONSUMER_LAG, REEMBED_RECHECKS, observe_window
from connector.qdrant import make_client, make_retrying
from connector.settings import Settings
from connector.stream.embedder import Embedder
from connector.stream.health import Readiness, probe_qdrant, serve
from connector.stream.kafka_options import ssl_context
from connector.stream.patch_watermark import PatchWatermark
from connector.stream.publishing import dead_letter_message, verification_value
from connector.stream.window import (
    Record,
    WindowProcessor,
    WindowResult,
)

log = logging.getLogger(__name__)

EXIT_BUG = 70  # EX_SOFTWARE: an unexpected failure in a window
EXIT_STORAGE = 74  # EX_IOERR: local mode could not write its storage


class Runtime:
    """The worker's long-lived parts, created inside the worker's event loop on first use."""

    def __init__(self, settings: Settings, client: AsyncQdrantClient | None = None) -> None:
        self.settings = settings
        self.failpoints = Failpoints(settings.failpoints_dir)
        self.embedder = Embedder(settings)
        self._client = client
        self._processors: dict[str, WindowProcessor] = {}
        self._lock = asyncio.Lock()
        self.stopping: Callable[[], bool] = lambda: False  # shutting down (create_app)
        self.rebalancing: Callable[[], bool] = lambda: False

    async def processor(self, expect: Literal["patch", "reembed"]) -> WindowProcessor:
        async with self._lock:
            if self._client is None:
                self._client = make_client(self.settings)
            if expect not in self._processors:
                qdrant = make_retrying(self.settings, self._client, self.failpoints)
                qdrant.stopping = self.stopping
                wait_for_patches = None
                if expect == "reembed" and self.settings.reembed_waits_for_patches:
                    wait_for_patches = PatchWatermark(self.settings, stopping=self.stopping,
                                                      rebalancing=self.rebalancing).wait
                self._processors[expect] = WindowProcessor(
                    self.settings, self._client, qdrant, self.embedder, expect, failpoints=self.failpoints,
                    before_payload_texts=wait_for_patches,
                )
            return self._processors[expect]


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


def _observe_lag(app: faust.App, events: Sequence[EventT[Any]]) -> None:
    last: dict[Any, int] = {}
    for event in events:
        last[event.message.tp] = max(last.get(event.message.tp, -1), event.message.offset)
    for tp, offset in last.items():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))


def abandon(events: Sequence[EventT[Any]]) -> None:
    """Make Faust skip acknowledging these events, so their offsets are never committed.

    Only safe when no later event of the same partition is acknowledged in this process:
    Faust commits past a gap of one offset at the head of a partition's acknowledged offsets.
    So a worker abandons at shutdown only, and then every window after the first one it
    abandons too (``run_windows``)."""
    for event in events:
        event.message.acked = True


RECHECK_HEADER = "qcc.recheck-of"


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


def _credentials(settings: Settings) -> Any:
    context = ssl_context(settings)
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings, client: AsyncQdrantClient | None = None) -> faust.App:
    """The connector's Faust app for these settings.

    ``client`` shares an existing Qdrant client (embedded local mode allows one process per
    storage folder, so a migration run in the same process must share it).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.consumer_group,
        broker=settings.kafka_broker_url(),
        broker_credentials=_credentials(settings),
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.session_timeout_seconds,
        consumer_group_instance_id=settings.group_instance_id,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        consumer_auto_offset_reset="earliest",
        datadir=str(settings.data_dir),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_allow_declare=False,  # topics are created by `qdrant-change-connector topics`
        topic_disable_leader=True,
        producer_acks=-1,
        # Faust's default is 1 MiB a partition: ~130 upserts of 384-d vectors, so a window of 500
        # took several fetch round trips, each waiting for the event loop between windows; the
        # worker stalled on fetching (650 vs 1,650 upserts/s, docs/design.md "Fetch size").
        consumer_max_fetch_size=settings.consumer_max_fetch_bytes,
        producer_max_request_size=settings.publish_max_bytes + 16_384,  # what publishing.py sizes for
    )
    runtime = Runtime(settings, client)
    # Shutting down: Faust waits for the window in hand, so a window that waits (Qdrant retries,
    # the patch watermark) gives up and is replayed by the next owner. Not at a rebalance: an
    # abandoned window whose partition stays here was committed past without a replay (seen in
    # the scale-out fault test), so there the watermark stops waiting instead (patch_watermark.py).
    runtime.stopping = lambda: bool(app.should_stop)
    runtime.rebalancing = lambda: bool(app.rebalancing)
    app.connector_runtime = runtime  # type: ignore[attr-defined]

    async def run_windows(stream: Stream[Any], expect: Literal["patch", "reembed"]) -> None:
        processor = await runtime.processor(expect)
        async for events in stream.take_events(settings.window_max_events, settings.window_max_wait_seconds):
            if runtime.stopping():  # a window the stream buffered before shutdown: the next owner replays it
                abandon(events)
                log.info("window of %d events not started at shutdown; it will be replayed", len(events))
                continue
            try:
                result = await processor.process_quarantining([_record(e) for e in events])
                await publish(app, settings, result)
                runtime.failpoints.crash_if_active("crash-after-confirm")
            except asyncio.CancelledError:  # shutdown or rebalance: the next owner replays the window
                abandon(events)
                log.warning("window of %d events abandoned at shutdown; it will be replayed", len(events))
                raise
            except WindowAbandoned as given_up:  # it waited (Qdrant retries, the patch watermark) at shutdown
                # Not raised on: Faust would restart the agent on a new stream, and a window the old
                # stream had buffered would stay unacknowledged, so shutdown waited for it forever.
                # The loop goes on and abandons what the stream still holds (above).
                abandon(events)
                log.warning("window of %d events abandoned (%s); it will be replayed", len(events), given_up)
                continue
            except Exception as exc:
                # Bad input never gets here (it is dead-lettered): this is local storage that cannot
                # be written, a bug, a configuration error or a broker failure. Exit at once so the
                # orchestrator restarts the worker: nothing of this window is committed, and the
                # restart replays it.
                abandon(events)
                if isinstance(exc, StorageError):
                    log.critical("Qdrant local storage failed: %s. Nothing of this window of %d events is committed; "
                                 "free space or make %s writable, then restart: the window is replayed",
                                 exc, len(events), settings.qdrant_path)
                else:
                    log.critical("window of %d events failed; exiting so that it is replayed", len(events),
                                 exc_info=True)
                logging.shutdown()
                os._exit(EXIT_STORAGE if isinstance(exc, StorageError) else EXIT_BUG)
            observe_window(events[0].message.topic, len(events), result.verifications, result.dead_letters)
            _observe_lag(app, events)
            for v in result.verifications:
                log.info(
                    "batch %s applied: %s, %d/%d events, %s",
                    v.batch_id, v.collection, v.applied_event_count, v.event_count, v.verification.status,
                    extra={"batch_id": v.batch_id, "collection": v.collection, "events": v.event_count,
                           "applied": v.applied_event_count, "dead_letters": len(v.dead_letters),
                           "verification": v.verification.status, "topic": v.topic},
                )

    patch_topic = app.topic(settings.patch_topic, key_type=bytes, value_type=bytes)
    reembed_topic = app.topic(settings.reembed_topic, key_type=bytes, value_type=bytes)

    @app.agent(patch_topic, concurrency=1, name="patches")
    async def patches(stream: faust.StreamT[Any]) -> None:
        await run_windows(cast(Stream[Any], stream), "patch")

    @app.agent(reembed_topic, concurrency=1, name="reembeds")
    async def reembeds(stream: faust.StreamT[Any]) -> None:
        await run_windows(cast(Stream[Any], stream), "reembed")

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators carry no types
    async def warm_up() -> None:
        log.info("settings: %s", json.dumps(settings.public_dump(), default=str))
        await asyncio.get_running_loop().run_in_executor(None, runtime.embedder.warm_up)

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators carry no types
    async def http_endpoints() -> None:
        if settings.http_port == 0:
            return
        readiness = Readiness(assigned=lambda: bool(app.consumer.assignment()))
        await serve(readiness, settings.http_host, settings.http_port)
        processor = await runtime.processor("patch")

        async def probe() -> None:
            fault = runtime.failpoints.qdrant_fault()
            if fault is not None:
                raise fault
            if processor.qdrant.failure is not None:
                raise ConnectionError(f"a Qdrant call is being retried: {processor.qdrant.failure}")
            await processor.client.get_collections()

        await probe_qdrant(readiness, probe)

    return app
