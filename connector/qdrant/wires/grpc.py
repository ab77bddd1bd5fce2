"""The gRPC wire: batch requests built as protobuf straight from the ops, reads decoded from the protobuf answer.

Over gRPC qdrant-client converts the same models to protobuf (``RestToGrpc``), field by field, and
its reads convert each point back to a model, every payload value through ``MessageToDict``. This
wire builds exactly the messages the models would (tests/unit/test_grpc_wire.py holds the two
equal over random windows; in place: a message given to a constructor is copied at each level of
nesting) and sends them through the client's own points stub (its channels, API key, deadline,
errors: the client's; client_internals.py). A filter-addressed op, whose filter the models
normalise, and a payload protobuf cannot carry (an integer beyond 64 bits, a lone surrogate in a
string) go as the models' request instead. Reads go from the protobuf answer to the verifier's
state, numpy reading each dense vector's repeated field directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient, grpc
from qdrant_client import models as qm

from connector.domain.changes import normalize_id
from connector.domain.operations import DEFAULT_VECTOR, Op, PointKey, Sparse, Vector
from connector.domain.semantics import PointState, State, StoredVector
from connector.domain.sharding import Selector
from connector.qdrant.wires.base import Selection, ShardTarget, Wire, request_ops, shard_target
from connector.qdrant.wires.client_internals import (
    grpc_deadline,
    grpc_read_consistency,
    grpc_with_payload,
    grpc_with_vectors,
    grpc_write_ordering,
)
from connector.qdrant.wires.models import ModelsBatch, ModelsWire

__all__ = ["GrpcWire", "batch_operations", "state_from_grpc"]

Update = grpc.PointsUpdateOperation
GrpcAnswer = Sequence[grpc.RetrievedPoint]

# --- encode ----------------------------------------------------------------------------------


def _key(key: int | str) -> grpc.ShardKey:
    return grpc.ShardKey(number=key) if isinstance(key, int) else grpc.ShardKey(keyword=key)


def _shard_key(target: ShardTarget | None) -> grpc.ShardKeySelector | None:
    if target is None:
        return None
    fallback = None if target.fallback is None else _key(target.fallback)
    return grpc.ShardKeySelector(shard_keys=[_key(key) for key in target.keys], fallback=fallback)


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


def batch_operations(ops: list[Op], shard_key: Selector | None = None) -> list[Update] | None:
    """The operations of ``UpdateBatchPoints`` for ``ops``, or None when one of them is
    filter-addressed or carries a payload protobuf refuses (the models' request then: it reports
    that error as the event's, inside the retrying call)."""
    if any(op.filter is not None for op in ops):
        return None
    shard = _shard_key(shard_target(shard_key))
    try:
        return [_operation(part, shard) for op in ops for part in request_ops(op)]
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        return None


# --- decode ----------------------------------------------------------------------------------


def state_from_grpc(points: Iterable[grpc.RetrievedPoint]) -> State:
    """The points of a gRPC ``Get`` answer as connector state, without qdrant-client's conversion
    to models (which reads each payload value through ``MessageToDict``)."""
    return {_point_key(point.id): PointState(payload={k: _value(v) for k, v in point.payload.items()},
                                             vectors=_vectors(point.vectors) if point.HasField("vectors") else {})
            for point in points}


def _point_key(pid: grpc.PointId) -> PointKey:
    return pid.num if pid.WhichOneof("point_id_options") == "num" else normalize_id(pid.uuid)


def _value(value: grpc.Value) -> Any:
    """A payload value as qdrant-client's ``value_to_json`` gives it: integers as int, doubles as float."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {k: _value(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_value(v) for v in value.list_value.values]
    if kind == "null_value":
        return None
    if kind is None:
        raise ValueError("a payload value without a kind")
    return getattr(value, kind)


def _vectors(raw: grpc.VectorsOutput) -> dict[str, StoredVector]:
    """As :func:`~connector.qdrant.wires.models.stored_vectors` reads the models of these: the
    unnamed vector dense (or a multivector, as its lists), named ones dense or sparse; named
    multivectors are not compared."""
    if raw.WhichOneof("vectors_options") == "vector":
        kind, value = _vector(raw.vector)
        return {DEFAULT_VECTOR: value} if kind in ("dense", "multi_dense") else {}
    vectors: dict[str, StoredVector] = {}
    for name, output in raw.vectors.vectors.items():
        kind, value = _vector(output)
        if kind == "sparse" or (kind == "dense" and len(value)):
            vectors[name] = value
    return vectors


def _vector(output: grpc.VectorOutput) -> tuple[str, Any]:
    """The kind of one vector and its value; a server may still fill the deprecated fields
    (``data``, ``indices``, ``vectors_count``) instead of the oneof."""
    kind = output.WhichOneof("vector")
    if kind == "dense":  # numpy reads the repeated field ~3x faster than a tuple of Python floats is made
        dense = np.array(output.dense.data, dtype=np.float64)
        dense.flags.writeable = False  # immutable, as a state's vectors are (semantics.copy_state)
        return kind, dense
    if kind == "sparse":
        return kind, Sparse(tuple(output.sparse.indices), tuple(output.sparse.values))
    if kind == "multi_dense":
        return kind, tuple(list(v.data) for v in output.multi_dense.vectors)
    if output.HasField("indices"):
        return "sparse", Sparse(tuple(output.indices.data), tuple(output.data))
    if output.HasField("vectors_count"):
        data, step = list(output.data), len(output.data) // output.vectors_count
        return "multi_dense", tuple(data[i : i + step] for i in range(0, len(data), step))
    return "dense", tuple(output.data)


# --- the wire --------------------------------------------------------------------------------

# qdrant-client's statuses of an update answered over gRPC
STATUSES = {grpc.UpdateStatus.Acknowledged: qm.UpdateStatus.ACKNOWLEDGED,
            grpc.UpdateStatus.Completed: qm.UpdateStatus.COMPLETED,
            grpc.UpdateStatus.WaitTimeout: qm.UpdateStatus.WAIT_TIMEOUT}


class GrpcWire(Wire[list[Update] | ModelsBatch, GrpcAnswer]):
    """gRPC to a server: requests built as protobuf from the ops, reads decoded from the protobuf answer."""

    name = "grpc"

    def __init__(self, client: AsyncQdrantClient) -> None:
        super().__init__(client)
        self.models = ModelsWire(client)  # what this wire does not build itself

    @staticmethod
    def encode(ops: list[Op], shard_key: Selector | None = None) -> list[Update] | ModelsBatch:
        operations = batch_operations(ops, shard_key)
        return ModelsWire.encode(ops, shard_key) if operations is None else operations

    async def send(self, collection: str, request: list[Update] | ModelsBatch, ordering: qm.WriteOrdering, *,
                   timeout: int | None) -> list[qm.UpdateResult]:
        """``UpdateBatch`` with ``wait=true``: the same request and answer as
        ``client.batch_update_points`` over gRPC. A status qdrant-client does not know (its
        conversion raises) counts here as not applied, by its number."""
        if isinstance(request, ModelsBatch):
            return await self.models.send(collection, request, ordering, timeout=timeout)
        batch = grpc.UpdateBatchPoints(collection_name=collection, wait=True, operations=request,
                                       ordering=grpc_write_ordering(ordering), timeout=timeout)
        answer = await self.client.grpc_points.UpdateBatch(batch, timeout=grpc_deadline(self.client))
        return [qm.UpdateResult.model_construct(
            operation_id=result.operation_id if result.HasField("operation_id") else None,
            status=STATUSES.get(result.status) or f"grpc:{result.status}")  # type: ignore[arg-type] # unknown: not applied
            for result in answer.result]

    async def retrieve(self, collection: str, ids: list[PointKey], *, payload: Selection, vectors: Selection,
                       shard_key: Selector | None, consistency: qm.ReadConsistency | None) -> GrpcAnswer:
        """``Get``, the request and its deadline as the client's own ``retrieve`` makes them."""
        request = grpc.GetPoints(
            collection_name=collection, ids=[_point_id(pid) for pid in ids],
            with_payload=grpc_with_payload(payload), with_vectors=grpc_with_vectors(vectors),
            read_consistency=None if consistency is None else grpc_read_consistency(consistency),
            shard_key_selector=_shard_key(shard_target(shard_key)))
        answer = await self.client.grpc_points.Get(request, timeout=grpc_deadline(self.client))
        points: GrpcAnswer = answer.result
        return points

    @staticmethod
    def decode(answers: Iterable[GrpcAnswer]) -> State:
        return state_from_grpc(point for answer in answers for point in answer)


def _point_id(pid: PointKey) -> grpc.PointId:
    return grpc.PointId(num=pid) if isinstance(pid, int) else grpc.PointId(uuid=pid)
