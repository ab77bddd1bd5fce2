"""The Faust app: two agents (patches, re-embeds) and, with QCC_CDC_TOPICS, a third for Debezium
change events (cdc); wiring only.

Each agent reads windows with ``stream.take_events(max, within)`` and runs with
``concurrency=1``; connector/stream/pipeline.py applies them, up to ``QCC_WINDOWS_IN_FLIGHT``
at once where they share no point (else one after another), while the agent collects and parses
the next, and acknowledges (lets Faust commit) a window's events only once it and every window
before it are applied and their verification events and dead letters are published, in order. A window
cut short by shutdown is abandoned and replayed by the next owner; a failure that may be a
record's fault is quarantined (:meth:`WindowProcessor.process_quarantining`); any other failure,
in a window or in an agent's own body, exits the process (74: local storage cannot be written; 78: a
setting that cannot work; 70: anything else) rather than letting Faust restart the agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import faust
from faust.streams import Stream
from faust.types import TP
from qdrant_client import AsyncQdrantClient

from connector.domain.cdc_mapping import CdcMapping
from connector.domain.documents import chunked_fields
from connector.embedding.embedder import Embedder
from connector.errors import ConfigurationError
from connector.exit_codes import EX_CONFIG
from connector.failpoints import Failpoints
from connector.kafka.options import ssl_context
from connector.logs import BROKER_OUTAGE
from connector.qdrant import make_client, make_retrying
from connector.qdrant.server_version import ask_server_version, judge_server
from connector.settings import Settings
from connector.stream import pipeline
from connector.stream.broker_probe import BrokerProbe
from connector.stream.cdc_mapping_file import load_cdc_mapping
from connector.stream.health import Readiness, probe_qdrant, serve
from connector.stream.lag import ConsumerLag
from connector.stream.patch_watermark import PatchWatermark
from connector.stream.quiet_monitor import QuietMonitor
from connector.stream.window import WindowProcessor
from connector.versions import LOCAL, ServerVersion

log = logging.getLogger(__name__)


class Runtime:
    """The worker's long-lived parts, created inside the worker's event loop on first use."""

    def __init__(self, settings: Settings, client: AsyncQdrantClient | None = None,
                 embedder: Embedder | None = None, cdc_mapping: CdcMapping | None = None,
                 server: ServerVersion | None = LOCAL) -> None:
        self.settings = settings
        # the Qdrant server's version, asked at start (cli.py; None: not answered yet, asked by the
        # app until it is): what it lacks is off
        self.server = server
        self.cdc_mapping = cdc_mapping
        self.failpoints = Failpoints(settings.failpoints_dir)
        self.embedder = embedder or Embedder(settings)
        self._client = client
        self._processors: dict[str, WindowProcessor] = {}
        self._lock = asyncio.Lock()
        self.stopping: Callable[[], bool] = lambda: False  # shutting down (create_app)
        self.rebalancing: Callable[[], bool] = lambda: False

    def client(self) -> AsyncQdrantClient:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    async def processor(self, expect: Literal["patch", "reembed", "cdc"]) -> WindowProcessor:
        async with self._lock:
            if self._client is None:
                self._client = make_client(self.settings)
            if expect not in self._processors:
                self._processors[expect] = self._new_processor(self._client, expect)
            return self._processors[expect]

    def server_known(self, server: ServerVersion) -> None:
        """The version asked after start: every processor's Qdrant caller turns off what it lacks."""
        self.server = server
        for processor in self._processors.values():
            processor.qdrant.server = server

    def _new_processor(self, client: AsyncQdrantClient, expect: Literal["patch", "reembed", "cdc"]) -> WindowProcessor:
        qdrant = make_retrying(self.settings, client, self.failpoints)
        qdrant.stopping = self.stopping
        qdrant.server = self.server or LOCAL
        mapping = self.cdc_mapping
        if mapping is None and self.settings.cdc_mapping is not None:
            mapping = self.cdc_mapping = load_cdc_mapping(self.settings.cdc_mapping)
        chunked = chunked_fields(self.settings, mapping)  # a mapping's chunked collections are every agent's
        if expect == "cdc":  # Debezium records, mapped to patch and re-embed events with inline texts
            return WindowProcessor(self.settings, client, qdrant, self.embedder, "patch", failpoints=self.failpoints,
                                   cdc_mapping=mapping or load_cdc_mapping(Path()), chunked=chunked)
        wait_for_patches = None
        if expect == "reembed" and self.settings.reembed_waits_for_patches:
            wait_for_patches = PatchWatermark(self.settings, stopping=self.stopping, rebalancing=self.rebalancing).wait
        return WindowProcessor(self.settings, client, qdrant, self.embedder, expect, failpoints=self.failpoints,
                               before_payload_texts=wait_for_patches, chunked=chunked)


class ConnectorApp(faust.App):
    """faust.App whose partitions, revoked while it stops, wait for the windows in hand.

    Faust waits for unacknowledged events at a rebalance, except when the app is stopping:
    then ``_on_partitions_revoked`` closes the consumer at once, and the partitions' next owner
    replays a window this worker is still applying (pipeline.py). Waiting here holds the
    rebalance (the consumer keeps heartbeating) until that window is confirmed or given up;
    at shutdown the Qdrant retries and the patch watermark give up, so the wait is short.
    ``_on_partitions_revoked`` is Faust's own rebalance callback, not a public hook: checked on
    faust-streaming 0.15.3, the version pinned in pyproject.toml."""

    windows_in_hand: pipeline.WindowsInHand

    async def _on_partitions_revoked(self, revoked: set[TP]) -> None:
        if self.should_stop and self.windows_in_hand.count:
            log.info("partitions revoked while stopping: waiting for %d window(s) in hand to end first",
                     self.windows_in_hand.count)
            await self.windows_in_hand.idle()
        await super()._on_partitions_revoked(revoked)


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


def create_app(settings: Settings, client: AsyncQdrantClient | None = None,
               embedder: Embedder | None = None, readiness: Readiness | None = None,
               broker_probe: BrokerProbe | None = None, cdc_mapping: CdcMapping | None = None,
               server: ServerVersion | None = LOCAL) -> faust.App:
    """The connector's Faust app for these settings.

    ``client`` shares an existing Qdrant client (embedded local mode allows one process per
    storage folder, so a migration run in the same process must share it); ``embedder`` one
    whose models are loaded already. The worker command serves the HTTP endpoints and waits for
    the broker before Faust starts (cli.py): it passes its ``readiness`` (the app then serves no
    endpoints of its own) and its ``broker_probe``; ``cdc_mapping`` the mapping it read (else the
    app reads QCC_CDC_MAPPING when the first CDC window comes).
    """
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"QCC_DATA_DIR={settings.data_dir}: cannot create the worker's state folder: "
                                 f"{exc.strerror or exc}") from exc
    app = ConnectorApp(
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
        Monitor=QuietMonitor,  # no statistics of every event for the web views turned off above
        topic_allow_declare=False,  # topics are created by `qdrant-change-connector topics`
        topic_disable_leader=True,
        producer_acks=-1,
        # No tables, so no standby replicas: Faust's default of one keeps a standby of each
        # partition on a worker, and its assignor hands a partition to a worker holding its
        # standby first. A third worker joining two that had split four partitions got none
        # and sat idle (seen in the scale-out fault test; tests/unit/test_assignment.py).
        table_standby_replicas=0,
        # Faust's default is 1 MiB a partition: ~130 upserts of 384-d vectors, so a window of 500
        # took several fetch round trips, each waiting for the event loop between windows; the
        # worker stalled on fetching (650 vs 1,650 upserts/s, docs/design.md "Fetch size").
        consumer_max_fetch_size=settings.consumer_max_fetch_bytes,
        producer_max_request_size=settings.publish_max_bytes + 16_384,  # what publishing.py sizes for
    )
    app.windows_in_hand = pipeline.WindowsInHand()
    runtime = Runtime(settings, client, embedder, cdc_mapping, server)
    # Shutting down: Faust waits for the window in hand, so a window that waits (Qdrant retries,
    # the patch watermark) gives up and is replayed by the next owner. Not at a rebalance: an
    # abandoned window whose partition stays here was committed past without a replay (seen in
    # the scale-out fault test), so there the watermark stops waiting instead (patch_watermark.py).
    runtime.stopping = lambda: bool(app.should_stop)
    runtime.rebalancing = lambda: bool(app.rebalancing)
    app.connector_runtime = runtime  # type: ignore[attr-defined]

    async def run_windows(stream: Stream[Any], expect: Literal["patch", "reembed", "cdc"]) -> None:
        try:
            runtime.failpoints.raise_if_active("agent-crash")
            processor = await runtime.processor(expect)
            await pipeline.run_windows(app, settings, processor, stream, app.windows_in_hand, runtime.stopping,
                                       lambda: runtime.failpoints.crash_if_active("crash-after-confirm"), expect)
        except Exception as exc:  # noqa: BLE001 - any crash ends the worker; Faust would restart the agent forever
            pipeline.end_worker(expect, exc)

    patch_topic = app.topic(settings.patch_topic, key_type=bytes, value_type=bytes)
    reembed_topic = app.topic(settings.reembed_topic, key_type=bytes, value_type=bytes)

    @app.agent(patch_topic, concurrency=1, name="patches")
    async def patches(stream: faust.StreamT[Any]) -> None:
        await run_windows(cast(Stream[Any], stream), "patch")

    @app.agent(reembed_topic, concurrency=1, name="reembeds")
    async def reembeds(stream: faust.StreamT[Any]) -> None:
        await run_windows(cast(Stream[Any], stream), "reembed")

    if settings.cdc_topics:
        cdc_topics = app.topic(*settings.cdc_topics, key_type=bytes, value_type=bytes)

        @app.agent(cdc_topics, concurrency=1, name="cdc")
        async def cdc(stream: faust.StreamT[Any]) -> None:
            await run_windows(cast(Stream[Any], stream), "cdc")

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators carry no types
    async def warm_up() -> None:
        log.info("settings: %s", json.dumps(settings.public_dump(), default=str))
        await asyncio.get_running_loop().run_in_executor(None, runtime.embedder.warm_up)

    probe_broker = broker_probe or BrokerProbe(settings, BROKER_OUTAGE)

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators carry no types
    async def watch_broker() -> None:
        # the libraries' own lines about the broker are counted, not written (connector/logs.py):
        # this probe says when an outage ends, and keeps /readyz's reason current
        try:
            await probe_broker.watch()
        finally:
            await probe_broker.close()

    # the lag gauge from the first assignment on, not from the first window (connector/stream/lag.py)
    consumer_lag = ConsumerLag(settings, lambda: app.consumer)
    app.consumer_lag = consumer_lag  # type: ignore[attr-defined]  # the pipeline asks it after each window

    async def lag_after_assignment(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:  # noqa: ARG001
        consumer_lag.assigned()

    app.on_partitions_assigned.connect(lag_after_assignment)

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators carry no types
    async def watch_consumer_lag() -> None:
        await consumer_lag.watch()

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators carry no types
    async def qdrant_version() -> None:
        """A server that did not answer its version at start (cli.py) is asked until it does: below
        the supported floor the worker ends with one line (exit 78), as at start."""
        if runtime.server is not None:
            return
        client = runtime.client()
        while True:
            try:
                server = await ask_server_version(client, settings, timeout=min(settings.qdrant_timeout_seconds, 10.0))
            except ValueError as exc:
                log.critical("%s at %s: check QCC_QDRANT_URL", exc, settings.qdrant_url)
                logging.shutdown()
                os._exit(EX_CONFIG)
            except Exception:  # noqa: BLE001 - not answering yet: the readiness probe says why
                await asyncio.sleep(2.0)
                continue
            if not judge_server(server, log):
                logging.shutdown()
                os._exit(EX_CONFIG)
            runtime.server_known(server)
            return

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators carry no types
    async def http_endpoints() -> None:
        ready = readiness
        if ready is None:
            if settings.http_port == 0:
                return
            ready = Readiness(assigned=lambda: False, broker_problem=BROKER_OUTAGE.reason)
            await serve(ready, settings.http_host, settings.http_port)
        ready.assigned = lambda: bool(app.consumer.assignment())
        processor = await runtime.processor("patch")

        async def probe() -> None:
            fault = runtime.failpoints.qdrant_fault()
            if fault is not None:
                raise fault
            if processor.qdrant.failure is not None:
                raise ConnectionError(f"a Qdrant call is being retried: {processor.qdrant.failure}")
            await processor.client.get_collections()

        await probe_qdrant(ready, probe)

    return app
