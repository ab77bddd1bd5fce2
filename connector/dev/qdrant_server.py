"""A real Qdrant server for the tests and the benchmarks, next to the embedded local mode.

The server is whatever ``QCC_QDRANT_SERVER_START`` names (a script that takes ``STORAGE_DIR
HTTP_PORT GRPC_PORT`` and runs the server in the foreground), else, run from a source
checkout, ``../shared/qdrant/start`` beside the checkout when it exists. Without either,
:func:`server_start_script` says why and server tests skip with that reason. Each server
gets free loopback ports and its own storage folder; SIGKILL, SIGSTOP and SIGCONT of
:attr:`QdrantServer.process` are real server faults.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from connector.dev import spawn
from connector.dev.spawn import free_port
from connector.paths import SOURCE_ROOT
from connector.versions import ServerVersion, parse_version

log = logging.getLogger(__name__)

# beside a source checkout only: an installed package has no such neighbour
SHARED_START = SOURCE_ROOT.parent / "shared" / "qdrant" / "start" if SOURCE_ROOT is not None else None


def server_start_script() -> tuple[Path | None, str]:
    """The script that starts a server, or None and the reason there is none."""
    named = os.environ.get("QCC_QDRANT_SERVER_START")
    if named:
        path = Path(named)
        return (path, "") if path.exists() else (None, f"QCC_QDRANT_SERVER_START={named} does not exist")
    if SHARED_START is not None and SHARED_START.exists():
        return SHARED_START, ""
    where = f"{SHARED_START} is absent" if SHARED_START is not None else "QCC_QDRANT_SERVER_START is not set"
    return None, (f"no Qdrant server to start: {where}; set QCC_QDRANT_SERVER_START to a script "
                  "taking STORAGE_DIR HTTP_PORT GRPC_PORT (docs/testing.md)")


class ServerExited(RuntimeError):
    """The server process ended before it was ready; the message ends with its log's last lines."""

    def __init__(self, returncode: int, log_file: Path, lines: int = 15) -> None:
        try:
            tail = log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            tail = []
        shown = "\n".join(tail) if tail else "(the log is empty)"
        super().__init__(f"Qdrant exited with {returncode} before it was ready; {log_file} ends:\n{shown}")


class QdrantServer(spawn.Service):
    """``with QdrantServer() as server: server.url`` -> a running server on loopback."""

    def __init__(
        self,
        storage: Path | None = None,
        *,
        api_key: str | None = None,
        read_only_api_key: str | None = None,
        env: dict[str, str] | None = None,
        p2p_port: int | None = None,
        bootstrap: str | None = None,
        script: Path | None = None,
    ) -> None:
        """``script`` starts another server than :func:`server_start_script`'s (another version:
        tests/integration/test_server_versions.py). ``env`` adds ``QDRANT__SECTION__KEY``
        settings (e.g. a smaller request size limit).
        ``p2p_port`` starts it as a node of a cluster (distributed mode) that joins the node at
        ``bootstrap`` (a peer URI), or founds one without it (connector/dev/qdrant_cluster.py)."""
        if script is None:
            script, reason = server_start_script()
            if script is None:
                raise RuntimeError(reason)
        self.script = script
        self._own_dir = storage is None
        self.storage = Path(storage or tempfile.mkdtemp(prefix="qcc-qdrant-"))
        self.http_port, self.grpc_port = free_port(), free_port()
        self.api_key, self.read_only_api_key = api_key, read_only_api_key
        self.extra_env = env or {}
        self.p2p_port, self.bootstrap = p2p_port, bootstrap
        self.process: subprocess.Popen[bytes] | None = None
        self._own_ports = True  # chosen here and not yet served on: may be chosen again

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> Path:
        return self.storage / "server.log"

    def start(self, timeout: float = 60.0, attempts: int = 3) -> QdrantServer:
        """Start the server and wait until it is ready. A server that exits before it was ever
        ready (its port taken between :func:`free_port` and its bind, which is a race no free
        port avoids) is started again on fresh ports, up to ``attempts`` times in all; a
        restart (``kill`` then ``start``) keeps its ports."""
        for attempt in range(1, attempts + 1):
            self._launch()
            try:
                self.wait_ready(timeout)
                return self
            except ServerExited as exited:
                if attempt == attempts or not self._own_ports:
                    raise
                log.warning("%s; starting it again on fresh ports", exited)
                self.http_port, self.grpc_port = free_port(), free_port()
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        env = {**os.environ, **self.extra_env}
        if self.api_key:
            env["QDRANT_API_KEY"] = self.api_key
        if self.read_only_api_key:
            env["QDRANT_READ_ONLY_API_KEY"] = self.read_only_api_key
        self.storage.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:  # the server keeps its own copy
            # ends with the thread that started it (spawn.py)
            argv = [str(self.script), str(self.storage), str(self.http_port), str(self.grpc_port),
                    *self._peer_args(env)]
            self.process = subprocess.Popen(spawn.command(argv), env=env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def peer_uri(self) -> str:
        return f"http://127.0.0.1:{self.p2p_port}"

    def _peer_args(self, env: dict[str, str]) -> list[str]:
        """Distributed mode: its own peer URI, and the node to join on its first start only
        (restarted on its own storage, a node knows its cluster)."""
        if self.p2p_port is None:
            return []
        env["QDRANT__CLUSTER__ENABLED"] = "true"
        env["QDRANT__CLUSTER__P2P__PORT"] = str(self.p2p_port)
        joined = (self.storage / "storage" / "raft_state.json").exists()
        return ["--uri", self.peer_uri, *(["--bootstrap", self.bootstrap] if self.bootstrap and not joined else [])]

    def tls_context(self) -> ssl.SSLContext | None:
        """How to trust the server's certificate: none here (plain HTTP); a TLS server says."""
        return None

    def version(self) -> ServerVersion:
        """The running server's version, as its ``GET /`` says (tests skip what an older one lacks)."""
        request = urllib.request.Request(self.url, headers={"api-key": self.api_key} if self.api_key else {})
        with urllib.request.urlopen(request, timeout=5, context=self.tls_context()) as answer:
            return parse_version(str(json.load(answer)["version"]))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until ``/readyz`` answers 200 (it needs no API key)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerExited(self.process.returncode, self.log)
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1, context=self.tls_context()) as answer:
                    if answer.status == 200:
                        self._own_ports = False  # ready once: a restart must keep them (clients know them)
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"Qdrant did not become ready on {self.url} within {timeout}s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: the server dies mid-write; :meth:`start` again recovers from its storage."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def pause(self) -> None:
        """SIGSTOP the server and return once every one of its threads has stopped: the signal
        is delivered asynchronously, and a thread still running could answer one more request."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        spawn.wait_until_stopped(self.process.pid)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    @property
    def folder(self) -> Path:
        return self.storage
