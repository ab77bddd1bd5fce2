"""What a Qdrant answer means for the connector: every qdrant-client, gRPC, network and local
mode error mapped onto the kinds of :mod:`connector.errors` (docs/design.md, "What a server
refuses"). Pure: no call is made here."""

from __future__ import annotations

import errno
import json
import re
import sqlite3

import httpx
import orjson
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from connector.errors import (
    AccessDenied,
    CollectionMissing,
    ConfigurationError,
    ConnectorError,
    PermanentError,
    RateLimited,
    RequestTooLarge,
    StorageError,
    TransientError,
)

__all__ = ["classify"]

# Local mode persists every write to SQLite in its folder; these mean that folder cannot take it.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EFBIG, errno.EDQUOT, errno.EIO}


# Qdrant's words for a request that is too large as a whole (REST body limit, strict mode's
# per-request limits, the rate limiter's capacity, gRPC's message size): split it, blame no event.
# "rate limiter capacity" alone: Qdrant 1.13 says "larger than than rate limiter capacity".
TOO_LARGE_MARKERS = ("is larger than allowed", "rate limiter capacity", "Help: Reduce the",
                     "larger than max", "Received message larger")

# Strict mode's refusals read "<what>. Help: <what to do>". Qdrant sends them as 403
# Forbidden (gRPC PERMISSION_DENIED) on 1.13, as 400 on 1.18: a refusal of the request, not of the key.
STRICT_MODE_MARKER = ". Help: "


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
        if _not_qdrant(exc.status_code or 0, exc.content):
            return ConfigurationError(_not_qdrant_line(f"HTTP {exc.status_code}", exc.headers.get("Content-Type")))
        return _classify_status(exc.status_code or 0, _response_text(exc), exc.headers.get("Retry-After"))
    if isinstance(exc, json.JSONDecodeError):  # a 200 that is not JSON (orjson's error is one too)
        return ConfigurationError(_not_qdrant_line("a body that is not JSON", None))
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
    if status == 403 and STRICT_MODE_MARKER in text:
        return _classify_status(400, text, retry_after)
    if status in (401, 403):
        return AccessDenied(f"{what} (check QCC_QDRANT_API_KEY: it must be a key that may write)")
    if status == 429:
        return RateLimited(what, retry_after=_seconds(retry_after))
    if status >= 500 or status == 408:
        return TransientError(what)
    if status == 404 and COLLECTION_MISSING.search(text):
        return CollectionMissing(what)
    return PermanentError(what)


def _not_qdrant(status: int, body: bytes) -> bool:
    """An answer no Qdrant server gives: a refusal with a body that is not JSON (a web server's HTML
    page). Qdrant's refusals are JSON; its only bodiless one is a 404 for a path it lacks. Statuses
    a proxy in front of Qdrant answers in its own words keep their meaning: 401, 403, 408, 413, 429, 5xx."""
    if status in (401, 403, 408, 413, 429) or status >= 500 or not body.strip():
        return False
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    return False


def _not_qdrant_line(answer: str, content_type: str | None) -> str:
    kind = f" ({content_type.split(';')[0]})" if content_type else ""
    return (f"QCC_QDRANT_URL answered with {answer}{kind}, which no Qdrant server does: is it the REST address "
            "of a Qdrant server (port 6333 by default)?")


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
    if code == grpc.StatusCode.PERMISSION_DENIED and STRICT_MODE_MARKER in (details or ""):
        code = grpc.StatusCode.INVALID_ARGUMENT  # strict mode on an older server, not the key
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

