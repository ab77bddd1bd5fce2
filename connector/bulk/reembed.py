"""Re-embed backfill: scroll (payload field only) -> embed -> update_vectors (ids + vectors only).

A collection of chunked documents (QCC_CHUNKED_COLLECTIONS) is re-embedded chunk by chunk, each
from its own text (``_chunk.text``), when the new model chunks alike (the same tokenizer and
limits); else each document is rebuilt from its chunks and chunked again for the new model
(connector/bulk/rechunk.py), verified, resumable the same way.

The payload and every other vector stay untouched, and nothing but ids and the new vectors
goes over the wire. Three stages run as a pipeline joined by small queues, so that scrolling
page n+1, embedding page n and writing page n-1 overlap. Pages are written in scroll order,
and after each write a checkpoint records the next scroll offset: an interrupted run resumes
after the last page written, and its result equals an uninterrupted run (every write is an
assignment of the same vector).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from qdrant_client import models as qm

from connector.bulk.documents import DOCUMENT_PAGE
from connector.bulk.dump import vectors_config
from connector.bulk.rechunk import (
    MAX_REQUEST_BYTES,
    RechunkJob,
    RechunkSummary,
    new_chunking,
    rechunk_reason,
    tokenizer_digest,
)
from connector.bulk.rechunk import rechunk as rechunk_documents
from connector.bulk.scroll import Checkpoint, PointsProgress
from connector.bulk.selection import check_payload_keys, check_vectors, shown
from connector.domain.operations import DEFAULT_VECTOR, Op, PointData, VectorKind
from connector.embedding.embedder import Embedder
from connector.errors import InvalidOption
from connector.qdrant import RetryingClient, to_qdrant
from connector.qdrant.reads import count_points, scroll_pages
from connector.qdrant.updates import ConfirmedUpdate
from connector.settings import CHUNK_KEY, ChunkedField

CHUNK_TEXT = f"{CHUNK_KEY}.text"  # where a chunk point holds its text
POINTS = "points"  # a checkpoint's kind: a re-embed of points (a re-chunk's is "rechunk"); none: one of points

_DONE = object()


@dataclass(frozen=True)
class ReembedSummary:
    collection: str
    vector_name: str
    model: str
    points: int
    skipped_without_text: int
    resumed: bool
    # a chunked collection's documents chunked again (and why), or None: the points re-embedded as they are
    rechunked: RechunkSummary | None = None
    rechunk_reason: str | None = None
    chunking: ChunkedField | None = None  # a chunked collection's new chunking, where the run changed it


async def reembed_collection(
    qdrant: RetryingClient,
    embedder: Embedder,
    collection: str,
    *,
    text_field: str | None,
    vector_name: str | None = None,
    model: str | None = None,
    scroll_filter: qm.Filter | None = None,
    page_size: int = 256,
    checkpoint_file: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    chunking: ChunkedField | None = None,
    rechunk: bool = False,
    max_tokens: int | None = None,
    overlap_tokens: int | None = None,
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> ReembedSummary:
    """``chunking``: the collection's documents are chunked so (QCC_CHUNKED_COLLECTIONS): each chunk
    is re-embedded from its own text, or, where the new model or limits chunk otherwise (or with
    ``rechunk``), each document is chunked again (:func:`_reembed_documents`)."""
    if page_size < 1:
        raise InvalidOption(f"--page-size {page_size}", "a page holds at least one point")
    if chunking is None and (rechunk or max_tokens is not None or overlap_tokens is not None):
        option = "--rechunk" if rechunk else "--max-tokens" if max_tokens is not None else "--overlap-tokens"
        raise InvalidOption(option, f"QCC_CHUNKED_COLLECTIONS does not name {collection} (nor does a chunked "
                            "column of QCC_CDC_MAPPING): it gives a collection of chunked documents its chunking "
                            "(text field, vector, limits)")
    if chunking is not None:
        return await _reembed_documents(
            qdrant, embedder, collection, chunking, text_field=text_field, vector_name=vector_name, model=model,
            scroll_filter=scroll_filter, page_size=page_size, checkpoint_file=checkpoint_file, resume=resume,
            show_progress=show_progress, rechunk=rechunk, max_tokens=max_tokens, overlap_tokens=overlap_tokens,
            max_request_bytes=max_request_bytes)
    if text_field is None:
        raise InvalidOption("--text-field", "name the payload key that holds the text (a collection of chunked "
                            "documents that QCC_CHUNKED_COLLECTIONS names takes its chunks' texts)")
    vector_name = DEFAULT_VECTOR if vector_name is None else vector_name
    info = await qdrant.call(f"get_collection({collection})", lambda: qdrant.client.get_collection(collection))
    check_vectors("--vector-name", [vector_name], info, collection)
    sparse_names = set((info.config.params.sparse_vectors or {}).keys())
    kind: VectorKind = "sparse" if vector_name in sparse_names else "dense"
    model = model or embedder.default_model(kind)
    checkpoint = Checkpoint(checkpoint_file or Path(f".reembed-{collection}-{vector_name or 'default'}.json"))
    state = checkpoint.load() if resume else None
    if state is not None and state.get("kind", POINTS) != POINTS:  # the same default file as a re-chunk's
        raise InvalidOption("--resume", f"{checkpoint.path} is the checkpoint of an interrupted re-chunk of the "
                            f"documents of {collection}{_options_of(state)}: finish it first, with the command that "
                            "started it and --resume")
    total = await count_points(qdrant, collection, scroll_filter)
    await check_payload_keys(qdrant, "--text-field", [text_field], collection, scroll_filter, total)
    if kind == "dense":
        await _check_dimension(embedder, model, vectors_config(info)["dense"][vector_name]["size"], vector_name,
                               collection)
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
            checkpoint.save({"kind": POINTS, "next_offset": next_offset, "points": done, "skipped": skipped})
            progress.advance(len(ids) + without_text)

    with PointsProgress(f"re-embed {collection}:{vector_name or 'default'}", total, show_progress) as progress:
        progress.skip_to(done + skipped)
        await asyncio.gather(scroll_stage(), embed_stage(), write_stage(progress))
    checkpoint.clear()
    return ReembedSummary(collection, vector_name, model, done, skipped, resumed=state is not None)


async def _reembed_documents(
    qdrant: RetryingClient, embedder: Embedder, collection: str, chunking: ChunkedField, *, text_field: str | None,
    vector_name: str | None, model: str | None, scroll_filter: qm.Filter | None, page_size: int,
    checkpoint_file: Path | None, resume: bool, show_progress: bool, rechunk: bool, max_tokens: int | None,
    overlap_tokens: int | None, max_request_bytes: int,
) -> ReembedSummary:
    """A chunked collection: its chunks re-embedded from ``_chunk.text`` when the new chunking is the
    old one, else every document rebuilt from its chunks and chunked again (connector/bulk/rechunk.py)."""
    if text_field not in (None, chunking.text_field, CHUNK_TEXT):
        raise InvalidOption(f"--text-field {text_field}", f"{collection} holds chunked documents: their text is "
                            f"{chunking.text_field!r}, held in parts by their chunks ({CHUNK_TEXT})")
    if vector_name not in (None, chunking.vector):
        raise InvalidOption(f"--vector-name {shown(vector_name or '')}", f"the chunks of {collection} are embedded "
                            f"into {shown_vector(chunking.vector)} (QCC_CHUNKED_COLLECTIONS)")
    old = chunking.model_copy(update={"model": chunking.model or embedder.default_model("dense")})
    new = new_chunking(embedder, old, model, max_tokens, overlap_tokens)
    same_tokenizer = new.model == old.model or tokenizer_digest(embedder.tokenizer(str(new.model))) == \
        tokenizer_digest(embedder.tokenizer(str(old.model)))
    reason = rechunk_reason(old, new, same_tokenizer, rechunk)
    if reason is None:  # the same chunks: each re-embedded from its own text
        summary = await reembed_collection(
            qdrant, embedder, collection, text_field=CHUNK_TEXT, vector_name=chunking.vector, model=new.model,
            scroll_filter=scroll_filter, page_size=page_size, checkpoint_file=checkpoint_file, resume=resume,
            show_progress=show_progress, max_request_bytes=max_request_bytes)
        return replace(summary, chunking=new if new != old else None)
    if scroll_filter is not None:
        raise InvalidOption("--filter", f"documents are chunked again whole ({reason}): a re-chunk takes no filter")
    info = await qdrant.call(f"get_collection({collection})", lambda: qdrant.client.get_collection(collection))
    check_vectors("--vector-name", [chunking.vector], info, collection)
    if chunking.sparse_vector:  # the chunks get it too: refused before anything is written
        check_vectors("QCC_CHUNKED_COLLECTIONS sparse_vector", [chunking.sparse_vector], info, collection)
    await _check_dimension(embedder, str(new.model), vectors_config(info)["dense"][chunking.vector]["size"],
                           chunking.vector, collection)
    checkpoint = Checkpoint(checkpoint_file or Path(f".reembed-{collection}-{chunking.vector or 'default'}.json"))
    state = checkpoint.load() if resume else None
    if state is not None and state.get("kind") != "rechunk":
        raise InvalidOption("--resume", f"{checkpoint.path} is the checkpoint of a re-embed of points, not of a "
                            "re-chunk: run the same command as before")
    if state is not None and state.get("chunking", new.model_dump(mode="json")) != new.model_dump(mode="json"):
        raise InvalidOption("--resume", f"{checkpoint.path} is the checkpoint of a re-chunk{_options_of(state)}, "
                            "not to these limits: resume with those, or leave out --resume to re-chunk every "
                            "document to these")
    if state is None:
        checkpoint.clear()
    job = RechunkJob(collection, collection, collection, new, reuse_stored=new.model == old.model)
    documents = await rechunk_documents(qdrant, embedder, job, page_size=min(page_size, DOCUMENT_PAGE),
                                        checkpoint=checkpoint, resume=resume, show_progress=show_progress,
                                        max_request_bytes=max_request_bytes)
    checkpoint.clear()
    return ReembedSummary(collection, chunking.vector, str(new.model), documents.written, 0, documents.resumed,
                          rechunked=documents, rechunk_reason=reason, chunking=new if new != old else None)


async def _check_dimension(embedder: Embedder, model: str, size: int, vector_name: str, collection: str) -> None:
    """InvalidOption when the model's vectors do not fit the collection's (loads the model: one
    that cannot be loaded fails here too, before anything is written)."""
    made = len((await embedder.embed(model, "dense", ["dimension probe"]))[0])
    if made != size:
        raise InvalidOption(f"--model {model}", f"it makes {made}-dimensional vectors, and {shown_vector(vector_name)} "
                            f"of {collection} has {size} (choose the model or the vector that fit)")


def _options_of(state: dict[str, Any]) -> str:
    """The options of the re-chunk a checkpoint is of (its new chunking), as given to reembed."""
    chunking = state.get("chunking")
    if not isinstance(chunking, dict):
        return ""  # a checkpoint written before it kept them
    return (f" (--model {chunking.get('model')} --max-tokens {chunking.get('max_tokens')} --overlap-tokens "
            f"{chunking.get('overlap_tokens')})")


def shown_vector(name: str) -> str:
    return f"vector {name}" if name else "the unnamed vector"
