"""The connector's reads, each written once: points by id (chunked), pages of a scroll, a count.

The stream (existence, texts, read-back), the bulk tools and the migration all read through
these, so every read is retried the same way and respects the same limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any
from urllib.parse import urlencode

import orjson
from qdrant_client import grpc
from qdrant_client import models as qm
from qdrant_client.conversions.conversion import RestToGrpc

from connector.domain.sharding import Selector
from connector.qdrant import grpc_wire
from connector.qdrant.client import RAW_ANSWER
from connector.qdrant.convert import shard_key_selector
from connector.qdrant.rest_wire import shard_key_json
from connector.qdrant.retrying import RetryingClient
from connector.qdrant.updates import grpc_deadline

__all__ = ["READ_CHUNK", "count_points", "retrieve_chunked", "retrieve_grpc_chunked", "retrieve_rest_chunked",
           "scroll_pages", "strict_limit"]

READ_CHUNK = 1000  # ids per retrieve: a request of a few hundred KiB at most


def strict_limit(info: qm.CollectionInfo, name: str) -> int | None:
    """A strict-mode limit (``max_query_limit``, ``upsert_max_batchsize``) when strict mode is on."""
    strict = info.config.strict_mode_config
    if strict is None or not strict.enabled:
        return None
    value = getattr(strict, name)
    return int(value) if value is not None else None


async def retrieve_chunked(qdrant: RetryingClient, collection: str, ids: Sequence[Any], *,
                           with_payload: bool | list[str] = True, with_vectors: bool | list[str] = False,
                           chunk: int = READ_CHUNK, shard_key: Selector | None = None) -> list[qm.Record]:
    """The existing points among ``ids`` (absent ones are simply not returned), ``chunk`` ids per call;
    with ``shard_key``, only in those shards (without, a custom-sharded collection is read whole)."""
    records: list[qm.Record] = []
    for start in range(0, len(ids), chunk):
        part = list(ids[start : start + chunk])
        records += await qdrant.call(
            f"retrieve({collection}, {len(part)} ids)",
            partial(qdrant.client.retrieve, collection, part, with_payload=with_payload, with_vectors=with_vectors,
                    shard_key_selector=shard_key_selector(shard_key), consistency=qdrant.read_consistency),
        )
    return records


async def retrieve_rest_chunked(qdrant: RetryingClient, collection: str, ids: Sequence[Any], *,
                                with_payload: bool | list[str] = True, with_vectors: bool | list[str] = False,
                                chunk: int = READ_CHUNK, shard_key: Selector | None = None) -> list[bytes | Any]:
    """What :func:`retrieve_chunked` reads, as the REST answers themselves, one per chunk (a client
    talking REST to a server only): the bytes of each when the client is the connector's
    (connector/qdrant/client.py, ``RAW_ANSWER``), else its decoded JSON. Building qdrant-client's
    models of a read-back of 384-d upserts was ~40% of its CPU, and Python floats of its vectors
    most of the rest (connector/domain/verifier.py ``state_from_rest`` reads either form)."""
    query = "" if qdrant.read_consistency is None else "?" + urlencode({"consistency": str(qdrant.read_consistency)})
    api: Any = qdrant.client.http.points_api.api_client  # the async client's session (typed as the sync one's)
    answers: list[bytes | Any] = []
    for start in range(0, len(ids), chunk):
        part = list(ids[start : start + chunk])
        body: dict[str, Any] = {"ids": part, "with_payload": with_payload, "with_vector": with_vectors}
        if shard_key is not None:
            body["shard_key"] = shard_key_json(shard_key)
        answers.append(await qdrant.call(
            f"retrieve({collection}, {len(part)} ids)",
            partial(api.request, type_=Any, method="POST",
                    url=f"/collections/{{collection_name}}/points{query}", path_params={"collection_name": collection},
                    headers={"Content-Type": "application/json"}, content=orjson.dumps(body),
                    extensions={RAW_ANSWER: True}),
        ))
    return answers


async def retrieve_grpc_chunked(qdrant: RetryingClient, collection: str, ids: Sequence[Any], *,
                                with_payload: bool | list[str] = True, with_vectors: bool | list[str] = False,
                                chunk: int = READ_CHUNK,
                                shard_key: Selector | None = None) -> list[grpc.RetrievedPoint]:
    """What :func:`retrieve_chunked` reads, as the points of the gRPC answer (a client talking gRPC
    to a server only): qdrant-client converts each to a model, its payload value by value through
    ``MessageToDict`` (connector/domain/verifier.py ``state_from_grpc`` reads them as they are).
    The request and its deadline are the client's own ``retrieve``'s."""
    client = qdrant.client
    consistency = qdrant.read_consistency
    options: dict[str, Any] = {
        "collection_name": collection,
        "with_payload": RestToGrpc.convert_with_payload_interface(with_payload),
        "with_vectors": RestToGrpc.convert_with_vectors(with_vectors),
        "read_consistency": None if consistency is None else RestToGrpc.convert_read_consistency(consistency),
        "shard_key_selector": grpc_wire.shard_key_selector(shard_key),
    }
    points: list[grpc.RetrievedPoint] = []
    for start in range(0, len(ids), chunk):
        request = grpc.GetPoints(ids=[grpc_wire.point_id(pid) for pid in ids[start : start + chunk]], **options)
        answer = await qdrant.call(f"retrieve({collection}, {len(request.ids)} ids)",
                                   partial(client.grpc_points.Get, request, timeout=grpc_deadline(client)))
        points += answer.result
    return points


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
