"""Re-embed backfill: scroll (payload field only) -> embed -> update_vectors (ids + vectors only).

The payload and every other vector stay untouched, and nothing but ids and the new vectors
goes over the wire. Three stages run as a pipeline joined by small queues, so that scrolling
page n+1, embedding page n and writing page n-1 overlap. Pages are written in scroll order,
and after each write a checkpoint records the next scroll offset: an interrupted run resumes
after the last page written, and its result equals an uninterrupted run (every write is an
assignment of the same vector).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from qdrant_client import models as qm

from connector.bulk.dump import vectors_config
from connector.bulk.scroll import Checkpoint, PointsProgress
from connector.bulk.selection import check_payload_keys, check_vectors
from connector.domain.operations import DEFAULT_VECTOR, Op, PointData, VectorKind
from connector.embedding.embedder import Embedder
from connector.errors import InvalidOption
from connector.qdrant import RetryingClient, to_qdrant
from connector.qdrant.reads import count_points, scroll_pages
from connector.qdrant.updates import ConfirmedUpdate

_DONE = object()


@dataclass(frozen=True)
class ReembedSummary:
    collection: str
    vector_name: str
    model: str
    points: int
    skipped_without_text: int
    resumed: bool


async def reembed_collection(
    qdrant: RetryingClient,
    embedder: Embedder,
    collection: str,
    *,
    text_field: str,
    vector_name: str = DEFAULT_VECTOR,
    model: str | None = None,
    scroll_filter: qm.Filter | None = None,
    page_size: int = 256,
    checkpoint_file: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> ReembedSummary:
    if page_size < 1:
        raise InvalidOption(f"--page-size {page_size}", "a page holds at least one point")
    info = await qdrant.call(f"get_collection({collection})", lambda: qdrant.client.get_collection(collection))
    check_vectors("--vector-name", [vector_name], info, collection)
    sparse_names = set((info.config.params.sparse_vectors or {}).keys())
    kind: VectorKind = "sparse" if vector_name in sparse_names else "dense"
    model = model or embedder.default_model(kind)
    total = await count_points(qdrant, collection, scroll_filter)
    await check_payload_keys(qdrant, "--text-field", [text_field], collection, scroll_filter, total)
    if kind == "dense":
        await _check_dimension(embedder, model, vectors_config(info)["dense"][vector_name]["size"], vector_name,
                               collection)
    checkpoint = Checkpoint(checkpoint_file or Path(f".reembed-{collection}-{vector_name or 'default'}.json"))
    state = checkpoint.load() if resume else None
    start = state["next_offset"] if state else None
    done, skipped = (state["points"], state["skipped"]) if state else (0, 0)
    if state is None:
        checkpoint.clear()
    top_field = text_field.split(".", maxsplit=1)[0]

    pages: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)
    embedded: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)

    async def scroll_stage() -> None:
        async for page, next_offset in scroll_pages(
            qdrant,
            collection,
            scroll_filter=scroll_filter,
            with_payload=[top_field],
            with_vectors=False,
            page_size=page_size,
            start=start,
        ):
            await pages.put((page, next_offset))
        await pages.put(_DONE)

    async def embed_stage() -> None:
        while (item := await pages.get()) is not _DONE:
            page, next_offset = item
            vectors = await embedder.embed_payload_texts(model, kind, page, text_field)
            await embedded.put((list(vectors), list(vectors.values()), len(page) - len(vectors), next_offset))
        await embedded.put(_DONE)

    async def write_stage(progress: PointsProgress) -> None:
        nonlocal done, skipped
        while (item := await embedded.get()) is not _DONE:
            ids, vectors, without_text, next_offset = item
            if ids:
                points = {pid: PointData({vector_name: vec}) for pid, vec in zip(ids, vectors, strict=True)}
                operation = to_qdrant(Op("update_vectors", points=points))
                await qdrant.call("update_vectors", ConfirmedUpdate(
                    partial(qdrant.client.batch_update_points, collection, [operation], wait=True)))
            done += len(ids)
            skipped += without_text
            checkpoint.save({"next_offset": next_offset, "points": done, "skipped": skipped})
            progress.advance(len(ids) + without_text)

    with PointsProgress(f"re-embed {collection}:{vector_name or 'default'}", total, show_progress) as progress:
        progress.skip_to(done + skipped)
        await asyncio.gather(scroll_stage(), embed_stage(), write_stage(progress))
    checkpoint.clear()
    return ReembedSummary(collection, vector_name, model, done, skipped, resumed=state is not None)


async def _check_dimension(embedder: Embedder, model: str, size: int, vector_name: str, collection: str) -> None:
    """InvalidOption when the model's vectors do not fit the collection's (loads the model: one
    that cannot be loaded fails here too, before anything is written)."""
    made = len((await embedder.embed(model, "dense", ["dimension probe"]))[0])
    if made != size:
        raise InvalidOption(f"--model {model}", f"it makes {made}-dimensional vectors, and {shown_vector(vector_name)} "
                            f"of {collection} has {size} (choose the model or the vector that fit)")


def shown_vector(name: str) -> str:
    return f"vector {name}" if name else "the unnamed vector"
