"""Read-back verification: what the touched points must be now, and whether they are.

The expectation is the state read before the batch with the applied ops replayed on it by
:mod:`connector.domain.semantics`; the comparison is pure. Only what the batch touched is checked:
existence, the whole payload, and the vectors it wrote or deleted. A concurrent writer to the
same points shows up as a mismatch, which is what an audit wants to know.
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
import simdjson
from qdrant_client import grpc
from qdrant_client import models as qm

from connector.domain.changes import normalize_id
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


def _state_vectors(raw: Any) -> dict[str, StoredVector]:
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
                                                vectors=_state_vectors(record.vector))
            for record in records}


def state_from_json(records: Iterable[Mapping[str, Any]]) -> State:
    """The same from the REST JSON of the records (``result`` of ``POST /collections/{name}/points``),
    without building qdrant-client's models (connector/qdrant/reads.py, ``retrieve_rest_chunked``)."""
    return {normalize_id(record["id"]): PointState(payload=dict(record.get("payload") or {}),
                                                   vectors=_state_vectors(record.get("vector")))
            for record in records}


def state_from_rest(answers: Iterable[bytes | Mapping[str, Any]]) -> State:
    """The points of REST ``retrieve`` answers, each as its bytes (:func:`state_from_rest_body`)
    or decoded (:func:`state_from_json`)."""
    state: State = {}
    for answer in answers:
        state.update(state_from_rest_body(answer) if isinstance(answer, bytes) else state_from_json(answer["result"]))
    return state


class _Parsers:
    """One simdjson parser, reused (its buffers sized to the largest answer so far); a new one
    when a document of the last parse is still referenced (a traceback may hold one)."""

    parser = simdjson.Parser()

    @classmethod
    def parse(cls, body: bytes) -> Any:
        try:
            return cls.parser.parse(body)
        except RuntimeError:  # "Tried to re-use a parser while ... objects still exist"
            cls.parser = simdjson.Parser()
            return cls.parser.parse(body)


def state_from_rest_body(body: bytes) -> State:
    """:func:`state_from_json` from the answer's bytes, parsed by simdjson: each dense vector
    goes from the JSON text into a numpy array without a Python float per element. A read-back
    of 500 384-d points (2.3 MB) is 192,000 floats: ~21 ms a window through orjson and Python
    floats, ~8 ms this way. Payloads and sparse vectors are Python objects as before."""
    document = _Parsers.parse(body)
    try:
        return {normalize_id(record["id"]): PointState(payload=_simd_payload(record.get("payload")),
                                                       vectors=_simd_vectors(record.get("vector")))
                for record in document["result"]}
    finally:
        del document  # the parser is reused only once nothing refers to its last document


def _simd_payload(payload: Any) -> dict[str, Any]:
    return payload.as_dict() if isinstance(payload, simdjson.Object) else {}


def _simd_vectors(raw: Any) -> dict[str, StoredVector]:
    """As :func:`_state_vectors` reads the same JSON."""
    vectors: dict[str, StoredVector] = {}
    if isinstance(raw, simdjson.Array):
        if len(raw) and isinstance(raw.at_pointer("/0"), simdjson.Array):  # a multivector: its lists
            lists: list[Any] = raw.as_list()
            vectors[DEFAULT_VECTOR] = tuple(lists)
        else:
            vectors[DEFAULT_VECTOR] = _dense_array(raw)
    elif isinstance(raw, simdjson.Object):
        for name in raw.keys():  # noqa: SIM118 - items() would unbox each value into Python lists
            value = raw[name]
            if isinstance(value, simdjson.Object):
                sparse: dict[str, Any] = value.as_dict()
                vectors[name] = Sparse(tuple(sparse["indices"]), tuple(sparse["values"]))
            elif (isinstance(value, simdjson.Array) and len(value)
                  and isinstance(value.at_pointer("/0"), (int, float))):
                vectors[name] = _dense_array(value)
    return vectors


def _dense_array(array: simdjson.Array) -> StoredVector:
    """A JSON array of numbers as float64, read-only; its floats as a tuple if it holds anything else."""
    try:
        return np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
    except TypeError:  # not numbers only (a server never sends that): what state_from_json would make
        values: list[Any] = array.as_list()
        return tuple(values)


def state_from_grpc(points: Iterable[grpc.RetrievedPoint]) -> State:
    """The same from the points of a gRPC ``Get`` answer, without qdrant-client's conversion to
    models (which reads each payload value through ``MessageToDict``): connector/qdrant/reads.py,
    ``retrieve_grpc_chunked``."""
    return {_grpc_id(point.id): PointState(payload={k: _grpc_value(v) for k, v in point.payload.items()},
                                           vectors=_grpc_vectors(point.vectors) if point.HasField("vectors") else {})
            for point in points}


def _grpc_id(pid: grpc.PointId) -> PointKey:
    return pid.num if pid.WhichOneof("point_id_options") == "num" else normalize_id(pid.uuid)


def _grpc_value(value: grpc.Value) -> Any:
    """A payload value as qdrant-client's ``value_to_json`` gives it: integers as int, doubles as float."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {k: _grpc_value(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_grpc_value(v) for v in value.list_value.values]
    if kind == "null_value":
        return None
    if kind is None:
        raise ValueError("a payload value without a kind")
    return getattr(value, kind)


def _grpc_vectors(raw: grpc.VectorsOutput) -> dict[str, StoredVector]:
    """As :func:`_state_vectors` reads the models of these: the unnamed vector dense (or a
    multivector, as its lists), named ones dense or sparse; named multivectors are not compared."""
    if raw.WhichOneof("vectors_options") == "vector":
        kind, value = _grpc_vector(raw.vector)
        return {DEFAULT_VECTOR: value} if kind in ("dense", "multi_dense") else {}
    vectors: dict[str, StoredVector] = {}
    for name, output in raw.vectors.vectors.items():
        kind, value = _grpc_vector(output)
        if kind == "sparse" or (kind == "dense" and len(value)):
            vectors[name] = value
    return vectors


def _grpc_vector(output: grpc.VectorOutput) -> tuple[str, Any]:
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
