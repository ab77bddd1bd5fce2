"""How large a request is, and how to cut a list of ops into requests a server accepts. Pure.

A Qdrant server refuses a REST body above ``service.max_request_size_mb`` (32 MiB by
default), a proxy in front of it may refuse less (413), strict mode caps the points of one
update ("upsert limit"), and the write rate limiter refuses a request that costs more tokens
(one per point) than its bucket holds. None of these is an event's fault, so requests are cut
by their estimated encoded size and point count before they are sent, and cut further when a
server still refuses one as too large (:func:`halve`).

Cutting keeps the effect: the parts go out in order, and every id-addressed op is an
assignment per point, so ``set_payload`` on ``[a, b, c]`` equals ``set_payload`` on ``[a, b]``
then on ``[c]``. A filter-addressed op cannot be cut (it is always sent alone anyway).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

from connector.domain.operations import Op, PointData, Sparse

# A float as qdrant-client writes it to JSON is up to ~24 characters ("-0.012345678918063641,");
# overestimating keeps the estimate on the safe side of the server's limit.
FLOAT_BYTES = 24
ID_BYTES = 40  # a quoted UUID and a comma
OP_OVERHEAD = 64


def _payload_bytes(payload: object) -> int:
    return len(json.dumps(payload, separators=(",", ":"), default=str)) if payload else 2


def _point_bytes(point: PointData) -> int:
    size = ID_BYTES + _payload_bytes(point.payload)
    for name, vector in point.vectors.items():
        values = len(vector.values) * 2 if isinstance(vector, Sparse) else len(vector)
        size += len(name) + 8 + values * FLOAT_BYTES
    return size


def estimated_bytes(op: Op) -> int:
    """An upper estimate of the op's size in a REST request body."""
    size = OP_OVERHEAD + _payload_bytes(op.payload) + _payload_bytes(op.filter)
    size += sum(len(k) + 3 for k in (op.keys or ())) + sum(len(n) + 3 for n in (op.vector_names or ()))
    if op.points is not None:
        return size + sum(_point_bytes(p) for p in op.points.values())
    return size + ID_BYTES * len(op.ids or ())


def point_count(op: Op) -> int:
    """Points the op names (a filter op counts as one: what it matches is unknown here)."""
    return len(op.points) if op.points is not None else max(1, len(op.ids or ()))


def halve(op: Op) -> tuple[Op, Op] | None:
    """The op as two ops over the two halves of its points, or None when it names one point
    or is addressed by a filter."""
    if op.points is not None and len(op.points) > 1:
        items = list(op.points.items())
        middle = len(items) // 2
        return replace(op, points=dict(items[:middle])), replace(op, points=dict(items[middle:]))
    if op.filter is None and op.ids is not None and len(op.ids) > 1:
        middle = len(op.ids) // 2
        return replace(op, ids=op.ids[:middle]), replace(op, ids=op.ids[middle:])
    return None


def _fitting(op: Op, max_bytes: int, max_points: int | None) -> Iterator[tuple[Op, int]]:
    """The op and its size, halved until each piece fits (a piece that cannot be halved goes
    as it is: the server decides)."""
    size = estimated_bytes(op)
    too_many = max_points is not None and point_count(op) > max_points
    halves = halve(op) if too_many or size > max_bytes else None
    if halves is None:
        yield op, size
        return
    for half in halves:
        yield from _fitting(half, max_bytes, max_points)


def requests_for(ops: list[Op], max_bytes: int, max_points: int | None = None) -> list[list[Op]]:
    """``ops`` in order, cut into requests of at most ``max_bytes`` (estimated) and
    ``max_points`` each; a request holds at least one op."""
    requests: list[list[Op]] = []
    current: list[Op] = []
    size = points = 0
    for whole in ops:
        for op, op_size in _fitting(whole, max_bytes, max_points):
            op_points = point_count(op)
            over_points = max_points is not None and points + op_points > max_points
            if current and (size + op_size > max_bytes or over_points):
                requests.append(current)
                current, size, points = [], 0, 0
            current.append(op)
            size += op_size
            points += op_points
    if current:
        requests.append(current)
    return requests
