"""A three-node Qdrant cluster (distributed mode) from the dev server, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.dev.qdrant_cluster import QdrantCluster
from connector.dev.qdrant_server import server_start_script


@pytest.fixture(scope="module")
def qdrant_cluster() -> Iterator[QdrantCluster]:
    script, reason = server_start_script()
    if script is None:
        pytest.skip(reason)
    cluster = QdrantCluster(nodes=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.cleanup()
