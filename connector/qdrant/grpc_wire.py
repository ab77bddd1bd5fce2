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

__all__ = ["grpc_batch_operations", "grpc_operations", "point_id", "shard_key_selector"]

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


def _fill_value(target: grpc.Value, value: Any) -> None:
    """A payload value as ``json_to_value`` of qdrant-client makes it (a bool before an int: a bool is one)."""
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.integer_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif value is None:
        target.null_value = grpc.NullValue.NULL_VALUE
    elif isinstance(value, dict):
        target.struct_value.SetInParent()  # set even when empty
        _fill_payload(target.struct_value.fields, value)
    elif isinstance(value, (list, tuple)):
        target.list_value.SetInParent()
        values = target.list_value.values
        for item in value:
            _fill_value(values.add(), item)
    else:
        raise ValueError(f"not a JSON value: {value!r}")


def _fill_payload(target: Any, payload: dict[str, Any]) -> None:
    for key, value in payload.items():
        _fill_value(target[key], value)


def _fill_vector(target: grpc.Vector, vector: Vector) -> None:
    if isinstance(vector, Sparse):
        target.sparse.SetInParent()
        target.sparse.values.extend(vector.values)
        target.sparse.indices.extend(vector.indices)
    else:
        target.dense.SetInParent()
        target.dense.data.extend(vector)


def _fill_vectors(target: grpc.Vectors, vectors: dict[str, Vector]) -> None:
    if set(vectors) == {DEFAULT_VECTOR}:
        _fill_vector(target.vector, vectors[DEFAULT_VECTOR])
        return
    # no vectors at all is an empty map, set: what the models' ``vector={}`` becomes
    target.vectors.SetInParent()
    named = target.vectors.vectors
    for name, vector in vectors.items():
        _fill_vector(named[name], vector)


def _fill_ids(target: grpc.PointsSelector, ids: list[PointKey] | None) -> None:
    target.points.SetInParent()
    out = target.points.ids
    for pid in ids or []:
        if isinstance(pid, int):
            out.add().num = pid
        else:
            out.add().uuid = pid


def _operation(op: Op, shard: grpc.ShardKeySelector | None) -> Update:
    # Built in place, top down: a message passed to a constructor is copied, and the copies of a
    # point's vector at each level of nesting cost more than building it.
    update = Update()
    if op.kind in ("upsert", "update_vectors"):
        assert op.points is not None
        body: Any = getattr(update, op.kind)
        for pid, data in op.points.items():
            point = body.points.add()
            if isinstance(pid, int):
                point.id.num = pid
            else:
                point.id.uuid = pid
            _fill_vectors(point.vectors, data.vectors)
            if op.kind == "upsert":
                _fill_payload(point.payload, data.payload or {})
    elif op.kind in ("delete", "clear_payload"):
        body = update.delete_points if op.kind == "delete" else update.clear_payload
        _fill_ids(body.points, op.ids)
    elif op.kind in ("set_payload", "overwrite_payload"):
        body = getattr(update, op.kind)
        _fill_payload(body.payload, op.payload or {})
        _fill_ids(body.points_selector, op.ids)
        if op.kind == "set_payload" and op.key is not None:
            body.key = op.key
    elif op.kind == "delete_payload":
        body = update.delete_payload
        body.keys.extend(op.keys or ())
        _fill_ids(body.points_selector, op.ids)
    elif op.kind == "delete_vectors":
        body = update.delete_vectors
        _fill_ids(body.points_selector, op.ids)
        body.vectors.names.extend(op.vector_names or ())
    else:
        raise ValueError(f"unknown op kind {op.kind}")
    body.SetInParent()
    if shard is not None:
        body.shard_key_selector.CopyFrom(shard)
    return update


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
    delete = _operation(Op("delete_payload", ids=op.ids, keys=tuple(paths)), shard)
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
