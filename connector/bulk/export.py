"""Export: scroll a collection into a JSON Lines dump (optionally gzip) plus a manifest.

Resumable: after every page the dump is flushed and a checkpoint records the next scroll
offset and the dump's size; ``resume=True`` cuts the dump back to that size and continues.
A gzip dump is written one gzip member per page, so a cut at a page boundary stays valid.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import models as qm

from connector import __version__
from connector.bulk.collection_config import info_to_json
from connector.bulk.dump import (
    digest,
    id_key,
    manifest_path,
    open_dump,
    point_line,
    read_dump,
    vectors_config,
)
from connector.bulk.scroll import Checkpoint, PointsProgress
from connector.qdrant import RetryingClient
from connector.qdrant.reads import count_points, scroll_pages


@dataclass(frozen=True)
class ExportSummary:
    collection: str
    dump: Path
    manifest: Path
    points: int
    resumed_from: int


def _start_dump(dump: Path, resume_bytes: int | None) -> dict[str, str] | None:
    """Cut an existing dump back to ``resume_bytes`` and return the digests of what it keeps;
    else (no resume point, or no dump) start an empty dump and return None."""
    if resume_bytes is None or not dump.exists():
        dump.write_bytes(b"")
        return None
    with dump.open("r+b") as handle:
        handle.truncate(resume_bytes)
    return {id_key(line["id"]): digest(line) for line in read_dump(dump)}


def _append(dump: Path, lines: list[dict[str, Any]]) -> int:
    """Append one page (one gzip member) to the dump; the dump's size after it."""
    with open_dump(dump, "a") as handle:
        for line in lines:
            handle.write(json.dumps(line, separators=(",", ":")) + "\n")
    return dump.stat().st_size


async def export_collection(
    qdrant: RetryingClient,
    collection: str,
    dump: Path,
    *,
    scroll_filter: qm.Filter | None = None,
    with_payload: bool | list[str] = True,
    with_vectors: bool | list[str] = True,
    page_size: int = 256,
    resume: bool = False,
    show_progress: bool = True,
) -> ExportSummary:
    info = await qdrant.call(f"get_collection({collection})", lambda: qdrant.client.get_collection(collection))
    total = await count_points(qdrant, collection, scroll_filter)
    checkpoint = Checkpoint(dump.with_name(dump.name + ".progress.json"))
    state = checkpoint.load() if resume else None
    kept = await asyncio.to_thread(_start_dump, dump, None if state is None else state["bytes"])
    start: Any = None if kept is None or state is None else state["next_offset"]
    digests: dict[str, str] = kept or {}
    resumed_from = len(digests)
    with PointsProgress(f"export {collection}", total, show_progress) as progress:
        progress.skip_to(resumed_from)
        async for page, next_offset in scroll_pages(
            qdrant,
            collection,
            scroll_filter=scroll_filter,
            with_payload=with_payload,
            with_vectors=with_vectors,
            page_size=page_size,
            start=start,
        ):
            lines = [point_line(record) for record in page]
            size = await asyncio.to_thread(_append, dump, lines)
            digests.update((id_key(line["id"]), digest(line)) for line in lines)
            checkpoint.save({"next_offset": next_offset, "bytes": size})
            progress.advance(len(lines))
    manifest = {
        "tool": "qdrant-change-connector",
        "version": __version__,
        "config": vectors_config(info),  # vectors only: what dumps before "collection" carried
        "collection": info_to_json(info),  # the whole configuration, payload indexes included
        "filter": scroll_filter.model_dump(mode="json", exclude_none=True) if scroll_filter else None,
        "with_payload": with_payload,
        "with_vectors": with_vectors,
        "count": len(digests),
        "digests": digests,
    }
    manifest_path(dump).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    checkpoint.clear()
    return ExportSummary(collection, dump, manifest_path(dump), len(digests), resumed_from)
