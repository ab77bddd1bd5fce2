"""The bulk tools on a chunked collection's documents (docs/design.md, "Chunked documents").

A collection holds documents when its points carry ``_chunk`` (connector/domain/documents.py):
its export's manifest says so, an import gives the copy the keyword index that finds a document's
chunks, and ``verify`` checks every document whole (:func:`check_documents`): the chunks of each
are read together by that index, a page of documents at a time (a document's chunks are spread
over the whole collection, by their ids), and checked by :func:`connector.domain.chunk_sets.document_text`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qdrant_client import models as qm

from connector.bulk.collection_config import CollectionPlan, PayloadIndex, is_local_mode_info
from connector.bulk.scroll import PointsProgress
from connector.domain.changes import normalize_id
from connector.domain.chunk_sets import (
    DocumentText,
    document_digest,
    document_id_of,
    document_keys_filter,
    document_text,
    group_by_document,
    rebuildable_text,
)
from connector.domain.documents import CHUNK_KEY, DOCUMENT_ID_KEY, chunked_fields
from connector.domain.semantics import PointState, State
from connector.qdrant import RetryingClient
from connector.qdrant.catalog import ensure_document_index
from connector.qdrant.reads import count_points, scroll_pages
from connector.qdrant.wires.models import stored_vectors
from connector.settings import ChunkedField, Settings
from connector.stream.cdc_mapping_file import load_cdc_mapping

__all__ = ["DOCUMENT_PAGE", "DocumentsCheck", "check_documents", "chunked_manifest", "document_digests",
           "ensure_chunk_index", "read_documents", "rebuilt_documents", "records_state", "with_chunk_index",
           "workers_chunking"]

DOCUMENT_PAGE = 64  # documents whose chunks one scroll reads
LISTED = 100


@dataclass
class DocumentsCheck:
    documents: int = 0
    incomplete: list[dict[str, Any]] = field(default_factory=list)  # {"document_id", "problem"}, at most 100
    incomplete_count: int = 0


def workers_chunking(settings: Settings) -> dict[str, ChunkedField]:
    """The collections the workers chunk, and how, read as they read it: QCC_CHUNKED_COLLECTIONS and
    the chunked text columns of the QCC_CDC_MAPPING file (read here: a missing or bad file is the
    worker's exit 78 too). Every bulk tool that decides whether a collection is chunked asks this."""
    mapping = load_cdc_mapping(settings.cdc_mapping) if settings.cdc_mapping is not None else None
    return chunked_fields(settings, mapping)


def chunked_manifest(documents: int, chunking: ChunkedField | None) -> dict[str, Any]:
    """The manifest's word on a dump of chunk points: how many documents, the index that finds
    their chunks, and the chunking that made them when the settings name the collection (else null)."""
    return {"documents": documents, "document_id_key": DOCUMENT_ID_KEY,
            "chunking": chunking.model_dump(mode="json") if chunking is not None else None}


def with_chunk_index(plan: CollectionPlan) -> CollectionPlan:
    """The plan with the keyword index on ``_chunk.document_id`` (a local-mode export has no index)."""
    if any(index.field_name == DOCUMENT_ID_KEY for index in plan.payload_indexes):
        return plan
    return CollectionPlan(plan.create, (*plan.payload_indexes, PayloadIndex(DOCUMENT_ID_KEY,
                                                                           qm.PayloadSchemaType.KEYWORD)), plan.finish)


async def ensure_chunk_index(qdrant: RetryingClient, collection: str, info: qm.CollectionInfo) -> None:
    """The keyword index on ``_chunk.document_id`` where the collection lacks it (not in local mode,
    which has no payload index)."""
    if not is_local_mode_info(info) and DOCUMENT_ID_KEY not in (info.payload_schema or {}):
        await ensure_document_index(qdrant, collection)


async def read_documents(qdrant: RetryingClient, collection: str, keys: Sequence[str], *,
                         vectors: bool | list[str] = False) -> list[qm.Record]:
    """Every chunk point of these documents (``_chunk.document_id`` as stored), by the index."""
    flt = qm.Filter.model_validate(document_keys_filter(list(keys)))
    return [record async for page, _ in scroll_pages(qdrant, collection, scroll_filter=flt, with_payload=True,
                                                     with_vectors=vectors, page_size=512) for record in page]


async def check_documents(qdrant: RetryingClient, collection: str, keys: Sequence[str], *,
                          show_progress: bool = True) -> DocumentsCheck:
    """Each document of ``keys`` whole: its chunk set complete and of one text, which rebuilds from
    them to its ``document_sha256``; the ones that are not, with the problem."""
    check = DocumentsCheck(documents=len(keys))
    with PointsProgress(f"check the documents of {collection}", len(keys), show_progress) as progress:
        for start in range(0, len(keys), DOCUMENT_PAGE):
            page = list(keys[start:start + DOCUMENT_PAGE])
            _, problems, _ = await rebuilt_documents(qdrant, collection, page)
            check.incomplete_count += len(problems)
            check.incomplete += [{"document_id": document_id_of(key), "problem": problem}
                                 for key, problem in problems.items()][:LISTED - len(check.incomplete)]
            progress.advance(len(page))
    return check


async def rebuilt_documents(qdrant: RetryingClient, collection: str, keys: Sequence[str], *,
                            vectors: bool | list[str] = False, cut_short: bool = False,
                            ) -> tuple[dict[str, DocumentText], dict[str, str], list[qm.Record]]:
    """These documents rebuilt from their chunk points (text and payload), the problems of those
    that cannot be, and the chunk points read; a document with no chunk point is in neither.
    ``cut_short``: a document whose last write was cut short is rebuilt too (a re-chunk's read,
    :func:`~connector.domain.chunk_sets.rebuildable_text`); else only a whole one (a check's)."""
    records = await read_documents(qdrant, collection, keys, vectors=vectors)
    chunks, malformed = group_by_document((r.id, r.payload) for r in records)
    payloads = {r.id: r.payload or {} for r in records}
    rebuilt: dict[str, DocumentText] = {}
    problems: dict[str, str] = {}
    for key in keys:
        if key not in chunks and key not in malformed:
            continue  # no chunk point (deleted since its key was read): nothing to rebuild
        found = (rebuildable_text if cut_short else document_text)(chunks.get(key, []), payloads)
        if malformed.get(key) or isinstance(found, str):
            problems[key] = "; ".join(malformed.get(key, [])) or str(found)
        else:
            rebuilt[key] = found
    return rebuilt, problems, records


def records_state(records: Sequence[qm.Record]) -> State:
    """Points read as qdrant-client records, as the verifier models them (dense vectors as tuples,
    sparse ones as :class:`~connector.domain.operations.Sparse`)."""
    return {normalize_id(record.id): PointState(payload=dict(record.payload or {}),
                                                vectors=stored_vectors(record.vector)) for record in records}


async def document_digests(qdrant: RetryingClient, collection: str, *, page_size: int = 256,
                           show_progress: bool = True) -> dict[str, str]:
    """Per document (its id as a manifest key, JSON), what its chunks say of it (text and payload,
    :func:`~connector.domain.chunk_sets.document_digest`); chunks of one document that disagree
    give it a digest no whole document has."""
    seen: dict[str, set[str]] = {}
    total = await count_points(qdrant, collection)
    with PointsProgress(f"read the documents of {collection}", total, show_progress) as progress:
        async for page, _ in scroll_pages(qdrant, collection, with_payload=True, with_vectors=False,
                                          page_size=page_size):
            for record in page:
                payload = record.payload or {}
                digest = document_digest(payload)
                if digest is not None:
                    key = _manifest_key(payload[CHUNK_KEY]["document_id"])
                    seen.setdefault(key, set()).add(digest)
            progress.advance(len(page))
    return {key: "|".join(sorted(digests)) for key, digests in seen.items()}


def _manifest_key(document_key: str) -> str:
    return json.dumps(document_id_of(document_key))
