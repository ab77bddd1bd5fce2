"""The one place that builds a Qdrant client: a server by URL, else embedded local mode."""

from __future__ import annotations

from qdrant_client import AsyncQdrantClient

from connector.settings import Settings


def make_client(settings: Settings) -> AsyncQdrantClient:
    """A server client when ``qdrant_url`` is set, else local mode on ``qdrant_path``.

    Only calls that a server also has are made through it, so both behave the same.
    """
    if settings.qdrant_url:
        return AsyncQdrantClient(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
            prefer_grpc=settings.qdrant_prefer_grpc,
            timeout=int(settings.qdrant_timeout_seconds),
        )
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    return AsyncQdrantClient(path=str(settings.qdrant_path))
