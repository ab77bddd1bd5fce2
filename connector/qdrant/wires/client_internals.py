"""What the wires use of qdrant-client beyond its public calls and models: here, and nowhere else.

The REST and gRPC wires send and read without the client's models, through the client's own
sessions, so that its address, API key, TLS, timeouts and error answers stay the client's. That
takes a few things the client does not offer as its interface. qdrant-client is locked
(requirements/lock.txt; its lowest version in requirements/lowest.txt); tests/unit/test_client_internals.py
fails when a version changes any of these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, get_type_hints

import httpx
from qdrant_client import AsyncQdrantClient
from qdrant_client.conversions.conversion import RestToGrpc
from qdrant_client.http.api.points_api import AsyncPointsApi

__all__ = ["BatchUpdateAnswer", "Middleware", "add_rest_middleware", "grpc_deadline", "grpc_read_consistency",
           "grpc_with_payload", "grpc_with_vectors", "grpc_write_ordering", "rest_session"]

Middleware = Callable[[httpx.Request, Callable[[httpx.Request], Awaitable[httpx.Response]]], Awaitable[httpx.Response]]

# The answer of ``POST /collections/{name}/points/batch``: a generated model, named by a number that
# differs between client versions, so taken from the generated call's own return type.
BatchUpdateAnswer: Any = get_type_hints(AsyncPointsApi.batch_update)["return"]

# The client's own conversions of models to protobuf (the gRPC wire's options of a request).
grpc_write_ordering = RestToGrpc.convert_write_ordering
grpc_with_payload = RestToGrpc.convert_with_payload_interface
grpc_with_vectors = RestToGrpc.convert_with_vectors
grpc_read_consistency = RestToGrpc.convert_read_consistency


def rest_session(client: AsyncQdrantClient) -> Any:
    """The client's REST session (``AsyncApiClient``; typed as the sync one's): its
    ``request(type_=..., method=..., url=..., path_params=..., **httpx_options)`` builds the
    request from the client's address and sends it through its middleware, the answer read by
    ``Response.json()`` and raised as the client's errors."""
    return client.http.points_api.api_client


def add_rest_middleware(client: AsyncQdrantClient, middleware: Middleware) -> None:
    """Run ``middleware`` around every REST request of the client (the outermost one)."""
    client.http.client.add_middleware(middleware)


def grpc_deadline(client: AsyncQdrantClient) -> int | None:
    """The deadline qdrant-client gives its own gRPC calls: its timeout, in whole seconds."""
    timeout: int | None = client._client._timeout  # type: ignore[attr-defined]  # noqa: SLF001 - not exposed otherwise
    return timeout
