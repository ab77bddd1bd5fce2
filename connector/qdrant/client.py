"""The one place that builds a Qdrant client: a server by URL, else embedded local mode."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import httpx
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.errors import ConfigurationError, StorageInUse
from connector.failpoints import Failpoints
from connector.qdrant.retrying import RetryingClient
from connector.qdrant.wires import wire_for
from connector.qdrant.wires.rest import use_rest_session
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
            # The connector asks the server's version itself, once at start, and judges it by its
            # own table of supported servers (connector/versions.py); the client's check would warn
            # of every supported server more than one minor version from the client's own.
            check_compatibility=False,
            # The connector embeds with its own models and never sends inference objects
            # (models.Document and kin). Without this flag the client walks every request's
            # models looking for them: a sixth of the worker's CPU on 384-d upserts (py-spy).
            cloud_inference=True,
            limits=KEEP_ALIVE,
            **_tls_options(settings.qdrant_ca_file),
        )
        use_rest_session(client, compression=settings.qdrant_http_compression)
        return client
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    try:
        return AsyncQdrantClient(path=str(settings.qdrant_path))
    except RuntimeError as exc:  # qdrant-client's word for a folder another process has locked
        if "already accessed" not in str(exc):
            raise
        raise StorageInUse(f"local-mode storage {settings.qdrant_path} is in use by another process (a worker, "
                           "another command): stop it first, or use a Qdrant server (QCC_QDRANT_URL)") from exc


def make_retrying(settings: Settings, client: AsyncQdrantClient | None = None,
                  failpoints: Failpoints | None = None, *, bounded: bool = True) -> RetryingClient:
    """``client`` (else a new one) with the settings' retries and call timeout; ``bounded=False``
    leaves calls unbounded here (the profile bench: a bounded call runs as a task of its own, so
    its time would show on no window stage)."""
    client = client or make_client(settings)
    return RetryingClient(
        client,
        retry_initial=settings.retry_initial_seconds,
        retry_max=settings.retry_max_seconds,
        timeout=settings.qdrant_timeout_seconds if settings.qdrant_url and bounded else None,
        failpoints=failpoints,
        read_consistency=read_consistency(settings),
        wire=wire_for(settings, client),
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
