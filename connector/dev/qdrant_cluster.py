"""A Qdrant cluster on one machine for the tests: several nodes of the dev server
(connector/dev/qdrant_server.py) in distributed mode, each with its own storage and ports.

The first node founds the cluster, the others join it; :meth:`QdrantCluster.start` returns once
every node is ready and node 0 lists them all as peers. Any node serves any collection: ``url``
and ``grpc_port`` are node 0's, ``nodes[i]`` the others'. SIGKILL of a node (:meth:`kill`) is a
real node failure; :meth:`restart` brings it back on its own storage and ports.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

from connector.dev import spawn
from connector.dev.qdrant_server import QdrantServer
from connector.dev.spawn import free_port

__all__ = ["QdrantCluster"]


class QdrantCluster(spawn.Service):
    def __init__(self, nodes: int = 3, folder: Path | None = None) -> None:
        self._own_dir = folder is None
        self._folder = Path(folder or tempfile.mkdtemp(prefix="qcc-qdrant-cluster-"))
        first = QdrantServer(self._folder / "node0", p2p_port=free_port())
        self.nodes = [first] + [QdrantServer(self._folder / f"node{i}", p2p_port=free_port(), bootstrap=first.peer_uri)
                                for i in range(1, nodes)]

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def grpc_port(self) -> int:
        return self.nodes[0].grpc_port

    def start(self, timeout: float = 90.0) -> QdrantCluster:
        self.nodes[0].start(timeout)
        for node in self.nodes[1:]:
            node.start(timeout)
        self.wait_for_peers(timeout)
        return self

    def peers(self) -> int:
        """How many peers node 0 knows (itself included)."""
        with urllib.request.urlopen(f"{self.url}/cluster", timeout=5) as answer:
            return len(json.load(answer)["result"]["peers"])

    def wait_for_peers(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while self.peers() < len(self.nodes):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster at {self.url} has {self.peers()} of {len(self.nodes)} peers")
            time.sleep(0.3)

    def kill(self, node: int) -> None:
        """SIGKILL one node: a node failure for its replicas, and for clients that talk to it."""
        self.nodes[node].kill()

    def restart(self, node: int, timeout: float = 90.0) -> None:
        self.nodes[node].start(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self._folder, ignore_errors=True)
