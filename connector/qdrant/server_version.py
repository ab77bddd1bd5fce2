"""The server's version, asked once at start: REST ``GET /`` or gRPC ``HealthCheck`` (both answer
``version``), through qdrant-client's ``info()``; local mode is the newest (connector/versions.py)."""

from __future__ import annotations

import asyncio
import logging

from qdrant_client import AsyncQdrantClient

from connector.settings import Settings
from connector.versions import LOCAL, ServerVersion, parse_version

__all__ = ["ask_server_version", "judge_server", "say_what_is_off"]

log = logging.getLogger(__name__)


async def ask_server_version(client: AsyncQdrantClient, settings: Settings,
                             timeout: float | None = None) -> ServerVersion:
    """The version of the server ``client`` talks to (LOCAL without ``QCC_QDRANT_URL``); raises
    what the call raises (a server that does not answer) and ValueError for an answer that names
    no version."""
    if not settings.qdrant_url:
        return LOCAL
    info = await asyncio.wait_for(client.info(), timeout=timeout or settings.qdrant_timeout_seconds)
    return parse_version(str(info.version))


def say_what_is_off(server: ServerVersion, logger: logging.Logger = log) -> None:
    """One info line per feature the (supported) server lacks."""
    for feature in server.lacking():
        logger.info("Qdrant %s lacks %s", server, feature.value)


def judge_server(server: ServerVersion, logger: logging.Logger = log) -> bool:
    """False, with the one critical line, for a server below the floor; else True, with the
    server's version and one info line per feature it lacks."""
    refusal = server.refusal()
    if refusal is not None:
        logger.critical("%s", refusal)
        return False
    logger.info("Qdrant server version %s", server)
    say_what_is_off(server, logger)
    return True
