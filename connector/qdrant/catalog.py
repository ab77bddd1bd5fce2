"""Collection schemas (connector/domain/schema.py), fetched from Qdrant and cached for a while;
the payload index a chunked collection's documents are found by."""

from __future__ import annotations

import time
from functools import partial

from qdrant_client import models as qm

from connector.domain.documents import DOCUMENT_ID_KEY
from connector.domain.schema import CollectionSchema, schema_from_info
from connector.qdrant.retrying import RetryingClient
from connector.versions import Feature

__all__ = ["CollectionCatalog", "ensure_document_index"]


async def ensure_document_index(qdrant: RetryingClient, collection: str) -> bool:
    """The keyword index on ``_chunk.document_id`` that finds a chunked collection's documents
    (connector/domain/documents.py), created where the collection lacks it; True when created.
    Safe at any time: an index changes no point (a server in strict mode refuses filters on
    unindexed keys). Both calls go through the retrying caller: a blip is retried, a refused key
    reported, never an unexpected error."""
    client = qdrant.client
    info = await qdrant.call(f"get_collection({collection})", partial(client.get_collection, collection))
    if DOCUMENT_ID_KEY in (info.payload_schema or {}):
        return False
    await qdrant.call(f"create_payload_index({collection}, {DOCUMENT_ID_KEY})", partial(
        client.create_payload_index, collection, DOCUMENT_ID_KEY, qm.PayloadSchemaType.KEYWORD, wait=True))
    return True


class CollectionCatalog:
    """Caches collection schemas for ``ttl`` seconds; ``None`` means the collection does not exist."""

    def __init__(self, qdrant: RetryingClient, ttl: float = 30.0) -> None:
        self._qdrant, self._ttl = qdrant, ttl
        self._cache: dict[str, tuple[float, CollectionSchema | None]] = {}

    async def get(self, name: str, *, fresh: bool = False) -> CollectionSchema | None:
        """The schema, from the cache unless ``fresh`` (collections and their named vectors
        change at runtime: ask again before refusing an event for what the cache says)."""
        hit = self._cache.get(name)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._ttl and not fresh:
            return hit[1]
        client = self._qdrant.client
        exists = await self._qdrant.call(f"collection_exists({name})", lambda: client.collection_exists(name))
        schema = None
        if exists:
            info = await self._qdrant.call(f"get_collection({name})", lambda: client.get_collection(name))
            keys: frozenset[int | str] = frozenset()
            if info.config.params.sharding_method == qm.ShardingMethod.CUSTOM:
                keys = await self._shard_keys(name)
            schema = schema_from_info(name, info, keys)
        self._cache[name] = (now, schema)
        return schema

    async def _shard_keys(self, name: str) -> frozenset[int | str]:
        """The collection's shard keys: listed (Qdrant 1.17+), else read from its cluster info,
        where each shard (local or remote) names its key."""
        client = self._qdrant.client
        if self._qdrant.server.has(Feature.LIST_SHARD_KEYS):
            listed = await self._qdrant.call(f"list_shard_keys({name})", lambda: client.list_shard_keys(name))
            return frozenset(k.key for k in listed.shard_keys or [])
        info = await self._qdrant.call(f"collection_cluster_info({name})",
                                       lambda: client.collection_cluster_info(name))
        keys = [shard.shard_key for shard in info.local_shards] + [shard.shard_key for shard in info.remote_shards]
        return frozenset(key for key in keys if key is not None)
