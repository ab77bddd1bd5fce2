"""Import: load a dump into a collection (created from the manifest if missing), then verify.

A collection the import creates gets the exported collection's whole configuration and
payload indexes (older dumps carry only the vectors); its strict mode and read fan-out are
set after the points are in and verified. Into an existing collection, batches stay within
its strict-mode upsert limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from qdrant_client import models as qm

from connector.bulk.collection_config import (
    CollectionPlan,
    collection_plan,
    create_from_plan,
    finish_from_plan,
    info_from_json,
)
from connector.bulk.dump import create_collection_args, manifest_path, read_dump
from connector.bulk.scroll import Checkpoint, PointsProgress
from connector.bulk.verify import VerifyReport, verify_against_dump
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
    """How to create a collection like the exported one, from what the manifest carries."""
    if "collection" in manifest:
        return collection_plan(info_from_json(manifest["collection"]))
    return CollectionPlan(create_collection_args(manifest["config"]))


async def import_dump(qdrant: RetryingClient, dump: Path, collection: str, *, batch_size: int = 256,
                      resume: bool = False, show_progress: bool = True) -> ImportSummary:
    manifest = json.loads(manifest_path(dump).read_text())
    checkpoint = Checkpoint(dump.with_name(f"{dump.name}.import-{collection}.progress.json"))
    state = (checkpoint.load() or {}) if resume else {}
    done, created = state.get("lines", 0), state.get("created", False)  # an interrupted run may have created it
    plan = manifest_plan(manifest)
    if not await qdrant.call("collection_exists", lambda: qdrant.client.collection_exists(collection)):
        await create_from_plan(qdrant, collection, plan)
        created = True
        checkpoint.save({"lines": done, "created": created})
    elif not created:
        info = await qdrant.call(f"get_collection({collection})", lambda: qdrant.client.get_collection(collection))
        batch_size = min(batch_size, strict_limit(info, "upsert_max_batchsize") or batch_size)
    lines = islice(read_dump(dump), done, None)
    with PointsProgress(f"import {collection}", manifest["count"], show_progress) as progress:
        progress.skip_to(done)
        while batch := list(islice(lines, batch_size)):
            points = [_point(line) for line in batch]
            await qdrant.call("upsert", ConfirmedUpdate(partial(qdrant.client.upsert, collection, points, wait=True)))
            done += len(batch)
            checkpoint.save({"lines": done, "created": created})
            progress.advance(len(batch))
    report = await verify_against_dump(qdrant, collection, dump, show_progress=show_progress)
    if created:
        await finish_from_plan(qdrant, collection, plan)
    checkpoint.clear()
    return ImportSummary(collection, done, created, report)
