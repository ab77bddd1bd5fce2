"""Point operations as plain data: what the planner coalesces and the sink sends.

An :class:`Op` is one of Qdrant's eight batch operations, addressed by point ids or by a
filter, with vectors already concrete (texts are embedded before an event becomes an Op).
``sources`` lists the window positions of the events it came from; ``parts`` keeps the
single-event operations a coalesced Op was built from, so that a failure can be traced back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from connector.domain.changes import (
    ChangeEvent,
    ClearPayloadEvent,
    DeleteEvent,
    DeletePayloadEvent,
    DeleteVectorsEvent,
    OverwritePayloadEvent,
    PatchOp,
    PointId,
    SetPayloadEvent,
    SparseVector,
    UpdateVectorsEvent,
    UpsertEvent,
    normalize_id,
)

PointKey = int | str
OpKind = PatchOp  # Qdrant's eight point operations: an op is what a patch event asks for
# Operations that Qdrant refuses (404) when a named point does not exist.
NEEDS_EXISTING_POINT: frozenset[str] = frozenset(
    {"set_payload", "overwrite_payload", "delete_payload", "clear_payload", "update_vectors", "delete_vectors"}
)


@dataclass(frozen=True)
class Sparse:
    indices: tuple[int, ...]
    values: tuple[float, ...]


Vector = tuple[float, ...] | Sparse
VectorKind = Literal["dense", "sparse"]
DEFAULT_VECTOR = ""  # Qdrant's name for the unnamed vector


@dataclass
class PointData:
    """Vectors (and, for upserts, the payload) of one point in an operation."""

    vectors: dict[str, Vector]
    payload: dict[str, Any] | None = None


@dataclass
class Op:
    kind: OpKind
    ids: list[PointKey] | None = None
    filter: dict[str, Any] | None = None
    points: dict[PointKey, PointData] | None = None
    payload: dict[str, Any] | None = None
    key: str | None = None
    keys: tuple[str, ...] | None = None
    vector_names: tuple[str, ...] | None = None
    sources: list[int] = field(default_factory=list)
    parts: list[Op] = field(default_factory=list)

    def point_ids(self) -> list[PointKey]:
        """Ids this op addresses directly (empty for filter-addressed ops)."""
        if self.points is not None:
            return list(self.points)
        return list(self.ids or [])

    @property
    def by_filter(self) -> bool:
        return self.filter is not None

    def merge_key(self) -> tuple[Any, ...]:
        """Ops with equal keys may become one op (ids united, or points combined)."""
        if self.kind in ("set_payload", "overwrite_payload"):
            return (self.kind, _canonical(self.payload), self.key)
        if self.kind == "delete_payload":
            return (self.kind, tuple(sorted(self.keys or ())))
        if self.kind == "delete_vectors":
            return (self.kind, tuple(sorted(self.vector_names or ())))
        return (self.kind,)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def vector_from_input(value: list[float] | SparseVector) -> Vector:
    if isinstance(value, SparseVector):
        return Sparse(tuple(value.indices), tuple(value.values))
    return tuple(value)


def named_vectors(value: Any) -> dict[str, Vector]:
    """An event's vector field as {name: vector}; a bare list is the unnamed vector."""
    if isinstance(value, list):
        return {DEFAULT_VECTOR: tuple(value)}
    return {name: vector_from_input(v) for name, v in value.items()}


def op_from_patch(event: ChangeEvent, position: int, embedded: dict[PointKey, Vector] | None = None) -> Op:
    """The one Op that a patch event stands for.

    ``embedded`` holds the vectors computed for an upsert's ``text`` points, keyed by id.
    """
    src = [position]
    if isinstance(event, UpsertEvent):
        points: dict[PointKey, PointData] = {}
        for point in event.points:
            pid = normalize_id(point.id)
            vectors: dict[str, Vector] = {}
            if point.vector is not None:
                vectors = named_vectors(point.vector)
            elif point.text is not None:
                if embedded is None or pid not in embedded:
                    raise ValueError(f"no embedding for text of point {pid}")
                vectors = {event.vector_name or DEFAULT_VECTOR: embedded[pid]}
            # the same id twice in one event: the last one wins, as in Qdrant
            points.pop(pid, None)
            points[pid] = PointData(vectors=vectors, payload=dict(point.payload or {}))
        return Op("upsert", points=points, sources=src)
    if isinstance(event, UpdateVectorsEvent):
        points = {}
        for vp in event.points:
            pid = normalize_id(vp.id)
            previous = points.pop(pid, None)
            merged = dict(previous.vectors) if previous else {}
            merged.update(named_vectors(vp.vector))
            points[pid] = PointData(vectors=merged)
        return Op("update_vectors", points=points, sources=src)
    event_ids: list[PointId] | None = getattr(event, "ids", None)
    ids = _dedupe([normalize_id(i) for i in event_ids]) if event_ids else None
    flt = getattr(event, "filter", None)
    if isinstance(event, DeleteEvent):
        return Op("delete", ids=ids, filter=flt, sources=src)
    if isinstance(event, SetPayloadEvent):
        return Op("set_payload", ids=ids, filter=flt, payload=dict(event.payload), key=event.key, sources=src)
    if isinstance(event, OverwritePayloadEvent):
        return Op("overwrite_payload", ids=ids, filter=flt, payload=dict(event.payload), sources=src)
    if isinstance(event, DeletePayloadEvent):
        return Op("delete_payload", ids=ids, filter=flt, keys=tuple(event.keys), sources=src)
    if isinstance(event, ClearPayloadEvent):
        return Op("clear_payload", ids=ids, filter=flt, sources=src)
    if isinstance(event, DeleteVectorsEvent):
        return Op("delete_vectors", ids=ids, filter=flt, vector_names=tuple(event.vector_names), sources=src)
    raise TypeError(f"not a patch event: {type(event).__name__}")


def update_vectors_op(vectors: dict[PointKey, Vector], vector_name: str, position: int) -> Op:
    """The Op of a re-embed event once its texts are embedded."""
    points = {pid: PointData(vectors={vector_name: vec}) for pid, vec in vectors.items()}
    return Op("update_vectors", points=points, sources=[position])


def _dedupe(ids: list[PointKey]) -> list[PointKey]:
    return list(dict.fromkeys(ids))
