"""The REST wire: batch requests written as JSON straight from the ops, reads decoded from the answer's bytes.

qdrant-client builds a model object per point and operation and then serialises them field by
field: for a window of 500 upserts of 384-d vectors the largest share of the worker's CPU after
embedding. This wire writes the JSON the models would (tests/unit/test_rest_wire.py holds the two
equal over random windows) with orjson and posts it through the client's own REST session
(client_internals.py). A filter-addressed op, whose filter the models normalise, and a payload
orjson cannot write (an integer beyond 64 bits) go as the models' request instead.

Reads take the answer undecoded (:data:`RAW_ANSWER`) and parse it with simdjson, which writes each
dense vector straight into a float64 numpy array: no model per point, no Python float per element
(a read-back of 500 384-d points, 2.3 MB: ~21 ms through orjson and Python floats, ~8 ms this way).

The client's REST session (:func:`use_rest_session`) decodes every answer with orjson and asks
for none compressed; both apply to every REST call of the client, whichever wire it speaks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
import orjson
import simdjson
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.domain.changes import normalize_id
from connector.domain.operations import DEFAULT_VECTOR, Op, PointKey, Sparse, Vector
from connector.domain.semantics import PointState, State, StoredVector
from connector.domain.sharding import Selector
from connector.errors import UpdateNotApplied
from connector.qdrant.wires.base import Selection, ShardTarget, Wire, request_ops, shard_target
from connector.qdrant.wires.client_internals import BatchUpdateAnswer, add_rest_middleware, rest_session
from connector.qdrant.wires.models import ModelsBatch, ModelsWire, stored_vectors

__all__ = ["RAW_ANSWER", "RestWire", "batch_body", "state_from_json", "state_from_rest", "use_rest_session"]

RestAnswer = bytes | Mapping[str, Any]  # a retrieve's answer: its bytes, or decoded by a client of another making

# --- encode ----------------------------------------------------------------------------------


def _shard_key(target: ShardTarget | None) -> Any:
    if target is None or target.fallback is None:
        return None if target is None else target.as_named
    return {"target": target.keys[0], "fallback": target.fallback}


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


def batch_body(ops: list[Op], shard_key: Selector | None = None) -> bytes | None:
    """The body of ``POST /collections/{name}/points/batch`` for ``ops``, or None when one of them
    is filter-addressed or orjson cannot write it (the models' request then)."""
    if any(op.filter is not None for op in ops):
        return None
    shard = _shard_key(shard_target(shard_key))
    operations = [_operation(part, shard) for op in ops for part in request_ops(op)]
    try:
        return orjson.dumps({"operations": operations})
    except (orjson.JSONEncodeError, TypeError):
        return None


# --- decode ----------------------------------------------------------------------------------


def state_from_json(records: Iterable[Mapping[str, Any]]) -> State:
    """The points of a retrieve's decoded JSON (its ``result``) as connector state, without models."""
    return {normalize_id(record["id"]): PointState(payload=dict(record.get("payload") or {}),
                                                   vectors=stored_vectors(record.get("vector")))
            for record in records}


def state_from_rest(answers: Iterable[RestAnswer]) -> State:
    """The points of REST ``retrieve`` answers, each as its bytes (:func:`state_from_body`)
    or decoded (:func:`state_from_json`)."""
    state: State = {}
    for answer in answers:
        state.update(state_from_body(answer) if isinstance(answer, bytes) else state_from_json(answer["result"]))
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


def state_from_body(body: bytes) -> State:
    """:func:`state_from_json` from the answer's bytes, parsed by simdjson: each dense vector goes
    from the JSON text into a numpy array without a Python float per element. Payloads and
    sparse vectors are Python objects as before."""
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
    """As :func:`~connector.qdrant.wires.models.stored_vectors` reads the same JSON."""
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


# --- the session -----------------------------------------------------------------------------

RAW_ANSWER = "qcc.raw_answer"  # a request extension: its 200 answer is handed over undecoded


def orjson_body(response: httpx.Response, **_: Any) -> Any:
    """``response.json()`` as :func:`decode_responses_with_orjson` answers it."""
    return orjson.loads(response.content)


def raw_body(response: httpx.Response, **_: Any) -> bytes:
    """``response.json()`` of a request marked :data:`RAW_ANSWER`: the body's bytes, for a
    decoder that makes no Python object per vector element (:func:`state_from_body`)."""
    return response.content


async def decode_responses_with_orjson(
    request: httpx.Request, call_next: Callable[[httpx.Request], Awaitable[httpx.Response]]
) -> httpx.Response:
    """REST answers decoded by orjson instead of stdlib ``json``: a read-back of 500 384-d points
    is ~2.3 MB of float text, 79 -> 45 ms a window (the client's own parsing included). The
    client reads every answer through ``Response.json``, so that is what is replaced. The two
    decoders differ only on what a server never sends (a key twice in one object, an integer
    beyond 64 bits, NaN); orjson's error is a ``json.JSONDecodeError`` too."""
    response = await call_next(request)
    raw = request.extensions.get(RAW_ANSWER) and response.status_code == 200
    response.json = partial(raw_body if raw else orjson_body, response)  # type: ignore[method-assign]
    return response


async def ask_uncompressed(
    request: httpx.Request, call_next: Callable[[httpx.Request], Awaitable[httpx.Response]]
) -> httpx.Response:
    """No gzip (httpx asks for it, Qdrant obliges): a read-back of 500 384-d points took 44 ms
    with it and 24 without, the server's CPU 22 -> 8 ms and the client's 28 -> 17 ms, over
    loopback. ``QCC_QDRANT_HTTP_COMPRESSION`` asks for it again, for a slow link."""
    request.headers["Accept-Encoding"] = "identity"
    return await call_next(request)


def use_rest_session(client: AsyncQdrantClient, *, compression: bool) -> None:
    """The server client's REST session as the connector uses it: answers decoded by orjson
    (handed over undecoded where a read asks, :data:`RAW_ANSWER`), uncompressed unless asked."""
    add_rest_middleware(client, decode_responses_with_orjson)
    if not compression:
        add_rest_middleware(client, ask_uncompressed)


# --- the wire --------------------------------------------------------------------------------


class RestWire(Wire[bytes | ModelsBatch, RestAnswer]):
    """REST to a server: requests as JSON written from the ops, reads decoded from the answer's bytes."""

    name = "rest"

    def __init__(self, client: AsyncQdrantClient) -> None:
        super().__init__(client)
        self.models = ModelsWire(client)  # what this wire does not write itself

    @staticmethod
    def encode(ops: list[Op], shard_key: Selector | None = None) -> bytes | ModelsBatch:
        body = batch_body(ops, shard_key)
        return ModelsWire.encode(ops, shard_key) if body is None else body

    async def _post(self, path: str, collection: str, body: bytes, query: dict[str, Any], type_: Any,
                    **options: Any) -> Any:
        # The query is written into the address, not passed as ``params``: the client would make a
        # ``timeout`` there its HTTP timeout too, giving up just as the server answers (at 0, at
        # once), and httpx would drop a query in the address for ``params``.
        address = f"/collections/{{collection_name}}/points{path}" + (f"?{urlencode(query)}" if query else "")
        return await rest_session(self.client).request(
            type_=type_, method="POST", url=address, path_params={"collection_name": collection},
            headers={"Content-Type": "application/json"}, content=body, **options)

    async def send(self, collection: str, request: bytes | ModelsBatch, ordering: qm.WriteOrdering, *,
                   timeout: int | None) -> list[qm.UpdateResult]:
        """``POST /collections/{collection}/points/batch?wait=true``: the same request and answer
        as ``client.batch_update_points`` over REST."""
        if isinstance(request, ModelsBatch):
            return await self.models.send(collection, request, ordering, timeout=timeout)
        query = {"wait": "true", "ordering": str(ordering)} | ({} if timeout is None else {"timeout": timeout})
        answer: BatchUpdateAnswer = await self._post("/batch", collection, request, query, BatchUpdateAnswer)
        if answer.result is None:  # never seen: an answer without results cannot say the update was applied
            raise UpdateNotApplied("Qdrant answered a batch update without its results")
        results: list[qm.UpdateResult] = answer.result  # the generated model's own (its name varies by version)
        return results

    async def retrieve(self, collection: str, ids: list[PointKey], *, payload: Selection, vectors: Selection,
                       shard_key: Selector | None, consistency: qm.ReadConsistency | None) -> RestAnswer:
        """``POST /collections/{collection}/points``, the answer's bytes when the client's session is
        the connector's (:func:`use_rest_session`), else its decoded JSON."""
        body: dict[str, Any] = {"ids": ids, "with_payload": payload, "with_vector": vectors}
        if shard_key is not None:
            body["shard_key"] = _shard_key(shard_target(shard_key))
        query = {} if consistency is None else {"consistency": str(consistency)}
        answer: RestAnswer = await self._post("", collection, orjson.dumps(body), query, Any,
                                              extensions={RAW_ANSWER: True})
        return answer

    @staticmethod
    def decode(answers: Iterable[RestAnswer]) -> State:
        return state_from_rest(answers)
