"""Checks of a parsed event against its collection and the settings. Pure: no IO."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from qdrant_client import models as qm

from connector.domain.changes import (
    ChangeEvent,
    DeleteVectorsEvent,
    ReembedEvent,
    Rejection,
    RejectionCode,
    SparseVector,
    UpdateVectorsEvent,
    UpsertEvent,
    filter_of,
)
from connector.domain.operations import DEFAULT_VECTOR, VectorKind
from connector.domain.schema import CollectionSchema


def vector_kind(schema: CollectionSchema, name: str) -> VectorKind | None:
    if name in schema.dense:
        return "dense"
    if name in schema.sparse:
        return "sparse"
    return None


def _describe(name: str) -> str:
    return "the unnamed vector" if name == DEFAULT_VECTOR else f"vector {name!r}"


def _check_vectors(schema: CollectionSchema, point_id: Any, vector: Any) -> str | None:
    named = {DEFAULT_VECTOR: vector} if isinstance(vector, list) else vector
    for name, value in named.items():
        kind = vector_kind(schema, name)
        if kind is None:
            return f"point {point_id}: collection {schema.name!r} has no {_describe(name)}"
        if kind == "sparse" and not isinstance(value, SparseVector):
            return f"point {point_id}: {_describe(name)} is sparse, got a dense list"
        if kind == "dense":
            if isinstance(value, SparseVector):
                return f"point {point_id}: {_describe(name)} is dense, got a sparse vector"
            if len(value) != schema.dense[name].size:
                return f"point {point_id}: {_describe(name)} has {schema.dense[name].size} dimensions, got {len(value)}"
    return None


def check_event(event: ChangeEvent, schema: CollectionSchema, allowed_models: set[str]) -> Rejection | None:
    """A rejection when the event cannot apply to this collection, else None."""

    def reject(code: RejectionCode, message: str) -> Rejection:
        return Rejection(code=code, message=message, collection=event.collection, event_id=event.event_id)

    flt = filter_of(event)
    if flt is not None:
        try:
            qm.Filter.model_validate(flt)
        except ValidationError as exc:
            return reject("invalid_filter", f"not a Qdrant filter: {exc.errors(include_url=False)[0]['msg']}")
    if isinstance(event, (UpsertEvent, UpdateVectorsEvent)):
        for point in event.points:
            vector = getattr(point, "vector", None)
            if vector is not None:
                problem = _check_vectors(schema, point.id, vector)
                if problem:
                    code: RejectionCode = "vector_size_mismatch" if "dimensions" in problem else "unknown_vector"
                    return reject(code, problem)
        if isinstance(event, UpsertEvent) and any(p.text is not None for p in event.points):
            return _check_embedding_target(schema, event.vector_name, event.model, allowed_models, reject)
    if isinstance(event, DeleteVectorsEvent):
        for name in event.vector_names:
            if vector_kind(schema, name) is None:
                return reject("unknown_vector", f"collection {schema.name!r} has no {_describe(name)}")
    if isinstance(event, ReembedEvent):
        return _check_embedding_target(schema, event.vector_name, event.model, allowed_models, reject)
    return None


def _check_embedding_target(schema: CollectionSchema, vector_name: str | None, model: str | None,
                            allowed_models: set[str],
                            reject: Callable[[RejectionCode, str], Rejection]) -> Rejection | None:
    name = vector_name or DEFAULT_VECTOR
    if vector_kind(schema, name) is None:
        return reject("unknown_vector", f"collection {schema.name!r} has no {_describe(name)} to embed into")
    if model is not None and model not in allowed_models:
        return reject(
            "unknown_model", f"model {model!r} is not allowed here; allowed: {', '.join(sorted(allowed_models))}"
        )
    return None
