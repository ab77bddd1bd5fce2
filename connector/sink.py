"""Apply a plan to Qdrant: ``batch_update_points(wait=True)`` per collection and window.

Contract:
- A filter-addressed op is sent alone; the id-addressed ops between two of them go as one
  batch (see :func:`split_at_filters` for why).
- A batch is not a transaction. When Qdrant rejects a batch, the sink finds the failing op
  by sending prefixes of the plan (bisection), splits a coalesced op back into its events,
  drops the single event that fails, and sends the rest again. Re-sending is safe because
  every id-addressed op is an assignment: applying an applied prefix again in the same order
  leaves the same state.
- Transient errors (timeouts, refused connections, 5xx, gRPC UNAVAILABLE) are retried with
  exponential backoff and full jitter, for as long as it takes: the caller does not advance
  the stream meanwhile, so nothing is lost while Qdrant is down. A rate limit (429) waits as
  long as the server says; a refused API key (401/403) is retried the same way and reported
  not-ready: neither is an event's fault, so nothing is dead-lettered or committed past them.
- Requests are cut by estimated size and point count (:mod:`connector.request_size`); one
  refused as too large (413, the body limit, strict mode's per-request limits, the rate
  limiter's capacity) is halved and sent in parts, never blamed on an event.
- The sink never commits anything; the caller confirms and then acknowledges offsets.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from connector import metrics
from connector.errors import (
    AccessDenied,
    CollectionMissing,
    ConnectorError,
    PermanentError,
    RateLimited,
    RequestTooLarge,
    StorageError,
    TransientError,
    WindowAbandoned,
)
from connector.failpoints import Failpoints
from connector.operations import DEFAULT_VECTOR, Op, Sparse, Vector
from connector.request_size import halve, point_count, requests_for

log = logging.getLogger(__name__)
T = TypeVar("T")


# Local mode persists every write to SQLite in its folder; these mean that folder cannot take it.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EFBIG, errno.EDQUOT, errno.EIO}


# Qdrant's words for a request that is too large as a whole (REST body limit, strict mode's
# per-request limits, the rate limiter's capacity, gRPC's message size): split it, blame no event.
TOO_LARGE_MARKERS = ("is larger than allowed", "larger than rate limiter capacity", "Help: Reduce the",
                     "larger than max", "Received message larger")


# A server's 404 "Collection `x` doesn't exist!", local mode's "Collection x not found".
COLLECTION_MISSING = re.compile(r"Collection \S+ (doesn't exist|not found)")


def classify(exc: BaseException) -> ConnectorError:
    """Map a qdrant-client, gRPC or network error onto the connector's kinds (docs/design.md,
    "What a server refuses"): transient (retry), rate limited (wait as told), access denied
    (retry, not ready), too large (split), permanent (an event's fault, found by bisection)."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, sqlite3.Error) or (isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS):
        return StorageError(f"local storage write failed: {type(exc).__name__}: {exc}")
    if isinstance(exc, ResourceExhaustedResponse):  # 429 / RESOURCE_EXHAUSTED with a Retry-After
        return RateLimited(f"Qdrant rate limit: {exc}", retry_after=float(exc.retry_after_s))
    if isinstance(exc, UnexpectedResponse):
        return _classify_status(exc.status_code or 0, _response_text(exc), exc.headers.get("Retry-After"))
    if isinstance(exc, (ResponseHandlingException, httpx.TransportError, ConnectionError, TimeoutError, OSError)):
        return TransientError(f"Qdrant unreachable: {type(exc).__name__}: {exc}")
    grpc_error = _classify_grpc(exc)
    if grpc_error is not None:
        return grpc_error
    if isinstance(exc, KeyError):  # local mode: a missing point (a server answers 404)
        return PermanentError(f"point {exc.args[0]!r} not found" if exc.args else "point not found")
    if isinstance(exc, ValueError) and COLLECTION_MISSING.search(str(exc)):  # local mode
        return CollectionMissing(str(exc))
    if isinstance(exc, (ValueError, TypeError)):  # local mode validation (sizes, names)
        return PermanentError(str(exc))
    return PermanentError(f"{type(exc).__name__}: {exc}")


def _classify_status(status: int, text: str, retry_after: str | None) -> ConnectorError:
    what = f"Qdrant answered {status}: {text}"
    if status == 413 or (status in (400, 429) and any(m in text for m in TOO_LARGE_MARKERS)):
        return RequestTooLarge(what)
    if status in (401, 403):
        return AccessDenied(f"{what} (check QCC_QDRANT_API_KEY: it must be a key that may write)")
    if status == 429:
        return RateLimited(what, retry_after=_seconds(retry_after))
    if status >= 500 or status == 408:
        return TransientError(what)
    if status == 404 and COLLECTION_MISSING.search(text):
        return CollectionMissing(what)
    return PermanentError(what)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _response_text(exc: UnexpectedResponse) -> str:
    try:
        return str(exc.content.decode("utf-8", "replace"))[:500]
    except Exception:  # noqa: BLE001 - describing an error must not raise another  # pragma: no cover
        return exc.reason_phrase or ""


def _classify_grpc(exc: BaseException) -> ConnectorError | None:
    try:
        import grpc
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(exc, grpc.RpcError):
        return None
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    what = f"Qdrant gRPC {code}: {details}"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if any(m in (details or "") for m in TOO_LARGE_MARKERS):
            return RequestTooLarge(what)
        return RateLimited(what)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return AccessDenied(f"{what} (check QCC_QDRANT_API_KEY: it must be a key that may write)")
    if code == grpc.StatusCode.INVALID_ARGUMENT and any(m in (details or "") for m in TOO_LARGE_MARKERS):
        return RequestTooLarge(what)
    # Dropped connections (UNAVAILABLE, CANCELLED, UNKNOWN "Stream removed"), deadlines, and
    # FAILED_PRECONDITION (Qdrant's answer while a shard is transferred or storage is locked).
    transient = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
                 grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN,
                 grpc.StatusCode.FAILED_PRECONDITION}
    if code in transient:
        return TransientError(what)
    if code == grpc.StatusCode.NOT_FOUND and COLLECTION_MISSING.search(details or ""):
        return CollectionMissing(what)
    return PermanentError(what)


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
        return qm.SetPayloadOperation(
            set_payload=qm.SetPayload(payload=op.payload or {}, key=op.key, **_selector_fields(op))
        )
    if op.kind == "overwrite_payload":
        return qm.OverwritePayloadOperation(
            overwrite_payload=qm.SetPayload(payload=op.payload or {}, **_selector_fields(op))
        )
    if op.kind == "delete_payload":
        return qm.DeletePayloadOperation(
            delete_payload=qm.DeletePayload(keys=list(op.keys or ()), **_selector_fields(op))
        )
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


def to_requests(op: Op) -> list[qm.UpdateOperation]:
    """The operations the sink sends for one op: :func:`to_qdrant`, except that an id-addressed
    ``set_payload`` with null values becomes a ``delete_payload`` of those keys and a
    ``set_payload`` of the rest. Engines disagree on a null (local mode stores it; a server
    removes the key, but stores it on a point without payload); the connector's meaning, and
    every engine's once split, is "remove the key". A filter-addressed one is sent as it is:
    two ops on one filter can change what the second matches."""
    nulls = [k for k, v in (op.payload or {}).items() if v is None] if op.kind == "set_payload" else []
    if not nulls or op.filter is not None:
        return [to_qdrant(op)]
    paths = [f"{op.key}.{k}" if op.key else k for k in nulls]
    delete = qm.DeletePayloadOperation(delete_payload=qm.DeletePayload(keys=paths, points=list(op.ids or [])))
    rest = {k: v for k, v in (op.payload or {}).items() if v is not None}
    # with a key, the model walks (creating objects) even when nothing is left to set
    return [delete, to_qdrant(replace(op, payload=rest))] if rest or op.key else [delete]


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
        timeout: float | None = None,
        max_request_bytes: int = 16 * 1024 * 1024,
        failpoints: Failpoints | None = None,
        on_retry: Callable[[str, TransientError], None] | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        """``timeout`` bounds each call here as given (qdrant-client rounds its own up to whole
        seconds); ``max_request_bytes`` bounds the estimated body of one batch request;
        ``stopping`` says the worker is shutting down, which ends a retry loop (the caller
        abandons its window, to be replayed). A rebalance waits for the retries instead."""
        self.client = client
        self._retry_initial, self._retry_max = retry_initial, retry_max
        self._timeout = timeout
        self.max_request_bytes = max_request_bytes
        self.max_request_points: int | None = None  # learned from servers that refused a request as too large
        self._failpoints = failpoints or Failpoints(None)
        self._on_retry = on_retry
        self.stopping = stopping
        self.failure: str | None = None  # why the current call is being retried (readiness reads it)

    async def call(self, what: str, fn: Callable[[], Awaitable[T]], *, raise_rate_limit: bool = False) -> T:
        """Run one Qdrant call; transient errors are retried with backoff (or after the wait the
        server asked for), others raised mapped. ``raise_rate_limit`` hands a rate limit to the
        caller instead, after its wait."""
        backoff = Backoff(self._retry_initial, self._retry_max)
        name = metrics.call_name(what)
        while True:
            started = time.monotonic()
            try:
                fault = self._failpoints.qdrant_fault()
                if fault is not None:
                    raise fault
                result = await (asyncio.wait_for(fn(), self._timeout) if self._timeout else fn())
                metrics.QDRANT_SECONDS.labels(name).observe(time.monotonic() - started)
                self.failure = None
                return result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = classify(exc)
                if not error.retriable:
                    raise error from exc
                assert isinstance(error, TransientError)
                self.failure = str(error)
                delay = backoff.next_delay()
                if error.retry_after is not None:  # the server said when: earlier is refused again
                    delay = error.retry_after + random.uniform(0, self._retry_initial)
                level = logging.ERROR if isinstance(error, AccessDenied) else logging.WARNING
                log.log(level, "%s failed (%s); retry %d in %.2fs", what, error, backoff.attempt, delay)
                metrics.RETRIES.labels(name).inc()
                if self._on_retry is not None:
                    self._on_retry(what, error)
                await self._sleep_unless_stopping(delay, what)
                if raise_rate_limit and isinstance(error, RateLimited):
                    raise error from exc

    async def _sleep_unless_stopping(self, delay: float, what: str) -> None:
        """Sleep before a retry; at shutdown, give up the call instead. (Faust waits for the window
        in hand before it stops; a retry loop must not hold it forever.)"""
        deadline = time.monotonic() + delay
        while True:
            if self.stopping():
                raise WindowAbandoned(f"{what}: not retried, the worker is stopping")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.5))

    async def apply(self, collection: str, ops: list[Op]) -> ApplyResult:
        """Apply a plan with ``wait=True``; see the module docstring for the contract."""

        async def send(batch: list[Op]) -> None:
            for request in requests_for(batch, self.max_request_bytes, self.max_request_points):
                await self._send(collection, request)

        applied: list[Op] = []
        failed: list[FailedEvent] = []
        requests = 0
        for run in split_at_filters(ops):
            result = await apply_isolating(run, send)
            applied += result.applied
            failed += result.failed
            requests += result.requests
        return ApplyResult(applied=applied, failed=failed, requests=requests)

    async def _send(self, collection: str, request: list[Op]) -> None:
        """One batch request. Refused as too large, it is halved and both halves sent in order;
        only one point that is too large alone is an event's fault. Rate limited, it is halved
        too after the wait: Qdrant takes the tokens op by op and refuses at the first op it
        cannot pay, after applying the ones before, so re-sending the whole request would spend
        the refilled tokens on that prefix again, every time."""
        operations = [operation for op in request for operation in to_requests(op)]
        points = sum(point_count(op) for op in request)
        try:
            await self.call(
                f"batch_update_points({collection}, {len(operations)} ops)",
                lambda: self.client.batch_update_points(collection, operations, wait=True),
                raise_rate_limit=points > 1,
            )
            return
        except (RequestTooLarge, RateLimited) as exc:
            parts = _halves(request)
            if parts is None:
                if isinstance(exc, RateLimited):  # one point: cannot be cut, the wait is done
                    await self._send(collection, request)
                    return
                raise PermanentError(f"a single point is too large for Qdrant even alone: {exc}") from exc
            if isinstance(exc, RequestTooLarge):  # a limit of the server: remember it (a rate limit passes)
                self.max_request_points = max(1, min(self.max_request_points or points, points // 2))
            log.warning("request of %d points refused (%s); sending it in two parts", points, exc)
        for part in parts:
            await self._send(collection, part)


def _halves(request: list[Op]) -> tuple[list[Op], list[Op]] | None:
    """The request as two requests in order: split between ops, else split its one op."""
    if len(request) > 1:
        middle = len(request) // 2
        return request[:middle], request[middle:]
    halves = halve(request[0])
    return None if halves is None else ([halves[0]], [halves[1]])


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
