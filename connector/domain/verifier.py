"""Read-back verification: what the touched points must be now, and whether they are.

The expectation is the state read before the batch with the applied ops replayed on it by
:mod:`connector.domain.semantics`; the comparison is pure. Only what the batch touched is checked:
existence, the whole payload, and the vectors it wrote or deleted. A concurrent writer to the
same points shows up as a mismatch, which is what an audit wants to know. What was read comes
decoded by the client's wire (connector/qdrant/wires/); nothing here knows a wire format.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeGuard

import numpy as np
import numpy.typing as npt

from connector.domain.operations import DEFAULT_VECTOR, Op, PointKey, Sparse
from connector.domain.records import Mismatch, VerificationOutcome
from connector.domain.semantics import PointState, State, StoredVector, apply_all, copy_state

MAX_LISTED_MISMATCHES = 20
MAX_LISTED_VALUE_BYTES = 1024  # a listed expected/actual larger than this is shown by size and digest
TOLERANCE = 1e-3


def touched_vectors(ops: Iterable[Op]) -> dict[PointKey, set[str]]:
    """Per point, the vector names the ops wrote or deleted."""
    touched: dict[PointKey, set[str]] = {}
    for op in ops:
        if op.points is not None:
            for pid, data in op.points.items():
                touched.setdefault(pid, set()).update(data.vectors)
        elif op.kind == "delete_vectors":
            for pid in op.ids or []:
                touched.setdefault(pid, set()).update(op.vector_names or ())
    return touched


def vectors_to_read(touched: dict[PointKey, set[str]]) -> bool | list[str]:
    """Which vectors a read-back fetches: only the names the ops wrote or deleted, since only
    those are compared. None for a payload-only window (on a collection of 384-d points, a
    read-back of all vectors was 2.3 MB a window for nothing); all when the unnamed vector is
    among them (a selector cannot name it)."""
    names = set().union(*touched.values())
    if not names:
        return False
    return True if DEFAULT_VECTOR in names else sorted(names)


def expected_state(before: State, ops: list[Op]) -> State:
    state = copy_state(before)
    apply_all(state, ops)
    return state


def _dense_rows_equal(expected: Sequence[StoredVector], actual: Sequence[StoredVector],
                      cosine: bool) -> npt.NDArray[np.bool_]:
    """Row by row, for dense vectors of one length: element-wise ``|a - e| <= TOLERANCE + 1e-9 * |e|``
    (numpy's isclose), after scaling ``expected`` to unit length where Qdrant stores it normalised.
    A window's vectors in one numpy pass: a window reads back hundreds of 384-d vectors, and a
    pass per vector cost ~34 µs a point (a loop in Python, before that, a tenth of the worker)."""
    e = np.array(expected, dtype=np.float64)
    a = np.array(actual, dtype=np.float64)
    if cosine:
        norms = np.sqrt(np.einsum("ij,ij->i", e, e))
        e = e / np.where(norms > 0, norms, 1.0)[:, None]
    # np.isclose(a, e, rtol=1e-9, atol=TOLERANCE) spelled out: the same test at 60% of its cost
    return np.asarray((np.abs(a - e) <= TOLERANCE + 1e-9 * np.abs(e)).all(axis=1))


def _dense(vector: StoredVector | None) -> TypeGuard[tuple[float, ...] | npt.NDArray[np.float64]]:
    """A dense vector (not sparse, not a multivector's lists)."""
    if vector is None or isinstance(vector, Sparse):
        return False
    return isinstance(vector, np.ndarray) or not (len(vector) and isinstance(vector[0], list))


def vectors_equal(expected: StoredVector, actual: StoredVector, cosine: bool) -> bool:
    if isinstance(expected, Sparse) or isinstance(actual, Sparse):
        if not (isinstance(expected, Sparse) and isinstance(actual, Sparse)):
            return False
        e = dict(zip(expected.indices, expected.values, strict=True))
        a = dict(zip(actual.indices, actual.values, strict=True))
        return e.keys() == a.keys() and all(math.isclose(e[k], a[k], abs_tol=TOLERANCE) for k in e)
    return len(expected) == len(actual) and bool(_dense_rows_equal([expected], [actual], cosine)[0])


DenseVerdicts = dict[tuple[PointKey, str], bool]


def _dense_verdicts(expected: State, actual: State, ids: Iterable[PointKey],
                    vectors_touched: dict[PointKey, set[str]], cosine_names: set[str]) -> DenseVerdicts:
    """Whether each touched dense vector is as expected, by (point, name), in one pass per
    length and distance; the pairs it leaves out (sparse, missing, another length) are compared
    one by one."""
    groups: dict[tuple[int, bool], list[tuple[tuple[PointKey, str], StoredVector, StoredVector]]] = {}
    for pid in ids:
        want, got = expected.get(pid), actual.get(pid)
        if want is None or got is None:
            continue
        for name in vectors_touched.get(pid, ()):
            w, g = want.vectors.get(name), got.vectors.get(name)
            if _dense(w) and _dense(g) and len(w) == len(g):
                groups.setdefault((len(w), name in cosine_names), []).append(((pid, name), w, g))
    verdicts: DenseVerdicts = {}
    for (_, cosine), members in groups.items():
        rows = _dense_rows_equal([w for _, w, _ in members], [g for _, _, g in members], cosine)
        verdicts.update(zip((key for key, _, _ in members), rows.tolist(), strict=True))
    return verdicts


def compare(
    expected: State,
    actual: State,
    ids: Iterable[PointKey],
    vectors_touched: dict[PointKey, set[str]],
    cosine_names: set[str],
    rejected_ids: frozenset[PointKey] | set[PointKey] = frozenset(),
    *,
    payload: bool = True,
) -> VerificationOutcome:
    """Compare the touched points; status is 'verified' only if every check holds.
    ``payload=False`` leaves payloads out (a re-embed window: the patch stream owns them).

    A difference on a point of ``rejected_ids`` (named by a dead-lettered event) is what that
    event did in part before Qdrant refused it, not a mismatch: it is listed apart, and the
    status says 'partial'.
    """
    ids = list(ids)
    dense = _dense_verdicts(expected, actual, ids, vectors_touched, cosine_names)
    mismatches: list[Mismatch] = []
    changed_by_rejected: list[Mismatch] = []
    checked = 0
    for pid in ids:
        checked += 1
        differences = _differences(pid, expected.get(pid), actual.get(pid), vectors_touched, cosine_names, payload,
                                   dense)
        (changed_by_rejected if pid in rejected_ids else mismatches).extend(differences)
    status: Literal["mismatch", "partial", "verified"] = (
        "mismatch" if mismatches else "partial" if changed_by_rejected else "verified"
    )
    return VerificationOutcome(
        status=status,
        checked_points=checked,
        mismatches=_listed(mismatches),
        mismatch_count=len(mismatches),
        changed_by_rejected=_listed(changed_by_rejected),
        changed_by_rejected_count=len(changed_by_rejected),
    )


def _listed(mismatches: list[Mismatch]) -> list[Mismatch]:
    """The first few, each value bounded: a verification event must stay small (publishing.py)."""
    return [m.model_copy(update={"expected": _bounded(m.expected), "actual": _bounded(m.actual)})
            for m in mismatches[:MAX_LISTED_MISMATCHES]]


def _bounded(value: Any) -> Any:
    text = json.dumps(value, default=str, separators=(",", ":"))
    if len(text) <= MAX_LISTED_VALUE_BYTES:
        return value
    return {"bytes": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}


FLOAT_ULPS = 1e-12  # relative: Qdrant's JSON parser may round a 17-digit float to its neighbour


def json_equal(a: Any, b: Any) -> bool:
    """Payload values equal as Qdrant keeps them: numbers (not booleans) equal within a relative
    ``FLOAT_ULPS`` (a server answered 0.9872592010330128 for a payload's 0.9872592010330129: its
    JSON number parser is not correctly rounded in the last digit), all else exactly."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(a, b, rel_tol=FLOAT_ULPS, abs_tol=0.0)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(value, b[key]) for key, value in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _differences(pid: PointKey, want: PointState | None, got: PointState | None,
                 vectors_touched: dict[PointKey, set[str]], cosine_names: set[str],
                 payload: bool, dense: DenseVerdicts) -> list[Mismatch]:
    if (want is None) != (got is None):
        return [Mismatch(id=pid, field="exists", expected=want is not None, actual=got is not None)]
    if want is None or got is None:
        return []
    differences = []
    if payload and want.payload != got.payload and not json_equal(want.payload, got.payload):
        differences.append(Mismatch(id=pid, field="payload", expected=want.payload, actual=got.payload))
    for name in sorted(vectors_touched.get(pid, ())):
        w, g = want.vectors.get(name), got.vectors.get(name)
        same = dense.get((pid, name))
        if same is None:
            same = (w is None and g is None) or (w is not None and g is not None
                                                 and vectors_equal(w, g, name in cosine_names))
        if not same:
            differences.append(Mismatch(id=pid, field=f"vector:{name}", expected=_show(w), actual=_show(g)))
    return differences


def _show(vector: StoredVector | None) -> Any:
    if vector is None:
        return None
    if isinstance(vector, Sparse):
        return {"indices": list(vector.indices)[:8], "values": list(vector.values)[:8]}
    return list(vector)[:8]


@dataclass(frozen=True)
class FilterMatch:
    """What a filter-addressed op matched when it was applied: every matched id, in scroll
    order, and the state (payload) of the first of them, taken right before the op was sent."""

    ids: list[PointKey]
    states: State


def resolve_filters(before: State, applied: list[Op], matches: Mapping[int, FilterMatch]) -> tuple[State, list[Op]]:
    """The window as id-addressed ops, for the expectation: each applied filter op becomes the
    same op on exactly the ids it matched (``matches`` by ``id(op)``; an op that matched nothing
    drops out). ``before`` is extended by the captured states of matched points no earlier op of
    the window touched (their state at the match is their state before the window); for the
    others ``before`` (or an earlier upsert or delete) already holds what the replay needs."""
    extended = dict(before)
    resolved: list[Op] = []
    seen: set[PointKey] = set()
    for op in applied:
        match = matches.get(id(op)) if op.by_filter else None
        if not op.by_filter:
            resolved.append(op)
            seen.update(op.point_ids())
            continue
        if match is None:
            raise ValueError(f"a {op.kind} by filter was applied without its match")
        for pid, state in match.states.items():
            if pid not in seen:
                extended.setdefault(pid, state)
        if match.ids:
            resolved.append(replace(op, filter=None, ids=list(match.ids)))
        seen.update(match.ids)
    return extended, resolved
