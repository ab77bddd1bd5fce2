"""Op -> the protobuf messages of a gRPC batch request, built straight from the ops. Pure.

The reference shape is :func:`connector.qdrant.convert.to_requests`: qdrant-client models that
the client then converts to protobuf (``RestToGrpc``), field by field. Over gRPC that was the
largest share of the worker's CPU after embedding, so the gRPC sender takes this path for
id-addressed ops, as the REST one takes connector/qdrant/rest_wire.py. It builds exactly the
messages the models would (``tests/unit/test_grpc_wire.py`` holds the two equal over random ops);
a filter-addressed op, whose filter the models normalise, takes the model path, as does a payload
protobuf cannot carry (an integer beyond 64 bits, a lone surrogate in a string).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from qdrant_client import grpc

from connector.domain.changes import ShardKeyWithFallback
from connector.domain.operations import DEFAULT_VECTOR, Op, PointKey, Sparse, Vector
from connector.domain.sharding import Selector

__all__ = ["grpc_batch_operations", "grpc_operations", "payload_values", "point_id", "shard_key_selector"]

Update = grpc.PointsUpdateOperation


def _shard_key(key: int | str) -> grpc.ShardKey:
    return grpc.ShardKey(number=key) if isinstance(key, int) else grpc.ShardKey(keyword=key)


def shard_key_selector(selector: Selector | None) -> grpc.ShardKeySelector | None:
    """A batch's shard key selector as Qdrant's gRPC API takes it (None: none)."""
    if selector is None:
        return None
    if isinstance(selector, ShardKeyWithFallback):
        return grpc.ShardKeySelector(shard_keys=[_shard_key(selector.target)], fallback=_shard_key(selector.fallback))
    keys = selector if isinstance(selector, list) else [selector]
    return grpc.ShardKeySelector(shard_keys=[_shard_key(key) for key in keys])


def point_id(pid: PointKey) -> grpc.PointId:
    return grpc.PointId(num=pid) if isinstance(pid, int) else grpc.PointId(uuid=pid)


def _value(value: Any) -> grpc.Value:
    """A payload value as ``json_to_value`` of qdrant-client makes it (bool before int: a bool is an int)."""
    if isinstance(value, str):
        return grpc.Value(string_value=value)
    if isinstance(value, bool):
        return grpc.Value(bool_value=value)
    if isinstance(value, int):
        return grpc.Value(integer_value=value)
    if isinstance(value, float):
        return grpc.Value(double_value=value)
    if value is None:
        return grpc.Value(null_value=grpc.NullValue.NULL_VALUE)
    if isinstance(value, dict):
        return grpc.Value(struct_value=grpc.Struct(fields={k: _value(v) for k, v in value.items()}))
    if isinstance(value, (list, tuple)):
        return grpc.Value(list_value=grpc.ListValue(values=[_value(v) for v in value]))
    raise ValueError(f"not a JSON value: {value!r}")


def payload_values(payload: dict[str, Any]) -> dict[str, grpc.Value]:
    """A payload as the map of ``grpc.Value`` a message takes."""
    return {key: _value(value) for key, value in payload.items()}


def _vector(vector: Vector) -> grpc.Vector:
    if isinstance(vector, Sparse):
        return grpc.Vector(sparse=grpc.SparseVector(values=vector.values, indices=vector.indices))
    return grpc.Vector(dense=grpc.DenseVector(data=vector))


def _vectors(vectors: dict[str, Vector]) -> grpc.Vectors:
    if set(vectors) == {DEFAULT_VECTOR}:
        return grpc.Vectors(vector=_vector(vectors[DEFAULT_VECTOR]))
    # no vectors at all is an empty map, set: what the models' ``vector={}`` becomes
    return grpc.Vectors(vectors=grpc.NamedVectors(vectors={name: _vector(v) for name, v in vectors.items()}))


def _ids(ids: list[PointKey] | None) -> grpc.PointsSelector:
    return grpc.PointsSelector(points=grpc.PointsIdsList(ids=[point_id(pid) for pid in ids or []]))


def _operation(op: Op, shard: grpc.ShardKeySelector | None) -> Update:
    if op.kind == "upsert":
        assert op.points is not None
        points = [grpc.PointStruct(id=point_id(pid), vectors=_vectors(d.vectors),
                                   payload=payload_values(d.payload or {})) for pid, d in op.points.items()]
        return Update(upsert=Update.PointStructList(points=points, shard_key_selector=shard))
    if op.kind == "update_vectors":
        assert op.points is not None
        vectors = [grpc.PointVectors(id=point_id(pid), vectors=_vectors(d.vectors)) for pid, d in op.points.items()]
        return Update(update_vectors=Update.UpdateVectors(points=vectors, shard_key_selector=shard))
    if op.kind == "delete":
        return Update(delete_points=Update.DeletePoints(points=_ids(op.ids), shard_key_selector=shard))
    if op.kind == "clear_payload":
        return Update(clear_payload=Update.ClearPayload(points=_ids(op.ids), shard_key_selector=shard))
    if op.kind == "set_payload":
        return Update(set_payload=Update.SetPayload(payload=payload_values(op.payload or {}),
                                                    points_selector=_ids(op.ids), shard_key_selector=shard,
                                                    key=op.key))
    if op.kind == "overwrite_payload":
        return Update(overwrite_payload=Update.OverwritePayload(payload=payload_values(op.payload or {}),
                                                                points_selector=_ids(op.ids),
                                                                shard_key_selector=shard))
    if op.kind == "delete_payload":
        return Update(delete_payload=Update.DeletePayload(keys=list(op.keys or ()), points_selector=_ids(op.ids),
                                                          shard_key_selector=shard))
    if op.kind == "delete_vectors":
        return Update(delete_vectors=Update.DeleteVectors(
            points_selector=_ids(op.ids), vectors=grpc.VectorsSelector(names=list(op.vector_names or ())),
            shard_key_selector=shard))
    raise ValueError(f"unknown op kind {op.kind}")


def grpc_operations(op: Op, shard: grpc.ShardKeySelector | None = None) -> list[Update] | None:
    """What :func:`~connector.qdrant.convert.to_requests` sends for ``op`` over gRPC, as the
    client would convert it; None for a filter-addressed op (the model path). ``shard`` is
    :func:`shard_key_selector` of the batch's selector."""
    if op.filter is not None:
        return None
    nulls = [k for k, v in (op.payload or {}).items() if v is None] if op.kind == "set_payload" else []
    if not nulls:
        return [_operation(op, shard)]
    # the null split of to_requests: remove those keys, then set the rest
    paths = [f"{op.key}.{k}" if op.key else k for k in nulls]
    delete = Update(delete_payload=Update.DeletePayload(keys=paths, points_selector=_ids(op.ids),
                                                        shard_key_selector=shard))
    rest = {k: v for k, v in (op.payload or {}).items() if v is not None}
    if not rest and not op.key:
        return [delete]
    return [delete, _operation(replace(op, payload=rest), shard)]


def grpc_batch_operations(ops: list[Op], shard_key: Selector | None = None) -> list[Update] | None:
    """The operations of ``UpdateBatchPoints`` for ``ops``, or None when one of them takes the
    model path (a filter, or a payload protobuf refuses: the model path reports that error as
    the event's, inside the retrying call)."""
    shard = shard_key_selector(shard_key)
    operations: list[Update] = []
    try:
        for op in ops:
            own = grpc_operations(op, shard)
            if own is None:
                return None
            operations += own
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        return None
    return operations
