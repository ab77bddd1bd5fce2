"""Scroll pages, progress bars and resumable checkpoints shared by the bulk tools."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from connector.bulk.collection_config import strict_limit
from connector.sink import QdrantSink


async def scroll_pages(
    sink: QdrantSink,
    collection: str,
    *,
    scroll_filter: qm.Filter | None = None,
    with_payload: bool | list[str] = True,
    with_vectors: bool | list[str] = True,
    page_size: int = 256,
    start: Any = None,
) -> AsyncIterator[tuple[list[qm.Record], Any]]:
    """Yield (page, next_offset) in id order from ``start``; next_offset is None on the last page.

    Pages are no larger than the collection's strict-mode query limit, which would refuse them."""
    client: AsyncQdrantClient = sink.client
    info = await sink.call(f"get_collection({collection})", lambda: client.get_collection(collection))
    page_size = min(page_size, strict_limit(info, "max_query_limit") or page_size)
    offset = start
    while True:
        page, next_offset = await sink.call(
            f"scroll({collection})",
            partial(client.scroll, collection, scroll_filter=scroll_filter, limit=page_size, offset=offset,
                    with_payload=with_payload, with_vectors=with_vectors),
        )
        yield page, next_offset
        if next_offset is None:
            return
        offset = next_offset


async def count_points(sink: QdrantSink, collection: str, scroll_filter: qm.Filter | None = None) -> int:
    result = await sink.call(
        f"count({collection})", lambda: sink.client.count(collection, count_filter=scroll_filter, exact=True)
    )
    return int(result.count)


class PointsProgress:
    """A progress bar with points done, points/s, elapsed time and ETA (off when not wanted)."""

    def __init__(self, description: str, total: int | None, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7} points/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self._task = self._progress.add_task(description, total=total, rate="-")
        self._started = time.monotonic()
        self.done = 0

    def __enter__(self) -> PointsProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, points: int) -> None:
        self.done += points
        rate = self.done / max(time.monotonic() - self._started, 1e-9)
        self._progress.update(self._task, advance=points, rate=f"{rate:.0f}")

    def skip_to(self, points: int) -> None:
        """Count points done by an earlier run (resume) without counting them in the rate."""
        self._progress.update(self._task, completed=points)


class Checkpoint:
    """A small JSON file, replaced atomically, that lets a run resume after its last page."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        state: dict[str, Any] = json.loads(self.path.read_text())
        return state

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def parse_filter(text: str | None) -> qm.Filter | None:
    """A Qdrant filter from JSON, or ``key=value`` for the common single-match case."""
    if not text:
        return None
    if text.lstrip().startswith("{"):
        return qm.Filter.model_validate(json.loads(text))
    key, _, value = text.partition("=")
    if not _:
        raise ValueError("a filter is a Qdrant filter as JSON, or key=value")
    return qm.Filter(must=[qm.FieldCondition(key=key.strip(), match=qm.MatchValue(value=value.strip()))])
