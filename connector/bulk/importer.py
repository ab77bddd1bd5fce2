"""Import: load a dump into a collection (created from the manifest if missing), then verify."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from qdrant_client import models as qm

from connector.bulk.dump import create_collection_args, manifest_path, read_dump
from connector.bulk.scroll import Checkpoint, PointsProgress
from connector.bulk.verify import VerifyReport, verify_against_dump
from connector.sink import QdrantSink


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


async def import_dump(sink: QdrantSink, dump: Path, collection: str, *, batch_size: int = 256,
                      resume: bool = False, show_progress: bool = True) -> ImportSummary:
    manifest = json.loads(manifest_path(dump).read_text())
    created = False
    if not await sink.call("collection_exists", lambda: sink.client.collection_exists(collection)):
        args = create_collection_args(manifest["config"])
        await sink.call("create_collection", lambda: sink.client.create_collection(collection, **args))
        created = True
    checkpoint = Checkpoint(dump.with_name(f"{dump.name}.import-{collection}.progress.json"))
    done = (checkpoint.load() or {}).get("lines", 0) if resume else 0
    lines = islice(read_dump(dump), done, None)
    with PointsProgress(f"import {collection}", manifest["count"], show_progress) as progress:
        progress.skip_to(done)
        while batch := list(islice(lines, batch_size)):
            points = [_point(line) for line in batch]
            await sink.call("upsert", lambda: sink.client.upsert(collection, points, wait=True))
            done += len(batch)
            checkpoint.save({"lines": done})
            progress.advance(len(batch))
    checkpoint.clear()
    report = await verify_against_dump(sink, collection, dump, show_progress=show_progress)
    return ImportSummary(collection, done, created, report)
