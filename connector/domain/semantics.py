"""What each point operation does to a collection, as pure Python over dicts.

This is the connector's model of Qdrant's semantics (checked against Qdrant itself by
``tests/integration/test_semantics_congruence.py``). The verifier uses it to compute what
touched points must look like after a batch; the planner's property test uses it as the
reference that a plan must agree with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from connector.domain.operations import NEEDS_EXISTING_POINT, Op, PointKey, Vector
from connector.errors import ConnectorError


class PointMissing(ConnectorError):
    """An operation named a point that does not exist (Qdrant answers 404)."""

    def __init__(self, point_id: PointKey) -> None:
        super().__init__(f"point {point_id!r} not found")
        self.point_id = point_id


# A dense vector read back over REST stays the numpy array it was decoded into (read-only):
# no Python float per element (connector/qdrant/wires/rest.py, ``state_from_body``).
StoredVector = Vector | npt.NDArray[np.float64]


@dataclass
class PointState:
    payload: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, StoredVector] = field(default_factory=dict)


State = dict[PointKey, PointState]


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars); several times faster than deepcopy."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


def copy_state(state: State) -> State:
    """Payloads copied deeply; vectors are immutable (tuples, Sparse, read-only arrays), so their dicts shallowly."""
    return {pid: PointState(copy_json(p.payload), dict(p.vectors)) for pid, p in state.items()}
FilterMatcher = Callable[[dict[str, Any], PointKey, PointState], bool]


def merge_payload(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Qdrant's merge: each key is assigned; a null value removes the key."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = copy_json(value)


def set_payload_at(payload: dict[str, Any], patch: dict[str, Any], path: str | None) -> None:
    """set_payload with an optional dotted ``key``: walk (creating objects), then merge."""
    target = payload
    if path:
        for part in path.split("."):
            child = target.get(part)
            if not isinstance(child, dict):
                child = {}
                target[part] = child
            target = child
    merge_payload(target, patch)


def delete_payload_path(payload: dict[str, Any], path: str) -> None:
    """Remove the value at a dotted path; a path that does not resolve is a no-op."""
    parts = path.split(".")
    target: Any = payload
    for part in parts[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
        if target is None:
            return
    if isinstance(target, dict):
        target.pop(parts[-1], None)


def text_at(payload: dict[str, Any] | None, path: str) -> str | None:
    """The non-empty string at a dotted payload path, else None (re-embeds read texts with it)."""
    value: Any = payload or {}
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def selected_ids(state: State, op: Op, matcher: FilterMatcher | None) -> list[PointKey]:
    if op.filter is None:
        return op.point_ids()
    if matcher is None:
        raise ValueError("a filter-addressed op needs a filter matcher")
    return [pid for pid, point in state.items() if matcher(op.filter, pid, point)]


def apply_op(state: State, op: Op, matcher: FilterMatcher | None = None) -> None:
    """Apply one op to ``state`` in place.

    Like Qdrant, an op that names missing points still changes every point that exists and
    then raises :class:`PointMissing` for the first missing one.
    """
    ids = selected_ids(state, op, matcher)
    if op.kind == "upsert":
        assert op.points is not None
        for pid, data in op.points.items():
            state[pid] = PointState(payload=copy_json(data.payload or {}), vectors=dict(data.vectors))
        return
    if op.kind == "delete":
        for pid in ids:
            state.pop(pid, None)
        return
    missing: PointKey | None = None
    for pid in ids:
        point = state.get(pid)
        if point is None:
            missing = pid if missing is None else missing
            continue
        _apply_to_point(point, pid, op)
    if missing is not None and op.kind in NEEDS_EXISTING_POINT:
        raise PointMissing(missing)


def _apply_to_point(point: PointState, pid: PointKey, op: Op) -> None:
    if op.kind == "set_payload":
        set_payload_at(point.payload, op.payload or {}, op.key)
    elif op.kind == "overwrite_payload":
        point.payload = copy_json(op.payload or {})
    elif op.kind == "delete_payload":
        for path in op.keys or ():
            delete_payload_path(point.payload, path)
    elif op.kind == "clear_payload":
        point.payload = {}
    elif op.kind == "update_vectors":
        assert op.points is not None
        point.vectors.update(op.points[pid].vectors)
    elif op.kind == "delete_vectors":
        for name in op.vector_names or ():
            point.vectors.pop(name, None)
    else:  # pragma: no cover - guarded by OpKind
        raise ValueError(f"unknown op kind {op.kind}")


def apply_all(state: State, ops: list[Op], matcher: FilterMatcher | None = None) -> list[tuple[Op, PointMissing]]:
    """Apply ops one by one; an op that fails is reported and the rest go on."""
    failures = []
    for op in ops:
        try:
            apply_op(state, op, matcher)
        except PointMissing as exc:
            failures.append((op, exc))
    return failures
