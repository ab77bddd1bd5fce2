"""The one place that builds a Qdrant client: a server by URL, else embedded local mode."""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.errors import ConfigurationError, StorageInUse
from connector.failpoints import Failpoints
from connector.qdrant.retrying import RetryingClient
from connector.settings import Settings

# Connections kept open between requests. qdrant-client keeps none to a server at localhost or
# 127.0.0.1 (a sidecar, the tests and benches): a TCP connection per request, ~1% of the worker's
# time on upserts and a socket in TIME_WAIT each. Idle ones are dropped after 2 s, before the
# server closes them (it does at 5 s idle), so a request never goes out on one being closed.
KEEP_ALIVE = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=2.0)


def make_client(settings: Settings) -> AsyncQdrantClient:
    """A server client when ``qdrant_url`` is set, else local mode on ``qdrant_path``.

    Only calls that a server also has are made through it, so both behave the same.
    """
    if settings.qdrant_url:
        client = AsyncQdrantClient(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
            prefer_grpc=settings.qdrant_prefer_grpc,
            grpc_port=settings.qdrant_grpc_port,
            # Not int(): 0.5 would become 0. qdrant-client rounds it up to whole seconds; the
            # sink bounds each call by the exact value (make_retrying).
            timeout=settings.qdrant_timeout_seconds,  # type: ignore[arg-type]
            # The client's version check is a plain HTTPS GET without the custom CA: it would
            # only warn "Failed to obtain server version" at every start.
            check_compatibility=settings.qdrant_ca_file is None,
            # The connector embeds with its own models and never sends inference objects
            # (models.Document and kin). Without this flag the client walks every request's
            # models looking for them: a sixth of the worker's CPU on 384-d upserts (py-spy).
            cloud_inference=True,
            limits=KEEP_ALIVE,
            **_tls_options(settings.qdrant_ca_file),
        )
        client.http.client.add_middleware(decode_responses_with_orjson)
        if not settings.qdrant_http_compression:
            client.http.client.add_middleware(ask_uncompressed)
        return client
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    try:
        return AsyncQdrantClient(path=str(settings.qdrant_path))
    except RuntimeError as exc:  # qdrant-client's word for a folder another process has locked
        if "already accessed" not in str(exc):
            raise
        raise StorageInUse(f"local-mode storage {settings.qdrant_path} is in use by another process (a worker, "
                           "another command): stop it first, or use a Qdrant server (QCC_QDRANT_URL)") from exc


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


def orjson_body(response: httpx.Response, **_: Any) -> Any:
    """``response.json()`` as :func:`decode_responses_with_orjson` answers it."""
    return orjson.loads(response.content)


RAW_ANSWER = "qcc.raw_answer"  # a request extension: its 200 answer is handed over undecoded (reads.py)


def raw_body(response: httpx.Response, **_: Any) -> bytes:
    """``response.json()`` of a request marked :data:`RAW_ANSWER`: the body's bytes, for a
    decoder that makes no Python object per vector element (connector/domain/verifier.py)."""
    return response.content


def make_retrying(settings: Settings, client: AsyncQdrantClient | None = None,
                  failpoints: Failpoints | None = None, *, bounded: bool = True) -> RetryingClient:
    """``client`` (else a new one) with the settings' retries and call timeout; ``bounded=False``
    leaves calls unbounded here (the profile bench: a bounded call runs as a task of its own, so
    its time would show on no window stage)."""
    return RetryingClient(
        client or make_client(settings),
        retry_initial=settings.retry_initial_seconds,
        retry_max=settings.retry_max_seconds,
        timeout=settings.qdrant_timeout_seconds if settings.qdrant_url and bounded else None,
        failpoints=failpoints,
        read_consistency=read_consistency(settings),
        rest=bool(settings.qdrant_url) and not settings.qdrant_prefer_grpc,  # "" is local mode, as above
        grpc=bool(settings.qdrant_url) and settings.qdrant_prefer_grpc,
    )


def read_consistency(settings: Settings) -> qm.ReadConsistency | None:
    """The reads' consistency on a server (local mode has no replicas)."""
    if not settings.qdrant_url:
        return None
    value = settings.qdrant_read_consistency
    return value if isinstance(value, int) else qm.ReadConsistencyType(value)


def _tls_options(ca_file: Path | None) -> dict[str, Any]:
    """Trust ``ca_file`` for the server's certificate: httpx's ``verify`` and gRPC's root certificates."""
    if ca_file is None:
        return {}
    try:
        return {
            "verify": ssl.create_default_context(cafile=str(ca_file)),
            "grpc_options": {"root_certificates": ca_file.read_bytes()},
        }
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot read the Qdrant CA file {ca_file}: {exc}") from exc


def check_local_storage(path: Path) -> None:
    """Fail fast, with the reason, when local mode could not persist a write to ``path``."""
    probe = path / ".qcc-write-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
        probe.unlink()
    except OSError as exc:
        raise ConfigurationError(f"Qdrant local storage {path} is not writable: {exc.strerror or exc}") from exc
