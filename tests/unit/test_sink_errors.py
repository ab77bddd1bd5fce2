"""Errors from qdrant-client and the network map onto transient or permanent."""

from __future__ import annotations

import httpx
import pytest
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from connector.errors import PermanentError, TransientError
from connector.sink import Backoff, classify


def _response(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status_code=status, reason_phrase="x", content=b'{"status":{"error":"boom"}}', headers=httpx.Headers())


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_response(503), TransientError),
        (_response(500), TransientError),
        (_response(429), TransientError),
        (_response(404), PermanentError),
        (_response(400), PermanentError),
        (httpx.ConnectError("refused"), TransientError),
        (httpx.ReadTimeout("slow"), TransientError),
        (ResponseHandlingException(httpx.ConnectError("refused")), TransientError),
        (ConnectionRefusedError(), TransientError),
        (KeyError(7), PermanentError),
        (ValueError("Wrong input: Vector dimension error"), PermanentError),
    ],
)
def test_classify(error: Exception, kind: type) -> None:
    mapped = classify(error)
    assert isinstance(mapped, kind)
    assert mapped.retriable is (kind is TransientError)


def test_missing_point_message_names_the_point() -> None:
    assert "7" in str(classify(KeyError(7)))


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(0.1, 2.0)
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(0.05 <= d <= 2.0 for d in delays)
    assert max(delays[10:]) > 0.4  # it grows past the first steps
