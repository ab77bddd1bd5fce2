"""Op -> the REST JSON of a batch request, built straight from the ops and encoded by orjson. Pure.

The reference shape is :func:`connector.qdrant.convert.to_requests`: qdrant-client models that the
client then serialises field by field. For a window of 500 upserts of 384-d vectors that is the
largest share of the worker's CPU after embedding (building the models and their JSON), so the
REST sender takes this path for id-addressed ops. It writes exactly what the models would
(``tests/unit/test_rest_wire.py`` holds the two to the same JSON over random ops); a
filter-addressed op, whose filter the models normalise, takes the model path, as does a payload
orjson cannot encode (an integer beyond 64 bits).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from connector.domain.changes import ShardKeyWithFallback
from connector.domain.operations import DEFAULT_VECTOR, Op, Sparse, Vector
from connector.domain.sharding import Selector

__all__ = ["rest_batch_body", "rest_operations", "shard_key_json"]


def shard_key_json(selector: Selector | None) -> Any:
    """A batch's shard key selector as Qdrant's REST API takes it (None: none)."""
    if isinstance(selector, ShardKeyWithFallback):
        return {"target": selector.target, "fallback": selector.fallback}
    return selector


def _vector(vector: Vector) -> Any:
    if isinstance(vector, Sparse):
        return {"indices": list(vector.indices), "values": list(vector.values)}
    return vector  # a tuple: orjson writes it as an array


def _vectors(vectors: dict[str, Vector]) -> Any:
    if set(vectors) == {DEFAULT_VECTOR}:
        return _vector(vectors[DEFAULT_VECTOR])
    return {name: _vector(v) for name, v in vectors.items()}


def _with_shard(body: dict[str, Any], shard: Any) -> dict[str, Any]:
    if shard is not None:
        body["shard_key"] = shard
    return body


def _operation(op: Op, shard: Any) -> dict[str, Any]:
    ids = list(op.ids or [])
    if op.kind == "upsert":
        assert op.points is not None
        points = [{"id": pid, "vector": _vectors(d.vectors) if d.vectors else {}, "payload": d.payload or {}}
                  for pid, d in op.points.items()]
        return {"upsert": _with_shard({"points": points}, shard)}
    if op.kind == "update_vectors":
        assert op.points is not None
        points = [{"id": pid, "vector": _vectors(d.vectors)} for pid, d in op.points.items()]
        return {"update_vectors": _with_shard({"points": points}, shard)}
    if op.kind in ("delete", "clear_payload"):
        return {op.kind: _with_shard({"points": ids}, shard)}
    if op.kind in ("set_payload", "overwrite_payload"):
        body: dict[str, Any] = {"payload": op.payload or {}, "points": ids}
        if op.kind == "set_payload" and op.key is not None:
            body["key"] = op.key
        return {op.kind: _with_shard(body, shard)}
    if op.kind == "delete_payload":
        return {"delete_payload": _with_shard({"keys": list(op.keys or ()), "points": ids}, shard)}
    if op.kind == "delete_vectors":
        return {"delete_vectors": _with_shard({"points": ids, "vector": list(op.vector_names or ())}, shard)}
    raise ValueError(f"unknown op kind {op.kind}")


def rest_operations(op: Op, shard_key: Selector | None = None) -> list[dict[str, Any]] | None:
    """What :func:`~connector.qdrant.convert.to_requests` sends for ``op``, as REST JSON values;
    None for a filter-addressed op (the model path)."""
    if op.filter is not None:
        return None
    shard = shard_key_json(shard_key)
    nulls = [k for k, v in (op.payload or {}).items() if v is None] if op.kind == "set_payload" else []
    if not nulls:
        return [_operation(op, shard)]
    # the null split of to_requests: remove those keys, then set the rest
    paths = [f"{op.key}.{k}" if op.key else k for k in nulls]
    delete = {"delete_payload": _with_shard({"keys": paths, "points": list(op.ids or [])}, shard)}
    rest = {k: v for k, v in (op.payload or {}).items() if v is not None}
    if not rest and not op.key:
        return [delete]
    return [delete, _operation(replace(op, payload=rest), shard)]


def rest_batch_body(ops: list[Op], shard_key: Selector | None = None) -> bytes | None:
    """The body of ``POST /collections/{name}/points/batch`` for ``ops``, or None when one of them
    takes the model path."""
    operations: list[dict[str, Any]] = []
    for op in ops:
        own = rest_operations(op, shard_key)
        if own is None:
            return None
        operations += own
    try:
        return orjson.dumps({"operations": operations})
    except (orjson.JSONEncodeError, TypeError):
        return None
