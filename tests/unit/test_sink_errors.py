"""Errors from qdrant-client, gRPC and the network map onto the connector's kinds.

The texts are Qdrant's own answers, as seen from the server over REST and gRPC: 1.18's, and
1.13's where it answers otherwise (strict mode as 403 / PERMISSION_DENIED, "than than").
"""

from __future__ import annotations

import json

import grpc
import httpx
import pytest
from grpc.aio import AioRpcError, Metadata
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from connector.errors import (
    AccessDenied,
    CollectionMissing,
    PermanentError,
    RateLimited,
    RequestTooLarge,
    TransientError,
)
from connector.qdrant import Backoff, RetryingClient, classify

BODY_LIMIT = "JSON payload (1577820 bytes) is larger than allowed (limit: 1048576 bytes)."
CAPACITY = ("Rate limiting exceeded: Write rate limit exceeded, request larger than rate limiter capacity, "
            "please try to split your request")
UPSERT_LIMIT = 'Bad request: Limit exceeded 60 > 50 for "upsert limit". Help: Reduce the "upsert limit" parameter'
UNINDEXED = 'Bad request: Index required but not found for "a" of one of the following types: [integer].'
# Qdrant 1.13.6's answers for the same refusals
CAPACITY_1_13 = ("Rate limiting exceeded: Write rate limit exceeded, request larger than than rate limiter capacity, "
                 "please try to split your request")
UPSERT_LIMIT_1_13 = ('Forbidden: Limit exceeded 3 > 2 for "upsert limit". Help: Reduce the "upsert limit" parameter '
                     'to or below 2.')
UNINDEXED_1_13 = ('Forbidden: Index required but not found for "n" of one of the following types: [integer]. '
                  'Help: Create an index for this key or use a different filter.')


def _response(status: int, error: str = "boom", headers: dict[str, str] | None = None) -> UnexpectedResponse:
    content = json.dumps({"status": {"error": error}}, separators=(",", ":")).encode()
    return UnexpectedResponse(
        status_code=status, reason_phrase="x", content=content, headers=httpx.Headers(headers or {})
    )


def _rpc(code: grpc.StatusCode, details: str) -> AioRpcError:
    return AioRpcError(code, Metadata(), Metadata(), details=details)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_response(503), TransientError),
        (_response(500), TransientError),
        (_response(429), RateLimited),
        (_response(404), PermanentError),
        (_response(400), PermanentError),
        (httpx.ConnectError("refused"), TransientError),
        (httpx.ReadTimeout("slow"), TransientError),
        (ResponseHandlingException(httpx.ConnectError("refused")), TransientError),
        (ConnectionRefusedError(), TransientError),
        (KeyError(7), PermanentError),
        (ValueError("Wrong input: Vector dimension error"), PermanentError),
        # what only a server (or a proxy in front of it) answers
        (_response(400, BODY_LIMIT), RequestTooLarge),
        (_response(413, "<html>413 Request Entity Too Large</html>"), RequestTooLarge),
        (_response(429, CAPACITY), RequestTooLarge),
        (_response(400, UPSERT_LIMIT), RequestTooLarge),
        (_response(400, UNINDEXED), PermanentError),
        (_response(429, CAPACITY_1_13), RequestTooLarge),
        (_response(403, UPSERT_LIMIT_1_13), RequestTooLarge),
        (_response(403, UNINDEXED_1_13), PermanentError),
        (_response(401, "Invalid API key or JWT"), AccessDenied),
        (_response(403, "Forbidden: Global manage access is required"), AccessDenied),
        (_response(404, "Not found: Collection `docs` doesn't exist!"), CollectionMissing),
        (_response(404, "Not found: No point with id 999999 found"), PermanentError),
        (_response(429, "Write rate limit exceeded", {"Retry-After": "3"}), RateLimited),
        (ResourceExhaustedResponse("Write rate limit exceeded. Retry after 12s", 12), RateLimited),
        (ValueError("Collection docs not found"), CollectionMissing),
        (_rpc(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"), TransientError),
        (_rpc(grpc.StatusCode.CANCELLED, "Cancelled"), TransientError),
        (_rpc(grpc.StatusCode.UNKNOWN, "Stream removed"), TransientError),
        (_rpc(grpc.StatusCode.FAILED_PRECONDITION, "Shard 0 is being transferred"), TransientError),
        (_rpc(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), TransientError),
        (_rpc(grpc.StatusCode.RESOURCE_EXHAUSTED, CAPACITY), RequestTooLarge),
        (_rpc(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (40000000 vs. 33554432)"),
         RequestTooLarge),
        (_rpc(grpc.StatusCode.RESOURCE_EXHAUSTED, "Write rate limit exceeded"), RateLimited),
        (_rpc(grpc.StatusCode.UNAUTHENTICATED, "Invalid API key or JWT"), AccessDenied),
        (_rpc(grpc.StatusCode.PERMISSION_DENIED, "Forbidden: Global manage access is required"), AccessDenied),
        (_rpc(grpc.StatusCode.INVALID_ARGUMENT, UPSERT_LIMIT), RequestTooLarge),
        (_rpc(grpc.StatusCode.RESOURCE_EXHAUSTED, CAPACITY_1_13), RequestTooLarge),
        (_rpc(grpc.StatusCode.PERMISSION_DENIED, UPSERT_LIMIT_1_13), RequestTooLarge),
        (_rpc(grpc.StatusCode.PERMISSION_DENIED, UNINDEXED_1_13), PermanentError),
        (_rpc(grpc.StatusCode.INVALID_ARGUMENT, "Wrong input: Vector dimension error: expected dim: 384, got 3"),
         PermanentError),
        (_rpc(grpc.StatusCode.NOT_FOUND, "Not found: Collection `nope` doesn't exist!"), CollectionMissing),
        (_rpc(grpc.StatusCode.NOT_FOUND, "Not found: No point with id 999999 found"), PermanentError),
    ],
)
def test_classify(error: Exception, kind: type) -> None:
    mapped = classify(error)
    assert type(mapped) is kind
    assert mapped.retriable is issubclass(kind, TransientError)


def test_rate_limit_keeps_the_servers_wait() -> None:
    assert classify(ResourceExhaustedResponse("slow down", 12)).retry_after == 12  # type: ignore[attr-defined]
    assert classify(_response(429, "slow down", {"Retry-After": "3"})).retry_after == 3  # type: ignore[attr-defined]
    assert classify(_rpc(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")).retry_after is None  # type: ignore[attr-defined]


def test_missing_point_message_names_the_point() -> None:
    assert "7" in str(classify(KeyError(7)))


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(0.1, 2.0)
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(0.05 <= d <= 2.0 for d in delays)
    assert max(delays[10:]) > 0.4  # it grows past the first steps


def test_backoff_survives_an_outage_of_any_length() -> None:
    """Retries go on for as long as Qdrant is down; at the 30 s cap, 1,100 attempts are ~4.5
    hours of outage, and 2**1024 used to overflow a float there and end the worker."""
    backoff = Backoff(0.2, 30.0)
    assert all(0.1 <= backoff.next_delay() <= 30.0 for _ in range(5000))


async def test_readiness_is_not_left_failing_when_a_retried_call_ends_in_an_error() -> None:
    """A timeout, then an answer that is an event's fault: Qdrant is reachable again, so the
    failure readiness reports must be cleared (it stayed set, and /readyz said 503, until the
    next call; an idle worker stayed not ready)."""
    refused = UnexpectedResponse(400, "Bad Request", b"{}", httpx.Headers())
    answers: list[Exception] = [httpx.ReadTimeout("slow"), refused]
    seen: list[str | None] = []

    async def call() -> None:
        raise answers.pop(0)

    qdrant = RetryingClient(None, retry_initial=0.01, retry_max=0.01,  # type: ignore[arg-type]  # no client is used
                            on_retry=lambda _what, _error: seen.append("retried"))
    with pytest.raises(PermanentError):
        await qdrant.call("set_payload", call)
    assert seen == ["retried"]
    assert qdrant.failure is None
