"""What the connector needs to know about a collection: its vectors. Fetched, cached for a while."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.operations import DEFAULT_VECTOR


@dataclass(frozen=True)
class DenseSpec:
    size: int
    cosine: bool


@dataclass(frozen=True)
class CollectionSchema:
    name: str
    dense: dict[str, DenseSpec]  # "" is the unnamed vector
    sparse: frozenset[str]

    def cosine_names(self) -> set[str]:
        return {name for name, spec in self.dense.items() if spec.cosine}


def schema_from_info(name: str, info: qm.CollectionInfo) -> CollectionSchema:
    vectors: Any = info.config.params.vectors
    dense: dict[str, DenseSpec] = {}
    if isinstance(vectors, qm.VectorParams):
        dense[DEFAULT_VECTOR] = DenseSpec(vectors.size, vectors.distance == qm.Distance.COSINE)
    elif isinstance(vectors, dict):
        for vname, params in vectors.items():
            dense[vname] = DenseSpec(params.size, params.distance == qm.Distance.COSINE)
    sparse = frozenset((info.config.params.sparse_vectors or {}).keys())
    return CollectionSchema(name=name, dense=dense, sparse=sparse)


Caller = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


class CollectionCatalog:
    """Caches collection schemas for ``ttl`` seconds; ``None`` means the collection does not exist."""

    def __init__(self, client: AsyncQdrantClient, call: Caller, ttl: float = 30.0) -> None:
        self._client, self._call, self._ttl = client, call, ttl
        self._cache: dict[str, tuple[float, CollectionSchema | None]] = {}

    async def get(self, name: str, *, fresh: bool = False) -> CollectionSchema | None:
        """The schema, from the cache unless ``fresh`` (collections and their named vectors
        change at runtime: ask again before refusing an event for what the cache says)."""
        hit = self._cache.get(name)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._ttl and not fresh:
            return hit[1]
        exists = await self._call(f"collection_exists({name})", lambda: self._client.collection_exists(name))
        schema = None
        if exists:
            info = await self._call(f"get_collection({name})", lambda: self._client.get_collection(name))
            schema = schema_from_info(name, info)
        self._cache[name] = (now, schema)
        return schema
