"""Op -> qdrant-client models: the one request shape for local mode and a server. Pure."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from qdrant_client import models as qm

from connector.domain.changes import ShardKeyWithFallback
from connector.domain.operations import DEFAULT_VECTOR, Op, Sparse, Vector
from connector.domain.sharding import Selector

__all__ = ["shard_key_selector", "to_qdrant", "to_requests"]


def shard_key_selector(selector: Selector | None) -> qm.ShardKeySelector | None:
    """A batch's shard key selector (connector/domain/sharding.py) as qdrant-client takes it."""
    if isinstance(selector, ShardKeyWithFallback):
        return qm.ShardKeyWithFallback(target=selector.target, fallback=selector.fallback)
    return selector


def _vector_model(vector: Vector) -> Any:
    if isinstance(vector, Sparse):
        return qm.SparseVector(indices=list(vector.indices), values=list(vector.values))
    return list(vector)


def _vector_struct(vectors: dict[str, Vector]) -> Any:
    if set(vectors) == {DEFAULT_VECTOR}:
        return _vector_model(vectors[DEFAULT_VECTOR])
    return {name: _vector_model(v) for name, v in vectors.items()}


def _points_selector(op: Op, shard: qm.ShardKeySelector | None) -> qm.FilterSelector | qm.PointIdsList:
    """The points an op by ids or by filter addresses, as Qdrant's selector."""
    if op.filter is not None:
        return qm.FilterSelector(filter=qm.Filter.model_validate(op.filter), shard_key=shard)
    return qm.PointIdsList(points=list(op.ids or []), shard_key=shard)


def _selector_fields(op: Op, shard: qm.ShardKeySelector | None) -> dict[str, Any]:
    if op.filter is not None:
        return {"filter": qm.Filter.model_validate(op.filter), "shard_key": shard}
    return {"points": list(op.ids or []), "shard_key": shard}


def to_qdrant(op: Op, shard_key: Selector | None = None) -> qm.UpdateOperation:
    """The qdrant-client model of one op (the same request shape for local mode and server),
    written to ``shard_key``'s shards of a custom-sharded collection."""
    shard = shard_key_selector(shard_key)
    if op.kind == "upsert":
        assert op.points is not None
        points = [
            qm.PointStruct(id=pid, vector=_vector_struct(d.vectors) if d.vectors else {}, payload=d.payload or {})
            for pid, d in op.points.items()
        ]
        return qm.UpsertOperation(upsert=qm.PointsList(points=points, shard_key=shard))
    if op.kind == "update_vectors":
        assert op.points is not None
        pvs = [qm.PointVectors(id=pid, vector=_vector_struct(d.vectors)) for pid, d in op.points.items()]
        return qm.UpdateVectorsOperation(update_vectors=qm.UpdateVectors(points=pvs, shard_key=shard))
    if op.kind == "delete":
        return qm.DeleteOperation(delete=_points_selector(op, shard))
    if op.kind == "set_payload":
        return qm.SetPayloadOperation(
            set_payload=qm.SetPayload(payload=op.payload or {}, key=op.key, **_selector_fields(op, shard))
        )
    if op.kind == "overwrite_payload":
        return qm.OverwritePayloadOperation(
            overwrite_payload=qm.SetPayload(payload=op.payload or {}, **_selector_fields(op, shard))
        )
    if op.kind == "delete_payload":
        return qm.DeletePayloadOperation(
            delete_payload=qm.DeletePayload(keys=list(op.keys or ()), **_selector_fields(op, shard))
        )
    if op.kind == "clear_payload":
        return qm.ClearPayloadOperation(clear_payload=_points_selector(op, shard))
    if op.kind == "delete_vectors":
        return qm.DeleteVectorsOperation(
            delete_vectors=qm.DeleteVectors(vector=list(op.vector_names or ()), **_selector_fields(op, shard))
        )
    raise ValueError(f"unknown op kind {op.kind}")


def to_requests(op: Op, shard_key: Selector | None = None) -> list[qm.UpdateOperation]:
    """The operations the sink sends for one op: :func:`to_qdrant`, except that an id-addressed
    ``set_payload`` with null values becomes a ``delete_payload`` of those keys and a
    ``set_payload`` of the rest. Engines disagree on a null (local mode stores it; a server
    removes the key, but stores it on a point without payload); the connector's meaning, and
    every engine's once split, is "remove the key". A filter-addressed one is sent as it is:
    two ops on one filter can change what the second matches."""
    nulls = [k for k, v in (op.payload or {}).items() if v is None] if op.kind == "set_payload" else []
    if not nulls or op.filter is not None:
        return [to_qdrant(op, shard_key)]
    paths = [f"{op.key}.{k}" if op.key else k for k in nulls]
    delete = qm.DeletePayloadOperation(delete_payload=qm.DeletePayload(
        keys=paths, points=list(op.ids or []), shard_key=shard_key_selector(shard_key)))
    rest = {k: v for k, v in (op.payload or {}).items() if v is not None}
    # with a key, the model walks (creating objects) even when nothing is left to set
    return [delete, to_qdrant(replace(op, payload=rest), shard_key)] if rest or op.key else [delete]

