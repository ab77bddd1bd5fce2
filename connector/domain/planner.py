"""Window of operations -> ordered, coalesced plan. Pure: no IO.

Contract: applying ``plan(ops)`` in order has exactly the effect of applying ``ops`` one by
one in order (the window's offset order). ``tests/unit/test_planner_property.py`` checks it
with hypothesis against :mod:`connector.domain.semantics`.

Why coalescing is safe: an op may move back to merge into an earlier op of the same kind and
parameters only if no op in between touches any of its points and no filter-addressed op is
in between (a filter may match any point). Moving an op past ops on other points does not
change their effect, and two equal payload ops, or two vector/upsert ops on the same point
with nothing in between, combine into one without a change of effect.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from connector.domain.operations import NEEDS_EXISTING_POINT, Op, PointData, PointKey


def plan(ops: list[Op]) -> list[Op]:
    """Coalesce ``ops`` (in window order) into as few ops as the contract allows."""
    out: list[Op] = []
    last_touch: dict[PointKey, int] = {}
    latest_by_key: dict[tuple[object, ...], int] = {}
    barrier = -1  # index of the latest filter-addressed op in ``out``
    for op in ops:
        if op.by_filter:
            out.append(_fresh(op))
            barrier = len(out) - 1
            continue
        ids = op.point_ids()
        key = op.merge_key()
        target = latest_by_key.get(key)
        if target is not None and target > barrier and all(last_touch.get(p, -1) <= target for p in ids):
            _merge_into(out[target], op)
        else:
            out.append(_fresh(op))
            target = len(out) - 1
            latest_by_key[key] = target
        for p in ids:
            last_touch[p] = target
    return out


def _fresh(op: Op) -> Op:
    """A planned op that owns its containers and remembers the op it came from."""
    points = {pid: PointData(dict(d.vectors), d.payload) for pid, d in op.points.items()} if op.points else op.points
    return replace(op, ids=list(op.ids) if op.ids else op.ids, points=points, sources=list(op.sources), parts=[op])


def _merge_into(target: Op, op: Op) -> None:
    target.sources.extend(op.sources)
    target.parts.append(op)
    if target.points is not None and op.points is not None:
        for pid, data in op.points.items():
            if target.kind == "upsert":
                # an upsert replaces the whole point: the later one wins
                target.points.pop(pid, None)
                target.points[pid] = PointData(dict(data.vectors), data.payload)
            elif pid in target.points:
                target.points[pid].vectors.update(data.vectors)
            else:
                target.points[pid] = PointData(dict(data.vectors))
    elif target.ids is not None and op.ids is not None:
        seen = set(target.ids)
        target.ids.extend(i for i in op.ids if i not in seen)


@dataclass(frozen=True)
class Screened:
    accepted: list[Op]
    missing: list[tuple[Op, list[PointKey]]]


def ids_to_read(ops: list[Op]) -> list[PointKey]:
    """The ids whose state before the window matters: screening and verification need a point
    only when its first id-addressed op in the window is not an ``upsert`` or a ``delete`` (both
    leave the same point whatever was there). An upsert-only window reads nothing before it."""
    first: dict[PointKey, str] = {}
    for op in ops:
        if not op.by_filter:
            for pid in op.point_ids():
                first.setdefault(pid, op.kind)
    return [pid for pid, kind in first.items() if kind not in ("upsert", "delete")]


def screen_existence(ops: list[Op], existing: set[PointKey]) -> Screened:
    """Drop the ops that name points which will not exist when they run.

    ``existing`` is the set of the window's ids that exist before it. Walking the ops in
    order tracks upserts and deletes, so an op on a point that an earlier op of the same
    window creates is kept. After a filter-addressed delete the existence of every point is
    unknown; ops on unknown points are kept and a failure is caught when the batch is sent.
    This makes each event all-or-nothing: Qdrant would otherwise change the existing points
    of a multi-id op and only then answer 404.
    """
    known: dict[PointKey, bool] = {pid: pid in existing for op in ops for pid in op.point_ids()}
    accepted: list[Op] = []
    missing: list[tuple[Op, list[PointKey]]] = []
    for op in ops:
        if op.by_filter:
            if op.kind == "delete":
                # a point known to exist may be gone now; one known to be missing still is
                known = {pid: False for pid, there in known.items() if not there}
            accepted.append(op)
            continue
        ids = op.point_ids()
        if op.kind in NEEDS_EXISTING_POINT:
            absent = [p for p in ids if known.get(p) is False]
            if absent:
                missing.append((op, absent))
                continue
        accepted.append(op)
        if op.kind == "upsert":
            known.update((p, True) for p in ids)
        elif op.kind == "delete":
            known.update((p, False) for p in ids)
    return Screened(accepted, missing)
