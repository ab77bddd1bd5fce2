"""Export: scroll a collection into a JSON Lines dump (optionally gzip) plus a manifest.

Nothing is written before the options check out: the output can be created, the collection
exists, it has the vectors ``--vectors`` names and some point has each key ``--payload`` names
(:mod:`connector.bulk.selection`). The points go to ``<name>.partial<suffix>`` first; the dump
gets its own name only once it is whole and its manifest is written, so a failed export leaves
no dump that looks finished (and removes its partial file: one interrupted, Ctrl-C, is kept).

Resumable: after every page the partial dump is flushed and a checkpoint records the next
scroll offset and its size; ``resume=True`` cuts it back to that size and continues. A gzip
dump is written one gzip member per page, so a cut at a page boundary stays valid.

A collection of chunked documents (points with ``_chunk``) is dumped as its chunk points, as they
are; the manifest's ``chunked`` says so, with how many documents and the chunking the settings
name for the collection (connector/bulk/documents.py).
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
from connector.bulk.documents import chunked_manifest
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
from connector.bulk.selection import check_payload_keys, check_vectors
from connector.domain.documents import CHUNK_KEY
from connector.errors import CannotCreateOutput, InvalidOption
from connector.qdrant import RetryingClient
from connector.qdrant.reads import count_points, scroll_pages
from connector.settings import ChunkedField


@dataclass(frozen=True)
class ExportSummary:
    collection: str
    dump: Path
    manifest: Path
    points: int
    resumed_from: int
    collection_points: int  # in the whole collection: tells "the filter matched nothing" from "empty"
    documents: int = 0  # chunked documents whose chunk points the dump holds


def partial_path(dump: Path) -> Path:
    """Where the dump is written until it is whole: ``docs.partial.jsonl``, ``docs.jsonl.partial.gz``
    (the suffix kept, so a gzip dump is written as gzip)."""
    return dump.with_name(f"{dump.stem}.partial{dump.suffix}")


def check_output(dump: Path, collection: str) -> None:
    """CannotCreateOutput unless a dump can be created at ``dump`` (nothing is created here)."""
    if dump.is_dir():
        raise CannotCreateOutput(f"cannot write the dump to {dump}: it is a folder (name a file in it, e.g. "
                                 f"{dump / (collection + '.jsonl')})")
    folder = dump.parent
    if not folder.is_dir():
        raise CannotCreateOutput(f"cannot write the dump to {dump}: there is no folder {folder} (create it first)")


def _start_dump(dump: Path, resume_bytes: int | None, documents: set[str]) -> dict[str, str] | None:
    """Cut an existing dump back to ``resume_bytes`` and return the digests of what it keeps (its
    chunked documents added to ``documents``); else (no resume point, or no dump) start an empty
    dump and return None."""
    if resume_bytes is None or not dump.exists():
        try:
            dump.write_bytes(b"")
        except OSError as exc:
            raise CannotCreateOutput(f"cannot write the dump to {dump}: {exc.strerror or exc}") from exc
        return None
    with dump.open("r+b") as handle:
        handle.truncate(resume_bytes)
    digests = {}
    for line in read_dump(dump):
        digests[id_key(line["id"])] = digest(line)
        _note_document(line, documents)
    return digests


def _note_document(line: dict[str, Any], documents: set[str]) -> None:
    """Add the document a dumped point is a chunk of, if it is one."""
    meta = line["payload"].get(CHUNK_KEY)
    if isinstance(meta, dict) and isinstance(meta.get("document_id"), str):
        documents.add(meta["document_id"])


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
    chunking: ChunkedField | None = None,
) -> ExportSummary:
    """``chunking``: how the collection's documents are chunked (QCC_CHUNKED_COLLECTIONS), for the
    manifest of a collection of chunked documents."""
    if page_size < 1:
        raise InvalidOption(f"--page-size {page_size}", "a page holds at least one point")
    check_output(dump, collection)
    info = await qdrant.call(f"get_collection({collection})", lambda: qdrant.client.get_collection(collection))
    if isinstance(with_vectors, list):
        check_vectors("--vectors", with_vectors, info, collection)
    total = await count_points(qdrant, collection, scroll_filter)
    if isinstance(with_payload, list):
        await check_payload_keys(qdrant, "--payload", with_payload, collection, scroll_filter, total)
    everything = await count_points(qdrant, collection) if scroll_filter is not None else total
    writing = partial_path(dump)
    checkpoint = Checkpoint(dump.with_name(dump.name + ".progress.json"))
    try:
        return await _export(qdrant, collection, dump, writing, checkpoint, info=info, total=total,
                             everything=everything, scroll_filter=scroll_filter, with_payload=with_payload,
                             with_vectors=with_vectors, page_size=page_size, resume=resume,
                             show_progress=show_progress, chunking=chunking)
    except Exception:  # Ctrl-C is no Exception: an interrupted export keeps its partial dump for --resume
        writing.unlink(missing_ok=True)
        checkpoint.clear()
        raise


async def _export(
    qdrant: RetryingClient, collection: str, dump: Path, writing: Path, checkpoint: Checkpoint, *,
    info: qm.CollectionInfo, total: int, everything: int, scroll_filter: qm.Filter | None,
    with_payload: bool | list[str],
    with_vectors: bool | list[str], page_size: int, resume: bool, show_progress: bool,
    chunking: ChunkedField | None,
) -> ExportSummary:
    """The pages into ``writing``, then the manifest; ``writing`` becomes ``dump`` last."""
    state = checkpoint.load() if resume else None
    documents: set[str] = set()
    kept = await asyncio.to_thread(_start_dump, writing, None if state is None else state["bytes"], documents)
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
            for line in lines:
                _note_document(line, documents)
            size = await asyncio.to_thread(_append, writing, lines)
            digests.update((id_key(line["id"]), digest(line)) for line in lines)
            checkpoint.save({"next_offset": next_offset, "bytes": size})
            progress.advance(len(lines))
    manifest: dict[str, Any] = {
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
    if documents:  # chunk points of documents (connector/domain/documents.py): import indexes them
        manifest["chunked"] = chunked_manifest(len(documents), chunking)
    await asyncio.to_thread(_finish, dump, writing, manifest)
    checkpoint.clear()
    return ExportSummary(collection, dump, manifest_path(dump), len(digests), resumed_from, everything,
                         len(documents))


def _finish(dump: Path, writing: Path, manifest: dict[str, Any]) -> None:
    """The manifest (written whole, then renamed), then the dump under its own name."""
    written = manifest_path(dump).with_name(manifest_path(dump).name + ".tmp")
    try:
        written.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        written.replace(manifest_path(dump))
    finally:
        written.unlink(missing_ok=True)
    writing.replace(dump)
