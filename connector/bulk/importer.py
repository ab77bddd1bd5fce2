"""Import: load a dump into a collection (created from the manifest if missing), then verify.

The dump is checked whole against its manifest first (:mod:`connector.bulk.dump_check`), and an
existing collection against the dump's vectors: a bad dump or target is refused before anything
is created or written. A collection the import creates gets the exported collection's whole
configuration and payload indexes (older dumps carry only the vectors); its strict mode and read
fan-out are set after the points are in and verified. A dump of chunked documents (its manifest's
``chunked``) gives the collection the keyword index on ``_chunk.document_id``, and the verification
checks every document whole. An import that fails after creating the
collection deletes it again (one interrupted, Ctrl-C, keeps it for ``--resume``). Into an
existing collection, batches stay within its strict-mode upsert limit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from qdrant_client import models as qm

from connector.bulk.collection_config import (
    CollectionPlan,
    collection_plan,
    create_from_plan,
    finish_from_plan,
    info_from_json,
)
from connector.bulk.collection_spec import check_collection_name
from connector.bulk.documents import ensure_chunk_index, with_chunk_index
from connector.bulk.dump import create_collection_args, read_dump, vectors_config
from connector.bulk.dump_check import check_dump
from connector.bulk.error_line import fitting_errors
from connector.bulk.scroll import Checkpoint, PointsProgress
from connector.bulk.verify import VerifyReport, verify_against_dump
from connector.errors import InvalidInput, InvalidOption
from connector.qdrant import RetryingClient
from connector.qdrant.reads import strict_limit
from connector.qdrant.updates import ConfirmedUpdate


@dataclass(frozen=True)
class ImportSummary:
    collection: str
    points: int
    created: bool
    verification: VerifyReport


def _point(line: dict[str, Any]) -> qm.PointStruct:
    vectors: dict[str, Any] = {}
    for name, value in line["vector"].items():
        vectors[name] = qm.SparseVector(**value) if isinstance(value, dict) else value
    vector: Any = vectors[""] if set(vectors) == {""} else vectors
    return qm.PointStruct(id=line["id"], vector=vector, payload=line["payload"])


def manifest_plan(manifest: dict[str, Any]) -> CollectionPlan:
    """How to create a collection like the exported one, from what the manifest carries; a dump of
    chunked documents gets the index that finds their chunks (a local-mode export has none)."""
    if "collection" in manifest:
        plan = collection_plan(info_from_json(manifest["collection"]))
    else:
        plan = CollectionPlan(create_collection_args(manifest["config"]))
    return with_chunk_index(plan) if manifest.get("chunked") else plan


def dump_vectors(manifest: dict[str, Any]) -> dict[str, Any]:
    """The dump's vector configuration (:func:`~connector.bulk.dump.vectors_config`'s form)."""
    if "config" in manifest:
        config: dict[str, Any] = manifest["config"]
        return config
    return vectors_config(info_from_json(manifest["collection"]))


def unfit_vectors(dump: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """Pure: the dump's vectors that the target collection cannot hold (missing, another size,
    dense where sparse is wanted or the reverse), each as a short phrase."""
    problems = []
    for name, params in dump.get("dense", {}).items():
        have = target.get("dense", {}).get(name)
        if have is None:
            problems.append(f"no dense vector {name!r}")
        elif have.get("size") != params.get("size"):
            problems.append(f"{name!r} has {have.get('size')} dimensions, the dump's {params.get('size')}")
    target_sparse = target.get("sparse", {})
    problems += [f"no sparse vector {name!r}" for name in dump.get("sparse", {}) if name not in target_sparse]
    return problems


async def import_dump(qdrant: RetryingClient, dump: Path, collection: str, *, batch_size: int = 256,
                      resume: bool = False, show_progress: bool = True) -> ImportSummary:
    if batch_size < 1:
        raise InvalidOption(f"--batch-size {batch_size}", "a batch holds at least one point")
    check_collection_name(collection)
    manifest = await asyncio.to_thread(check_dump, dump)  # before anything is created or written
    try:
        plan = manifest_plan(manifest)
    except (ValidationError, KeyError, TypeError, AttributeError) as exc:
        why = fitting_errors(exc) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        raise InvalidInput(f"the manifest of {dump} holds no collection configuration Qdrant takes ({why})") from None
    checkpoint = Checkpoint(dump.with_name(f"{dump.name}.import-{collection}.progress.json"))
    state = (checkpoint.load() or {}) if resume else {}
    done, created = state.get("lines", 0), state.get("created", False)  # an interrupted run may have created it
    created_now = False
    if not await qdrant.call("collection_exists", lambda: qdrant.client.collection_exists(collection)):
        await create_from_plan(qdrant, collection, plan)
        created = created_now = True
        checkpoint.save({"lines": done, "created": created})
    else:
        info = await qdrant.call(f"get_collection({collection})", lambda: qdrant.client.get_collection(collection))
        unfit = unfit_vectors(dump_vectors(manifest), vectors_config(info))
        if unfit:
            raise InvalidOption(f"collection {collection}", f"it exists and cannot hold the dump's points: "
                                f"{'; '.join(unfit)} (import into a new collection name)")
        if not created:
            batch_size = min(batch_size, strict_limit(info, "upsert_max_batchsize") or batch_size)
        if manifest.get("chunked"):
            await ensure_chunk_index(qdrant, collection, info)
    try:
        report = await _load(qdrant, dump, collection, manifest, checkpoint, batch_size=batch_size, done=done,
                             created=created, show_progress=show_progress)
        if created:
            await finish_from_plan(qdrant, collection, plan)
    except Exception:
        if created_now:  # nothing half-filled stays behind; an interrupted run (Ctrl-C) is not an Exception
            await qdrant.call(f"delete_collection({collection})", lambda: qdrant.client.delete_collection(collection))
            checkpoint.clear()
        raise
    checkpoint.clear()
    return ImportSummary(collection, report[0], created, report[1])


async def _load(qdrant: RetryingClient, dump: Path, collection: str, manifest: dict[str, Any], checkpoint: Checkpoint,
                *, batch_size: int, done: int, created: bool, show_progress: bool) -> tuple[int, VerifyReport]:
    """Upsert the dump's points after the first ``done``, then verify; (points loaded, the report)."""
    lines = islice(read_dump(dump), done, None)
    with PointsProgress(f"import {collection}", manifest["count"], show_progress) as progress:
        progress.skip_to(done)
        while batch := list(islice(lines, batch_size)):
            points = [_point(line) for line in batch]
            await qdrant.call("upsert", ConfirmedUpdate(partial(qdrant.client.upsert, collection, points, wait=True)))
            done += len(batch)
            checkpoint.save({"lines": done, "created": created})
            progress.advance(len(batch))
    report = await verify_against_dump(qdrant, collection, dump, show_progress=show_progress, checked=manifest)
    return done, report
