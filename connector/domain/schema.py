"""What the connector needs to know about a collection: its dense vectors (size, cosine or not),
its sparse vectors and its sharding (custom: which shard keys exist), read from Qdrant's collection
info. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qdrant_client import models as qm

from connector.domain.operations import DEFAULT_VECTOR

__all__ = ["CollectionSchema", "DenseSpec", "schema_from_info"]


@dataclass(frozen=True)
class DenseSpec:
    size: int
    cosine: bool


@dataclass(frozen=True)
class CollectionSchema:
    name: str
    dense: dict[str, DenseSpec]  # "" is the unnamed vector
    sparse: frozenset[str]
    custom_sharding: bool = False  # sharding_method custom: every write names a shard key
    shard_keys: frozenset[int | str] = frozenset()  # the keys that exist (custom sharding only)

    def cosine_names(self) -> set[str]:
        return {name for name, spec in self.dense.items() if spec.cosine}


def schema_from_info(name: str, info: qm.CollectionInfo, shard_keys: frozenset[int | str] = frozenset()
                     ) -> CollectionSchema:
    vectors: Any = info.config.params.vectors
    dense: dict[str, DenseSpec] = {}
    if isinstance(vectors, qm.VectorParams):
        dense[DEFAULT_VECTOR] = DenseSpec(vectors.size, vectors.distance == qm.Distance.COSINE)
    elif isinstance(vectors, dict):
        for vname, params in vectors.items():
            dense[vname] = DenseSpec(params.size, params.distance == qm.Distance.COSINE)
    sparse = frozenset((info.config.params.sparse_vectors or {}).keys())
    custom = info.config.params.sharding_method == qm.ShardingMethod.CUSTOM
    return CollectionSchema(name=name, dense=dense, sparse=sparse, custom_sharding=custom, shard_keys=shard_keys)
