"""The models wire: qdrant-client's models and calls, the one request shape every engine takes.

Local mode speaks only this; over REST and gRPC it is the reference the fast wires are held to
(tests/unit/test_rest_wire.py, test_grpc_wire.py), and what they hand a request to when they
cannot write it themselves (a filter, which the models normalise; a payload value their format
cannot carry). The bulk tools and the texts read records through :meth:`ModelsWire.retrieve` too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qdrant_client import models as qm

from connector.domain.changes import normalize_id
from connector.domain.operations import DEFAULT_VECTOR, Op, PointKey, Sparse, Vector
from connector.domain.semantics import PointState, State, StoredVector
from connector.domain.sharding import Selector
from connector.qdrant.wires.base import Selection, ShardTarget, Wire, request_ops, shard_target

__all__ = ["ModelsBatch", "ModelsWire", "shard_key_selector", "state_from_records", "stored_vectors", "to_qdrant",
           "to_requests"]


def _shard_key(target: ShardTarget | None) -> qm.ShardKeySelector | None:
    if target is None:
        return None
    if target.fallback is not None:
        return qm.ShardKeyWithFallback(target=target.keys[0], fallback=target.fallback)
    return target.as_named


def shard_key_selector(selector: Selector | None) -> qm.ShardKeySelector | None:
    """A batch's shard key selector (connector/domain/sharding.py) as qdrant-client takes it."""
    return _shard_key(shard_target(selector))


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


def _operation(op: Op, shard: qm.ShardKeySelector | None) -> qm.UpdateOperation:
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


def to_qdrant(op: Op, shard_key: Selector | None = None) -> qm.UpdateOperation:
    """The qdrant-client model of one op as it is (no null split: :func:`to_requests` sends),
    written to ``shard_key``'s shards of a custom-sharded collection."""
    return _operation(op, shard_key_selector(shard_key))


def to_requests(op: Op, shard_key: Selector | None = None) -> list[qm.UpdateOperation]:
    """The operations the connector sends for one op (:func:`~connector.qdrant.wires.base.request_ops`)."""
    shard = shard_key_selector(shard_key)
    return [_operation(part, shard) for part in request_ops(op)]


@dataclass(frozen=True, slots=True)
class ModelsBatch:
    """A batch request as qdrant-client's models (the REST and gRPC wires hand these over too)."""

    operations: list[qm.UpdateOperation]


def stored_vectors(raw: Any) -> dict[str, StoredVector]:
    """A record's vectors as connector state: dense as tuples, sparse as Sparse (a model, or its
    REST JSON ``{"indices": [...], "values": [...]}``); multivectors are not compared."""
    vectors: dict[str, StoredVector] = {}
    if isinstance(raw, list):
        vectors[DEFAULT_VECTOR] = tuple(raw)
    elif isinstance(raw, dict):
        for name, value in raw.items():
            if isinstance(value, qm.SparseVector):
                vectors[name] = Sparse(tuple(value.indices), tuple(value.values))
            elif isinstance(value, dict):
                vectors[name] = Sparse(tuple(value["indices"]), tuple(value["values"]))
            elif isinstance(value, list) and value and isinstance(value[0], (int, float)):
                vectors[name] = tuple(value)
    return vectors


def state_from_records(records: Iterable[qm.Record]) -> State:
    """Qdrant records as connector state (ids normalised, vectors as tuples/Sparse)."""
    return {normalize_id(record.id): PointState(payload=dict(record.payload or {}),
                                                vectors=stored_vectors(record.vector))
            for record in records}


class ModelsWire(Wire[ModelsBatch, list[qm.Record]]):
    """qdrant-client's models, sent and read by its own calls (local mode, and the reference)."""

    name = "models"

    @staticmethod
    def encode(ops: list[Op], shard_key: Selector | None = None) -> ModelsBatch:
        shard = shard_key_selector(shard_key)
        return ModelsBatch([_operation(part, shard) for op in ops for part in request_ops(op)])

    async def send(self, collection: str, request: ModelsBatch, ordering: qm.WriteOrdering, *,
                   timeout: int | None) -> list[qm.UpdateResult]:
        return await self.client.batch_update_points(collection, request.operations, wait=True, ordering=ordering,
                                                     timeout=timeout)

    async def retrieve(self, collection: str, ids: list[PointKey], *, payload: Selection, vectors: Selection,
                       shard_key: Selector | None, consistency: qm.ReadConsistency | None) -> list[qm.Record]:
        return await self.client.retrieve(collection, ids, with_payload=payload, with_vectors=vectors,
                                          shard_key_selector=shard_key_selector(shard_key), consistency=consistency)

    @staticmethod
    def decode(answers: Iterable[list[qm.Record]]) -> State:
        return state_from_records(record for answer in answers for record in answer)
