"""A collection's whole configuration, as the calls that give another collection the same.

:func:`collection_plan` (pure) reads a ``CollectionInfo`` and returns a :class:`CollectionPlan`:
the ``create_collection`` arguments (vectors, sparse vectors, sharding and replication, payload
storage, HNSW, optimizers, WAL, quantization, metadata), the payload indexes with their
schemas, and what only ``update_collection`` sets (strict mode, read fan-out). Import, migrate
and ``create-collection --like`` all go through it; :func:`create_from_plan` and
:func:`finish_from_plan` make the calls.

Strict mode is applied last, once the data is in: its limits (batch sizes, rates, point and
payload budgets) are for the collection's clients, and would refuse or throttle the bulk copy.

Local mode keeps only vectors, sparse vectors and metadata: it reports no shard, replication
or payload-storage parameters, fixed placeholder HNSW, optimizer and WAL values, no
quantization, strict mode or payload indexes. A plan made from local-mode info leaves those
placeholders out (the target keeps its own defaults) instead of copying them as settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from pydantic import TypeAdapter
from qdrant_client import models as qm

from connector.errors import ConnectorError
from connector.qdrant import RetryingClient

# CollectionParams fields that create_collection takes under the same name; `payload` (the payload
# storage) only from qdrant-client 1.19, so only where the installed client has it
CREATE_PARAMS = tuple(name for name in ("shard_number", "sharding_method", "replication_factor",
                                        "write_consistency_factor", "on_disk_payload", "payload")
                      if name in qm.CollectionParams.model_fields)
# CollectionParams fields only update_collection sets
UPDATE_PARAMS = ("read_fan_out_factor", "read_fan_out_delay_ms")


class CollectionConfigError(ConnectorError, ValueError):
    """The collection has configuration that a copy cannot reproduce by itself."""


@dataclass(frozen=True)
class PayloadIndex:
    field_name: str
    field_schema: Any  # a PayloadSchemaType, or the index's params (PayloadSchemaParams) when it has any


@dataclass(frozen=True)
class CollectionPlan:
    """How to make a collection like another: create, index, then (after the data) finish."""

    create: dict[str, Any]  # create_collection keyword arguments
    payload_indexes: tuple[PayloadIndex, ...] = ()
    finish: dict[str, Any] = field(default_factory=dict)  # update_collection keyword arguments

    def with_vector(self, name: str, params: qm.VectorParams) -> CollectionPlan:
        """The same plan with the named dense vector replaced (or added); not for an unnamed vector."""
        vectors = self.create.get("vectors_config") or {}
        if not isinstance(vectors, dict):
            raise CollectionConfigError("the collection has one unnamed vector: there is no named vector to replace")
        return replace(self, create={**self.create, "vectors_config": {**vectors, name: params}})

    def with_sparse_vector(self, name: str, params: qm.SparseVectorParams) -> CollectionPlan:
        """The same plan with the named sparse vector replaced (or added)."""
        sparse = {**(self.create.get("sparse_vectors_config") or {}), name: params}
        return replace(self, create={**self.create, "sparse_vectors_config": sparse})


def _diff(model: Any, diff_type: type[Any]) -> Any:
    """An output model (HnswConfig, OptimizersConfig, ...) as its input twin (…Diff), None if unset."""
    if model is None:
        return None
    return diff_type.model_validate(model.model_dump(exclude_none=True))


def is_local_mode_info(info: qm.CollectionInfo) -> bool:
    """Local mode leaves the shard number unset; a server always reports one."""
    return info.config.params.shard_number is None


def collection_plan(info: qm.CollectionInfo) -> CollectionPlan:
    """The calls that create a collection configured like the one ``info`` describes.

    Custom sharding is refused: its shard keys are not part of the collection info, so a
    copy would have no shard to put points in.
    """
    config, params = info.config, info.config.params
    if params.sharding_method == qm.ShardingMethod.CUSTOM:
        raise CollectionConfigError("the collection uses custom sharding: create the collection and its shard keys "
                                    "first, then import into it")
    create: dict[str, Any] = {
        "vectors_config": params.vectors if params.vectors is not None else {},
        "sparse_vectors_config": params.sparse_vectors or None,
        "quantization_config": config.quantization_config,
        "metadata": config.metadata,
    }
    if not is_local_mode_info(info):
        create.update({name: getattr(params, name) for name in CREATE_PARAMS})
        create["hnsw_config"] = _diff(config.hnsw_config, qm.HnswConfigDiff)
        create["optimizers_config"] = _diff(config.optimizer_config, qm.OptimizersConfigDiff)
        create["wal_config"] = _diff(config.wal_config, qm.WalConfigDiff)
    indexes = tuple(
        PayloadIndex(name, index.params if index.params is not None else index.data_type)
        for name, index in sorted(info.payload_schema.items())
    )
    finish: dict[str, Any] = {}
    strict = _diff(config.strict_mode_config, qm.StrictModeConfig)
    if strict is not None and strict.model_dump(exclude_none=True):
        finish["strict_mode_config"] = strict
    fan_out = {name: getattr(params, name) for name in UPDATE_PARAMS if getattr(params, name) is not None}
    if fan_out:
        finish["collection_params"] = qm.CollectionParamsDiff(**fan_out)
    return CollectionPlan({k: v for k, v in create.items() if v is not None}, indexes, finish)


def info_to_json(info: qm.CollectionInfo) -> dict[str, Any]:
    """A collection info as JSON, every field kept (None included: local mode is told by one)."""
    data: dict[str, Any] = json.loads(info.model_dump_json())
    return data


_INFO = TypeAdapter(qm.CollectionInfo)


def info_from_json(data: dict[str, Any]) -> qm.CollectionInfo:
    return _INFO.validate_python(data)


async def create_from_plan(qdrant: RetryingClient, collection: str, plan: CollectionPlan) -> None:
    """Create the collection and its payload indexes (indexes first, so loaded points are indexed)."""
    client = qdrant.client
    await qdrant.call(f"create_collection({collection})", lambda: client.create_collection(collection, **plan.create))
    for index in plan.payload_indexes:  # local mode ignores them (qdrant-client warns)
        await qdrant.call(f"create_payload_index({collection}.{index.field_name})", partial(
            client.create_payload_index, collection, index.field_name, field_schema=index.field_schema, wait=True))


async def finish_from_plan(qdrant: RetryingClient, collection: str, plan: CollectionPlan) -> None:
    """What a collection gets after its data is in: strict mode, read fan-out."""
    if plan.finish:
        await qdrant.call(f"update_collection({collection})",
                        lambda: qdrant.client.update_collection(collection, **plan.finish))

