"""Where a test's Qdrant is: embedded local mode, or the session's server over REST or gRPC.

A test that takes the ``qdrant_target`` fixture runs once per target. Every target gives the
same three things: the worker's settings as environment variables, a sync client and an
async client for the test's own reads and writes. Tests run one at a time, so a server
target starts each test with no collection and no alias instead of a server of its own.

The server targets carry the ``server`` and ``integration`` markers: ``-m "not server"`` runs
local mode only.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient
from qdrant_client import models as qm

from connector.dev.qdrant_server import QdrantServer

TARGET_NAMES = ("local", "rest", "grpc")


def _param(name: str) -> Any:
    # a server variant needs the real server: ``integration`` as well as ``server``
    return pytest.param(name, marks=[pytest.mark.server, pytest.mark.integration]) if name != "local" else name


TARGETS = tuple(_param(name) for name in TARGET_NAMES)


def only_targets(*names: str) -> pytest.MarkDecorator:
    """Run a test on some targets only (a slow test whose other variants would add nothing):
    ``@only_targets("local", "grpc")`` on a test that takes ``qdrant_target``."""
    assert set(names) <= set(TARGET_NAMES), names
    return pytest.mark.parametrize("qdrant_target", [_param(name) for name in names], indirect=True)


def targets_with(values: dict[str, Any], argnames: str) -> pytest.MarkDecorator:
    """One variant per target, each with its own value of ``argnames`` (a slow test whose
    values need not meet every target): ``@targets_with({"local": a, "grpc": b}, "distance")``."""
    assert set(values) <= set(TARGET_NAMES), values
    cases = [pytest.param(name, value, marks=[pytest.mark.server, pytest.mark.integration] if name != "local" else [],
                          id=f"{name}-{value}") for name, value in values.items()]
    return pytest.mark.parametrize(("qdrant_target", argnames), cases, indirect=["qdrant_target"])


@dataclass
class QdrantTarget:
    """One Qdrant for one test: ``name`` is local, rest or grpc."""

    name: str
    path: Path | None = None  # local mode's storage folder
    server: QdrantServer | None = None
    api_key: str | None = None
    ca_file: Path | None = None  # the CA of a server's HTTPS certificate (its url is then https://)

    @property
    def is_server(self) -> bool:
        return self.server is not None

    @property
    def prefer_grpc(self) -> bool:
        return self.name == "grpc"

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def env(self) -> dict[str, str]:
        """The worker's QCC_ settings that point it at this Qdrant."""
        if self.server is None:
            assert self.path is not None
            return {"QCC_QDRANT_PATH": str(self.path)}
        env = {
            "QCC_QDRANT_URL": self.server.url,
            "QCC_QDRANT_PREFER_GRPC": "true" if self.prefer_grpc else "false",
            "QCC_QDRANT_GRPC_PORT": str(self.server.grpc_port),
        }
        if self.api_key:
            env["QCC_QDRANT_API_KEY"] = self.api_key
        if self.ca_file is not None:
            env["QCC_QDRANT_CA_FILE"] = str(self.ca_file)
        return env

    def _options(self) -> dict[str, object]:
        if self.server is None:
            return {"path": str(self.path)}
        options: dict[str, object] = {"url": self.server.url, "prefer_grpc": self.prefer_grpc,
                                      "grpc_port": self.server.grpc_port, "api_key": self.api_key, "timeout": 30}
        if self.ca_file is not None:
            options["verify"] = ssl.create_default_context(cafile=str(self.ca_file))
            options["grpc_options"] = {"root_certificates": self.ca_file.read_bytes()}
        return options

    def client(self) -> QdrantClient:
        """A sync client. Local mode allows one client per folder at a time: close it before a
        worker opens the same folder."""
        return QdrantClient(**self._options())  # type: ignore[arg-type]

    def async_client(self) -> AsyncQdrantClient:
        return AsyncQdrantClient(**self._options())  # type: ignore[arg-type]

    def wipe(self) -> None:
        """A server as new: no aliases, no collections (local mode starts empty by its folder)."""
        if self.server is None:
            return
        client = self.client()
        try:
            aliases = client.get_aliases().aliases
            if aliases:
                client.update_collection_aliases([qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=a.alias_name))
                                                  for a in aliases])
            for collection in client.get_collections().collections:
                client.delete_collection(collection.name)
        finally:
            client.close()
