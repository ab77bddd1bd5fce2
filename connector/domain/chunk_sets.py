"""A chunked collection's documents as their chunk points hold them, checked whole. Pure: no IO.

The bulk tools read chunk points (connector/domain/documents.py made them) and ask of each
document: is its chunk set complete (one chunk at each index 0..count-1, all of one version of
its text, each chunk's text hashing to its ``sha256``), and does the text rebuilt from the chunks
(:func:`~connector.domain.chunking.rebuild_text`) hash to ``_chunk.document_sha256``? Only then
is a copy of it whole (:func:`document_text`). A re-chunk may also rebuild a document whose last
write was cut short, its new chunks written and its stale ones not yet deleted
(:func:`rebuildable_text`): the text is still all there, proven by its hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.domain.chunking import rebuild_text, sha256_text
from connector.settings import CHUNK_KEY

__all__ = [
    "ChunkRecord",
    "DocumentText",
    "chunk_record",
    "document_digest",
    "document_id_of",
    "document_keys_filter",
    "document_text",
    "group_by_document",
    "rebuildable_text",
]

LISTED = 8  # indexes named in a problem


class _ChunkMeta(BaseModel):
    """What ``_chunk`` holds (connector/domain/documents.py writes it)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    document_id: str
    index: int = Field(ge=0)
    count: int = Field(ge=1)
    sha256: str
    document_sha256: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk point: its id and its ``_chunk``."""

    point_id: Any
    document_id: str  # as _chunk.document_id holds it: text
    index: int
    count: int
    sha256: str
    document_sha256: str
    start: int
    end: int
    text: str


def chunk_record(point_id: Any, payload: Mapping[str, Any] | None) -> ChunkRecord | str | None:
    """The chunk a point is; None for a point that is no chunk (no ``_chunk.document_id``); a
    problem (text) for one whose ``_chunk`` names a document but is not a chunk's."""
    meta = (payload or {}).get(CHUNK_KEY)
    if not isinstance(meta, dict) or not isinstance(meta.get("document_id"), str):
        return None
    try:
        parsed = _ChunkMeta.model_validate(meta)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in error["loc"]) for error in exc.errors())
        return f"point {point_id}: its {CHUNK_KEY} is not a chunk's ({fields})"
    return ChunkRecord(point_id, parsed.document_id, parsed.index, parsed.count, parsed.sha256,
                       parsed.document_sha256, parsed.start, parsed.end, parsed.text)


def document_id_of(key: str) -> int | str:
    """A document id as events name it, from ``_chunk.document_id`` (text): "42" -> 42; a UUID stays text."""
    return int(key) if key.isdecimal() and str(int(key)) == key else key


def document_keys_filter(keys: Sequence[str]) -> dict[str, Any]:
    """The Qdrant filter of every chunk of these documents, by ``_chunk.document_id`` as stored."""
    return {"must": [{"key": f"{CHUNK_KEY}.document_id", "match": {"any": list(keys)}}]}


def group_by_document(points: Iterable[tuple[Any, Mapping[str, Any] | None]]) -> tuple[
        dict[str, list[ChunkRecord]], dict[str, list[str]]]:
    """Chunk points by document (key as stored), and the problems of points whose ``_chunk`` is
    not a chunk's, by document; points that are no chunk are left out."""
    chunks: dict[str, list[ChunkRecord]] = {}
    problems: dict[str, list[str]] = {}
    for point_id, payload in points:
        record = chunk_record(point_id, payload)
        if isinstance(record, ChunkRecord):
            chunks.setdefault(record.document_id, []).append(record)
        elif record is not None:
            problems.setdefault(str((payload or {})[CHUNK_KEY]["document_id"]), []).append(record)
    return chunks, problems


@dataclass(frozen=True)
class DocumentText:
    """A document rebuilt from its chunks: its text, and the payload its chunks share (without ``_chunk``)."""

    text: str
    payload: dict[str, Any]


def _indexes(indexes: Iterable[int]) -> str:
    shown = sorted(indexes)
    return ", ".join(map(str, shown[:LISTED])) + (f" and {len(shown) - LISTED} more" if len(shown) > LISTED else "")


def document_text(chunks: Sequence[ChunkRecord], payloads: Mapping[Any, Mapping[str, Any]] | None = None
                  ) -> DocumentText | str:
    """The document whose chunk points these are (every one of them), or why it cannot be rebuilt:
    the problem, in words. ``payloads``: the points' payloads by id (the document's payload, which
    every chunk holds beside ``_chunk``); without them it is empty."""
    if not chunks:
        return "no chunk"
    counts = sorted({c.count for c in chunks})
    if len(counts) > 1:
        return f"its chunks disagree on their count ({', '.join(map(str, counts))}): parts of different writes"
    if len({c.document_sha256 for c in chunks}) > 1:
        return "its chunks are of different versions of its text (their document_sha256 differ)"
    count = counts[0]
    by_index: dict[int, list[ChunkRecord]] = {}
    for chunk in chunks:
        by_index.setdefault(chunk.index, []).append(chunk)
    problems = []
    twice = [i for i, found in by_index.items() if len(found) > 1]
    if twice:
        problems.append(f"chunks {_indexes(twice)} there more than once")
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        problems.append(f"chunks {_indexes(missing)} of {count} missing")
    beyond = [i for i in by_index if i >= count]
    if beyond:
        problems.append(f"chunks {_indexes(beyond)} beyond its count {count}")
    damaged = [c.index for c in chunks if sha256_text(c.text) != c.sha256 or c.end - c.start != len(c.text)]
    if damaged:
        problems.append(f"chunks {_indexes(damaged)} whose text is not their sha256 or span")
    if problems:
        return "; ".join(problems)
    try:
        text = rebuild_text([(c.start, c.end, c.text) for c in chunks])
    except ValueError as exc:
        return f"its chunks do not cover its text ({exc})"
    if sha256_text(text) != chunks[0].document_sha256:
        return "its text rebuilt from its chunks does not hash to its document_sha256"
    shared = [_without_chunk((payloads or {}).get(c.point_id)) for c in sorted(chunks, key=lambda c: c.index)]
    if any(payload != shared[0] for payload in shared):
        return "its chunks disagree on the document's payload"
    return DocumentText(text, shared[0])


def rebuildable_text(chunks: Sequence[ChunkRecord], payloads: Mapping[Any, Mapping[str, Any]] | None = None
                     ) -> DocumentText | str:
    """The document a re-chunk can rebuild from these chunk points: :func:`document_text` where they
    are whole; where they disagree on their count, as a write of the document's chunks cut short
    leaves them (a re-chunk stopped between its new chunks and its stale ones' delete, or among its
    new chunks), the text they still hold: chunks of one text (``document_sha256``), each true to
    its sha256 and span, together covering it and rebuilding to that hash, all of one payload.
    The re-chunk then writes its chunk set and deletes every other index. Else the problem."""
    whole = document_text(chunks, payloads)
    counts = sorted({c.count for c in chunks})
    if isinstance(whole, DocumentText) or len(counts) < 2 or len({c.document_sha256 for c in chunks}) > 1:
        return whole
    cut_short = f"its chunks disagree on their count ({', '.join(map(str, counts))})"
    damaged = [c.index for c in chunks if sha256_text(c.text) != c.sha256 or c.end - c.start != len(c.text)]
    if damaged:
        return f"{cut_short}; chunks {_indexes(damaged)} whose text is not their sha256 or span"
    try:
        text = rebuild_text([(c.start, c.end, c.text) for c in chunks])
    except ValueError as exc:
        return f"{cut_short} and do not cover its text ({exc})"
    if sha256_text(text) != chunks[0].document_sha256:
        return f"{cut_short} and do not rebuild to its document_sha256"
    shared = [_without_chunk((payloads or {}).get(c.point_id)) for c in chunks]
    if any(payload != shared[0] for payload in shared):
        return f"{cut_short} and on the document's payload"
    return DocumentText(text, shared[0])


def _without_chunk(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (payload or {}).items() if k != CHUNK_KEY}


def document_digest(payload: Mapping[str, Any]) -> str | None:
    """What a chunk point says of its whole document: the sha256 of its text's sha256 and of the
    document's payload (the chunk's, without ``_chunk``). Every chunk of a document says the same;
    two collections hold the same documents when these agree, however each one chunked them.
    None for a point that is no chunk."""
    meta = payload.get(CHUNK_KEY)
    if not isinstance(meta, dict) or not isinstance(meta.get("document_id"), str):
        return None
    body = {"document_sha256": meta.get("document_sha256"), "payload": {k: v for k, v in payload.items()
                                                                         if k != CHUNK_KEY}}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
