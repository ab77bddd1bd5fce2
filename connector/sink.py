"""Apply a plan to Qdrant: ``batch_update_points(wait=True)`` per collection and window.

Contract:
- A filter-addressed op is sent alone; the id-addressed ops between two of them go as one
  batch (see :func:`split_at_filters` for why).
- A batch is not a transaction. When Qdrant rejects a batch, the sink finds the failing op
  by sending prefixes of the plan (bisection), splits a coalesced op back into its events,
  drops the single event that fails, and sends the rest again. Re-sending is safe because
  every id-addressed op is an assignment: applying an applied prefix again in the same order
  leaves the same state.
- Transient errors (timeouts, refused connections, 5xx, 429) are retried with exponential
  backoff and full jitter, for as long as it takes: the caller does not advance the stream
  meanwhile, so nothing is lost while Qdrant is down.
- The sink never commits anything; the caller confirms and then acknowledges offsets.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from connector import metrics
from connector.errors import (
    ConnectorError,
    PermanentError,
    StorageError,
    TransientError,
)
from connector.failpoints import Failpoints
from connector.operations import DEFAULT_VECTOR, Op, Sparse, Vector

log = logging.getLogger(__name__)


# Local mode persists every write to SQLite in its folder; these mean that folder cannot take it.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EFBIG, errno.EDQUOT, errno.EIO}


def classify(exc: BaseException) -> ConnectorError:
    """Map a qdrant-client, gRPC or network error onto the connector's two kinds."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, sqlite3.Error) or (isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS):
        return StorageError(f"local storage write failed: {type(exc).__name__}: {exc}")
    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code or 0
        text = _response_text(exc)
        if status >= 500 or status in (408, 429):
            return TransientError(f"Qdrant answered {status}: {text}")
        return PermanentError(f"Qdrant answered {status}: {text}")
    if isinstance(exc, (ResponseHandlingException, httpx.TransportError, ConnectionError, TimeoutError, OSError)):
        return TransientError(f"Qdrant unreachable: {type(exc).__name__}: {exc}")
    grpc_error = _classify_grpc(exc)
    if grpc_error is not None:
        return grpc_error
    if isinstance(exc, KeyError):  # local mode: a missing point (a server answers 404)
        return PermanentError(f"point {exc.args[0]!r} not found" if exc.args else "point not found")
    if isinstance(exc, (ValueError, TypeError)):  # local mode validation (sizes, names)
        return PermanentError(str(exc))
    return PermanentError(f"{type(exc).__name__}: {exc}")


def _response_text(exc: UnexpectedResponse) -> str:
    try:
        return str(exc.content.decode("utf-8", "replace"))[:500]
    except Exception:  # pragma: no cover - content missing
        return exc.reason_phrase or ""


def _classify_grpc(exc: BaseException) -> ConnectorError | None:
    try:
        import grpc
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(exc, grpc.RpcError):
        return None
    code = exc.code() if hasattr(exc, "code") else None
    transient = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
                 grpc.StatusCode.INTERNAL, grpc.StatusCode.ABORTED}
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if code in transient:
        return TransientError(f"Qdrant gRPC {code}: {details}")
    return PermanentError(f"Qdrant gRPC {code}: {details}")


# --- Op -> qdrant-client models -------------------------------------------------------------


def _vector_model(vector: Vector) -> Any:
    if isinstance(vector, Sparse):
        return qm.SparseVector(indices=list(vector.indices), values=list(vector.values))
    return list(vector)


def _vector_struct(vectors: dict[str, Vector]) -> Any:
    if set(vectors) == {DEFAULT_VECTOR}:
        return _vector_model(vectors[DEFAULT_VECTOR])
    return {name: _vector_model(v) for name, v in vectors.items()}


def _selector_fields(op: Op) -> dict[str, Any]:
    if op.filter is not None:
        return {"filter": qm.Filter.model_validate(op.filter)}
    return {"points": list(op.ids or [])}


def to_qdrant(op: Op) -> qm.UpdateOperation:
    """The qdrant-client model of one op (the same request shape for local mode and server)."""
    if op.kind == "upsert":
        assert op.points is not None
        points = [
            qm.PointStruct(id=pid, vector=_vector_struct(d.vectors) if d.vectors else {}, payload=d.payload or {})
            for pid, d in op.points.items()
        ]
        return qm.UpsertOperation(upsert=qm.PointsList(points=points))
    if op.kind == "update_vectors":
        assert op.points is not None
        pvs = [qm.PointVectors(id=pid, vector=_vector_struct(d.vectors)) for pid, d in op.points.items()]
        return qm.UpdateVectorsOperation(update_vectors=qm.UpdateVectors(points=pvs))
    if op.kind == "delete":
        selector: Any = (
            qm.FilterSelector(filter=qm.Filter.model_validate(op.filter))
            if op.filter is not None
            else qm.PointIdsList(points=list(op.ids or []))
        )
        return qm.DeleteOperation(delete=selector)
    if op.kind == "set_payload":
        return qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=op.payload or {}, key=op.key, **_selector_fields(op)))
    if op.kind == "overwrite_payload":
        return qm.OverwritePayloadOperation(overwrite_payload=qm.SetPayload(payload=op.payload or {}, **_selector_fields(op)))
    if op.kind == "delete_payload":
        return qm.DeletePayloadOperation(delete_payload=qm.DeletePayload(keys=list(op.keys or ()), **_selector_fields(op)))
    if op.kind == "clear_payload":
        selector = (
            qm.FilterSelector(filter=qm.Filter.model_validate(op.filter))
            if op.filter is not None
            else qm.PointIdsList(points=list(op.ids or []))
        )
        return qm.ClearPayloadOperation(clear_payload=selector)
    if op.kind == "delete_vectors":
        return qm.DeleteVectorsOperation(
            delete_vectors=qm.DeleteVectors(vector=list(op.vector_names or ()), **_selector_fields(op))
        )
    raise ValueError(f"unknown op kind {op.kind}")


# --- isolation of failing ops ---------------------------------------------------------------


@dataclass(frozen=True)
class FailedEvent:
    position: int
    error: PermanentError


@dataclass(frozen=True)
class ApplyResult:
    applied: list[Op]
    failed: list[FailedEvent]
    requests: int


SendOps = Callable[[list[Op]], Awaitable[None]]


async def apply_isolating(ops: list[Op], send: SendOps) -> ApplyResult:
    """Send ``ops``; on a permanent error, find and drop the failing event, send the rest.

    ``send`` raises :class:`PermanentError` when the destination rejects the ops; any
    :class:`TransientError` propagates (the caller retries the whole call, which is safe).
    """
    ops = list(ops)
    failed: list[FailedEvent] = []
    requests = 0
    while ops:
        requests += 1
        try:
            await send(ops)
            break
        except PermanentError as whole_error:
            index, error, tries = await _first_failing(ops, send, whole_error)
            requests += tries
            bad = ops[index]
            if len(bad.parts) > 1:
                ops[index : index + 1] = _split(bad)
                continue
            failed.append(FailedEvent(bad.sources[0], error))
            del ops[index]
    return ApplyResult(applied=ops, failed=failed, requests=requests)


def _split(op: Op) -> list[Op]:
    """A coalesced op back as its single-event ops, each still able to fail alone."""
    return [part if part.parts else _with_self_part(part) for part in op.parts]


def _with_self_part(op: Op) -> Op:
    op.parts = [op]
    return op


async def _first_failing(ops: list[Op], send: SendOps, whole_error: PermanentError) -> tuple[int, PermanentError, int]:
    """Bisect for the shortest failing prefix; its last op is the one that fails."""
    ok, failing, error, tries = 0, len(ops), whole_error, 0
    while failing - ok > 1:
        mid = (ok + failing) // 2
        tries += 1
        try:
            await send(ops[:mid])
            ok = mid
        except PermanentError as exc:
            failing, error = mid, exc
    return failing - 1, error, tries


# --- the sink -------------------------------------------------------------------------------


class Backoff:
    """Exponential backoff with full jitter: sleep uniform(0, min(cap, base * 2**n))."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial, self.maximum, self.attempt = initial, maximum, 0

    def next_delay(self) -> float:
        delay = random.uniform(0, min(self.maximum, self.initial * 2**self.attempt))
        self.attempt += 1
        return max(delay, self.initial / 2)


class QdrantSink:
    """Sends plans to one Qdrant (server or local mode), retrying transient errors forever."""

    def __init__(
        self,
        client: AsyncQdrantClient,
        *,
        retry_initial: float = 0.2,
        retry_max: float = 30.0,
        failpoints: Failpoints | None = None,
        on_retry: Callable[[str, TransientError], None] | None = None,
    ) -> None:
        self.client = client
        self._retry_initial, self._retry_max = retry_initial, retry_max
        self._failpoints = failpoints or Failpoints(None)
        self._on_retry = on_retry
        self.failing = False  # True while a call is in transient failure (readiness reads it)

    async def call(self, what: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run one Qdrant call; transient errors are retried with backoff, others raised mapped."""
        backoff = Backoff(self._retry_initial, self._retry_max)
        name = metrics.call_name(what)
        while True:
            started = time.monotonic()
            try:
                fault = self._failpoints.qdrant_fault()
                if fault is not None:
                    raise fault
                result = await fn()
                metrics.QDRANT_SECONDS.labels(name).observe(time.monotonic() - started)
                self.failing = False
                return result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = classify(exc)
                if not error.retriable:
                    raise error from exc
                assert isinstance(error, TransientError)
                self.failing = True
                delay = backoff.next_delay()
                log.warning("%s failed (%s); retry %d in %.2fs", what, error, backoff.attempt, delay)
                metrics.RETRIES.labels(name).inc()
                if self._on_retry is not None:
                    self._on_retry(what, error)
                await asyncio.sleep(delay)

    async def apply(self, collection: str, ops: list[Op]) -> ApplyResult:
        """Apply a plan with ``wait=True``; see the module docstring for the contract."""

        async def send(batch: list[Op]) -> None:
            operations = [to_qdrant(op) for op in batch]
            await self.call(
                f"batch_update_points({collection}, {len(operations)} ops)",
                lambda: self.client.batch_update_points(collection, operations, wait=True),
            )

        applied: list[Op] = []
        failed: list[FailedEvent] = []
        requests = 0
        for run in split_at_filters(ops):
            result = await apply_isolating(run, send)
            applied += result.applied
            failed += result.failed
            requests += result.requests
        return ApplyResult(applied=applied, failed=failed, requests=requests)


def split_at_filters(ops: list[Op]) -> list[list[Op]]:
    """Runs of id-addressed ops, and each filter-addressed op alone, in order.

    Isolation re-sends prefixes, and a retry re-sends a whole request: safe for id-addressed
    ops (assignments), and for one filter-addressed op alone (it assigns constants to the
    points it matches, so twice is once), but not for a filter op followed by ops it could
    match: [delete where a=1, set a=1 on X] sent twice deletes X. So a filter op never shares
    a request.
    """
    runs: list[list[Op]] = []
    for op in ops:
        if op.by_filter or not runs or runs[-1][0].by_filter:
            runs.append([op])
        else:
            runs[-1].append(op)
    return runs
