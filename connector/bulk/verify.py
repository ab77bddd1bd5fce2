"""Verify: compare a collection with a dump, or two collections, point by point.

Compares counts, missing and extra ids, and per-point digests of payload and vectors. The
comparison (:func:`diff_digests`) is pure; reading is one scroll of each collection. A collection
of chunked documents is also checked document by document (connector/bulk/documents.py): each
chunk set complete, its text rebuilt from it to its ``document_sha256``.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from qdrant_client import models as qm

from connector.bulk.documents import DocumentsCheck, check_documents, document_digests
from connector.bulk.dump import (
    canonical_vectors,
    cosine_names,
    digest,
    id_key,
    point_line,
    read_dump,
    vectors_config,
)
from connector.bulk.dump_check import check_dump
from connector.bulk.scroll import PointsProgress
from connector.domain.documents import CHUNK_KEY
from connector.qdrant import RetryingClient
from connector.qdrant.reads import count_points, retrieve_chunked, scroll_pages

LISTED = 100


@dataclass
class VerifyReport:
    reference: str
    target: str
    reference_count: int
    target_count: int
    missing: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    mismatched: list[Any] = field(default_factory=list)
    missing_count: int = 0
    extra_count: int = 0
    mismatched_count: int = 0
    # a collection of chunked documents (its points carry _chunk): the target's documents, each checked
    # whole (connector/bulk/documents.py), and those that are not, with the problem
    documents: int | None = None
    incomplete_documents: list[dict[str, Any]] = field(default_factory=list)
    incomplete_documents_count: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing_count or self.extra_count or self.mismatched_count or self.incomplete_documents_count)

    def ignoring(self, keys: set[str]) -> VerifyReport:
        """The same report without the points in ``keys`` (id keys as in the manifest)."""
        def keep(ids: list[Any]) -> list[Any]:
            return [i for i in ids if json.dumps(i) not in keys]

        missing, extra, mismatched = keep(self.missing), keep(self.extra), keep(self.mismatched)
        return replace(self, missing=missing, extra=extra, mismatched=mismatched, missing_count=len(missing),
                       extra_count=len(extra), mismatched_count=len(mismatched))

    def with_documents(self, check: DocumentsCheck) -> VerifyReport:
        return replace(self, documents=check.documents, incomplete_documents=check.incomplete,
                       incomplete_documents_count=check.incomplete_count)

    def to_json(self) -> str:
        """The report, with at most 100 ids listed per kind (the counts are complete)."""
        body = asdict(self)
        for kind in ("missing", "extra", "mismatched"):
            body[kind] = body[kind][:LISTED]
        if self.documents is None:  # not a collection of chunked documents
            for key in ("documents", "incomplete_documents", "incomplete_documents_count"):
                body.pop(key)
        return json.dumps({**body, "ok": self.ok}, indent=2)


TOLERANCE = 1e-5


def _unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values] if norm > 0 else values


def lines_equal(a: dict[str, Any], b: dict[str, Any], cosine: frozenset[str] | set[str] = frozenset()) -> bool:
    """Pure: same payload, same vector names, values equal within float32 noise.

    Digests compare values rounded to 6 digits; a value on a rounding boundary, or a cosine
    vector normalised once more by Qdrant on import, can change a digest by one ulp. Points
    whose digests differ are compared again with this tolerance, the dense vectors named in
    ``cosine`` as unit vectors: Qdrant stores them normalised, but local mode keeps what it was
    given on disk and normalises only in memory, so a dump may hold either form.
    """
    if (a.get("payload") or {}) != (b.get("payload") or {}):
        return False
    va, vb = canonical_vectors(a.get("vector")), canonical_vectors(b.get("vector"))
    for name in cosine & va.keys() & vb.keys():
        if isinstance(va[name], list) and isinstance(vb[name], list):
            va[name], vb[name] = _unit(va[name]), _unit(vb[name])
    if va.keys() != vb.keys():
        return False
    for name, mine in va.items():
        theirs = vb[name]
        if isinstance(mine, dict) != isinstance(theirs, dict):
            return False
        if isinstance(mine, dict) and mine["indices"] != theirs["indices"]:
            return False
        x, y = (mine["values"], theirs["values"]) if isinstance(mine, dict) else (mine, theirs)
        if len(x) != len(y) or any(abs(p - q) > TOLERANCE * max(1.0, abs(p)) for p, q in zip(x, y, strict=True)):
            return False
    return True


def _ids(keys: list[str]) -> list[Any]:
    """Point ids back from their manifest keys."""
    return [json.loads(k) for k in keys]


def diff_digests(reference: dict[str, str], target: dict[str, str], *, names: tuple[str, str],
                 equal_after_all: frozenset[str] | set[str] = frozenset()) -> VerifyReport:
    """Pure: ids only in reference are missing, only in target are extra; differing digests mismatched
    (except those a tolerant comparison found equal, ``equal_after_all``)."""
    missing = sorted(k for k in reference if k not in target)
    extra = sorted(k for k in target if k not in reference)
    mismatched = sorted(k for k in reference if k in target and reference[k] != target[k] and k not in equal_after_all)
    return VerifyReport(
        reference=names[0], target=names[1], reference_count=len(reference), target_count=len(target),
        missing=_ids(missing), extra=_ids(extra), mismatched=_ids(mismatched),
        missing_count=len(missing), extra_count=len(extra), mismatched_count=len(mismatched),
    )


async def collection_digests(
    qdrant: RetryingClient, collection: str, *, scroll_filter: qm.Filter | None = None,
    with_payload: bool | list[str] = True, with_vectors: bool | list[str] = True,
    page_size: int = 256, show_progress: bool = True, documents: set[str] | None = None,
) -> dict[str, str]:
    """Every point's digest by its manifest key; ``documents`` gathers the ``_chunk.document_id``
    of the points that are chunks of a document."""
    total = await count_points(qdrant, collection, scroll_filter)
    digests: dict[str, str] = {}
    with PointsProgress(f"read {collection}", total, show_progress) as progress:
        async for page, _ in scroll_pages(qdrant, collection, scroll_filter=scroll_filter, with_payload=with_payload,
                                          with_vectors=with_vectors, page_size=page_size):
            for record in page:
                digests[id_key(record.id)] = digest(point_line(record))
                meta = (record.payload or {}).get(CHUNK_KEY)
                if documents is not None and isinstance(meta, dict) and isinstance(meta.get("document_id"), str):
                    documents.add(meta["document_id"])
            progress.advance(len(page))
    return digests


async def _with_documents(qdrant: RetryingClient, collection: str, report: VerifyReport, documents: set[str],
                          show_progress: bool) -> VerifyReport:
    """The report, and when the collection holds chunked documents, each of them checked whole."""
    if not documents:
        return report
    check = await check_documents(qdrant, collection, sorted(documents), show_progress=show_progress)
    return report.with_documents(check)


async def verify_against_dump(qdrant: RetryingClient, collection: str, dump: Path, *, page_size: int = 256,
                              show_progress: bool = True, checked: dict[str, Any] | None = None) -> VerifyReport:
    """The collection against a dump, which is first checked whole against its manifest
    (:func:`~connector.bulk.dump_check.check_dump`: a damaged dump is refused, naming its first
    bad line); ``checked``: the manifest a check of this dump returned already."""
    manifest = checked if checked is not None else await asyncio.to_thread(check_dump, dump)
    reference: dict[str, str] = manifest["digests"]
    scroll_filter = qm.Filter.model_validate(manifest["filter"]) if manifest.get("filter") else None
    with_payload, with_vectors = manifest["with_payload"], manifest["with_vectors"]
    documents: set[str] = set()
    target = await collection_digests(qdrant, collection, scroll_filter=scroll_filter, with_payload=with_payload,
                                      with_vectors=with_vectors, page_size=page_size, show_progress=show_progress,
                                      documents=documents)
    suspects = {k for k in reference if k in target and reference[k] != target[k]}
    equal: set[str] = set()
    if suspects:
        ref_lines = {id_key(line["id"]): line for line in read_dump(dump) if id_key(line["id"]) in suspects}
        got = await _lines(qdrant, collection, suspects, with_payload, with_vectors)
        cosine = cosine_names(manifest.get("config") or {})
        equal = {k for k in suspects if k in got and lines_equal(ref_lines[k], got[k], cosine)}
    report = diff_digests(reference, target, names=(str(dump), collection), equal_after_all=equal)
    return await _with_documents(qdrant, collection, report, documents, show_progress)


async def _lines(
    qdrant: RetryingClient, collection: str, keys: set[str], with_payload: Any, with_vectors: Any
) -> dict[str, dict[str, Any]]:
    ids = [json.loads(k) for k in keys]
    records = await retrieve_chunked(qdrant, collection, ids, with_payload=with_payload, with_vectors=with_vectors)
    return {id_key(r.id): point_line(r) for r in records}


async def verify_collections(qdrant: RetryingClient, reference: str, target: str, *, with_vectors: bool = True,
                             page_size: int = 256, show_progress: bool = True,
                             check_whole_documents: bool = True) -> VerifyReport:
    """``target`` against ``reference``, point by point; where ``target`` holds chunked documents
    (and ``check_whole_documents``), each document of it checked whole too."""
    a = await collection_digests(
        qdrant, reference, with_vectors=with_vectors, page_size=page_size, show_progress=show_progress
    )
    documents: set[str] = set()
    b = await collection_digests(
        qdrant, target, with_vectors=with_vectors, page_size=page_size, show_progress=show_progress,
        documents=documents if check_whole_documents else None,
    )
    suspects = {k for k in a if k in b and a[k] != b[k]}
    equal: set[str] = set()
    if suspects:
        la = await _lines(qdrant, reference, suspects, True, with_vectors)
        lb = await _lines(qdrant, target, suspects, True, with_vectors)
        info = await qdrant.call(f"get_collection({reference})", partial(qdrant.client.get_collection, reference))
        cosine = cosine_names(vectors_config(info))
        equal = {k for k in suspects if k in la and k in lb and lines_equal(la[k], lb[k], cosine)}
    report = diff_digests(a, b, names=(reference, target), equal_after_all=equal)
    return await _with_documents(qdrant, target, report, documents, show_progress)


async def verify_documents(qdrant: RetryingClient, reference: str, target: str, *, page_size: int = 256,
                           show_progress: bool = True) -> VerifyReport:
    """Two collections of chunked documents, document by document: the same documents, each with the
    same text (by its sha256) and payload, however each collection chunked them (a migration to a
    model of another window re-chunks). The ids in the report are document ids."""
    a = await document_digests(qdrant, reference, page_size=page_size, show_progress=show_progress)
    b = await document_digests(qdrant, target, page_size=page_size, show_progress=show_progress)
    return diff_digests(a, b, names=(reference, target))
