"""The connector's reads, one function each: points by id (chunked), pages of a scroll, a count,
and the read before and after a window (:func:`read_state`), which each wire spells its own way.

The stream (existence, texts, read-back), the bulk tools and the migration all read through
these, so every read is retried the same way and respects the same limits. :func:`read_state`
goes through the client's wire (connector/qdrant/wires/); the others read qdrant-client's records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from qdrant_client import models as qm

from connector.domain.operations import PointKey
from connector.domain.semantics import State
from connector.domain.sharding import Selector
from connector.qdrant.retrying import RetryingClient
from connector.qdrant.wires.base import Selection
from connector.qdrant.wires.models import ModelsWire, shard_key_selector

__all__ = ["READ_CHUNK", "count_points", "read_state", "retrieve_chunked", "scroll_pages", "strict_limit"]

T = TypeVar("T")

READ_CHUNK = 1000  # ids per retrieve: a request of a few hundred KiB at most


def strict_limit(info: qm.CollectionInfo, name: str) -> int | None:
    """A strict-mode limit (``max_query_limit``, ``upsert_max_batchsize``) when strict mode is on."""
    strict = info.config.strict_mode_config
    if strict is None or not strict.enabled:
        return None
    value = getattr(strict, name, None)  # a limit this qdrant-client does not know: none
    return int(value) if value is not None else None


async def _in_chunks(qdrant: RetryingClient, collection: str, ids: Sequence[Any], chunk: int,
                     read: Callable[[list[Any]], Awaitable[T]]) -> list[T]:
    """``read`` of ``chunk`` ids at a time, each one retried call: the answers in order."""
    answers: list[T] = []
    for start in range(0, len(ids), chunk):
        part = list(ids[start : start + chunk])
        answers.append(await qdrant.call(f"retrieve({collection}, {len(part)} ids)", partial(read, part)))
    return answers


async def retrieve_chunked(qdrant: RetryingClient, collection: str, ids: Sequence[Any], *,
                           with_payload: Selection = True, with_vectors: Selection = False,
                           chunk: int = READ_CHUNK, shard_key: Selector | None = None) -> list[qm.Record]:
    """The existing points among ``ids`` as qdrant-client's records (absent ones are simply not
    returned), ``chunk`` ids per call; with ``shard_key``, only in those shards (without, a
    custom-sharded collection is read whole)."""
    read = partial(ModelsWire(qdrant.client).retrieve, collection, payload=with_payload, vectors=with_vectors,
                   shard_key=shard_key, consistency=qdrant.read_consistency)
    return [record for answer in await _in_chunks(qdrant, collection, ids, chunk, read) for record in answer]


async def read_state(qdrant: RetryingClient, collection: str, ids: Sequence[PointKey], *, payload: Selection,
                     vectors: Selection = False, shard_key: Selector | None = None, chunk: int = READ_CHUNK) -> State:
    """The existing points among ``ids`` (in ``shard_key``'s shards) as the verifier models them,
    read and decoded by the client's wire (connector/qdrant/wires/): over REST and gRPC without a
    model per point (a read-back of 500 384-d points a window)."""
    wire = qdrant.wire
    read = partial(wire.retrieve, collection, payload=payload, vectors=vectors, shard_key=shard_key,
                   consistency=qdrant.read_consistency)
    return wire.decode(await _in_chunks(qdrant, collection, ids, chunk, read))


async def scroll_pages(
    qdrant: RetryingClient,
    collection: str,
    *,
    scroll_filter: qm.Filter | None = None,
    with_payload: bool | list[str] = True,
    with_vectors: bool | list[str] = True,
    page_size: int = 256,
    start: Any = None,
    shard_key: Selector | None = None,
) -> AsyncIterator[tuple[list[qm.Record], Any]]:
    """Yield (page, next_offset) in id order from ``start``; next_offset is None on the last page.

    Pages are no larger than the collection's strict-mode query limit, which would refuse them."""
    client = qdrant.client
    info = await qdrant.call(f"get_collection({collection})", partial(client.get_collection, collection))
    page_size = min(page_size, strict_limit(info, "max_query_limit") or page_size)
    offset = start
    while True:
        page, next_offset = await qdrant.call(
            f"scroll({collection})",
            partial(client.scroll, collection, scroll_filter=scroll_filter, limit=page_size, offset=offset,
                    with_payload=with_payload, with_vectors=with_vectors,
                    shard_key_selector=shard_key_selector(shard_key), consistency=qdrant.read_consistency),
        )
        yield page, next_offset
        if next_offset is None:
            return
        offset = next_offset


async def count_points(qdrant: RetryingClient, collection: str, count_filter: qm.Filter | None = None, *,
                       shard_key: Selector | None = None) -> int:
    """How many points match ``count_filter`` now (exact), in ``shard_key``'s shards if given
    (a count takes no read consistency: Qdrant asks one active replica per shard)."""
    result = await qdrant.call(
        f"count({collection})", partial(qdrant.client.count, collection, count_filter=count_filter, exact=True,
                                        shard_key_selector=shard_key_selector(shard_key))
    )
    return int(result.count)
