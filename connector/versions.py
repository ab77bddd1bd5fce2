"""Which Qdrant servers the connector works with, and what each version lacks.

Pure logic, no I/O: the worker and the commands that talk to a server ask its version once at
start (REST ``GET /``, gRPC ``HealthCheck``; connector/qdrant/server_version.py) and pass it
here. A server below :data:`SUPPORTED_FLOOR` is refused with one line (exit 78); a supported
server older than a feature's first version gets that feature turned off, with one info line.
Local mode counts as the newest server (:data:`LOCAL`): it is the qdrant-client installed.

The versions come from Qdrant's changelog and source, and each row of the README's
"Supported versions" table is a server a test ran (tests/integration/test_server_versions.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

__all__ = ["FEATURES", "LOCAL", "SUPPORTED_FLOOR", "Feature", "ServerVersion", "parse_version"]


@dataclass(frozen=True, order=True)
class ServerVersion:
    """A server's ``major.minor.patch`` (``local`` marks embedded local mode, the newest)."""

    major: int
    minor: int
    patch: int = 0
    local: bool = False

    def __str__(self) -> str:
        return "local mode" if self.local else f"{self.major}.{self.minor}.{self.patch}"

    def at_least(self, floor: tuple[int, int]) -> bool:
        return self.local or (self.major, self.minor) >= floor

    def has(self, feature: Feature) -> bool:
        return self.at_least(FEATURES[feature])

    def refusal(self) -> str | None:
        """The one line that refuses this server, or None when it is supported."""
        if self.at_least(SUPPORTED_FLOOR):
            return None
        return (f"Qdrant server {self} is older than the oldest supported, "
                f"{SUPPORTED_FLOOR[0]}.{SUPPORTED_FLOOR[1]}: upgrade the server (README, Supported versions)")

    def lacking(self) -> list[Feature]:
        """The features this (supported) server lacks, in the table's order."""
        return [feature for feature in Feature if not self.has(feature)]


class Feature(str, Enum):
    """A server feature the connector uses where the server has it; the value says what is off without it."""

    SHARD_KEY_FALLBACK = ("shard-key fallback ({\"target\": ..., \"fallback\": ...}; QCC_SHARD_KEYS' fallback): "
                          "events asking for it are dead-lettered")
    LIST_SHARD_KEYS = ("the list of shard keys (GET /collections/NAME/shards): the keys are read from the "
                       "collection's cluster info instead")


# The first server version that has each feature (Qdrant's changelog: the fallback selector in
# 1.16; the list of shard keys in 1.17). Checked and not in the table: the connector sends no
# update `timeout` and no `update_mode` or upsert condition, and reads strict mode's settings
# only where the collection info has them (1.13 has strict mode).
FEATURES: dict[Feature, tuple[int, int]] = {
    Feature.SHARD_KEY_FALLBACK: (1, 16),
    Feature.LIST_SHARD_KEYS: (1, 17),
}

# The oldest server supported: the oldest a test runs (README, Supported versions)
SUPPORTED_FLOOR = (1, 13)

LOCAL = ServerVersion(10**6, 0, 0, local=True)

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> ServerVersion:
    """``1.18.3``, ``v1.13.6``, ``1.19.0-dev`` -> a version; ValueError for anything else."""
    found = _VERSION.match(text.strip())
    if found is None:
        raise ValueError(f"not a Qdrant version: {text!r}")
    major, minor, patch = found.groups()
    return ServerVersion(int(major), int(minor), int(patch or 0))
