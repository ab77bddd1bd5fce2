"""A real Qdrant server for the tests and the benchmarks, next to the embedded local mode.

The server is whatever ``QCC_QDRANT_SERVER_START`` names (a script that takes ``STORAGE_DIR
HTTP_PORT GRPC_PORT`` and runs the server in the foreground), else, run from a source
checkout, ``../shared/qdrant/start`` beside the checkout when it exists. Without either,
:func:`server_start_script` says why and server tests skip with that reason. Each server
gets free loopback ports and its own storage folder; SIGKILL, SIGSTOP and SIGCONT of
:attr:`QdrantServer.process` are real server faults.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from connector.dev.broker import _stop_with_parent, free_port, terminate
from connector.paths import SOURCE_ROOT

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


class QdrantServer:
    """``with QdrantServer() as server: server.url`` -> a running server on loopback."""

    def __init__(
        self,
        storage: Path | None = None,
        *,
        api_key: str | None = None,
        read_only_api_key: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``env`` adds ``QDRANT__SECTION__KEY`` settings (e.g. a smaller request size limit)."""
        script, reason = server_start_script()
        if script is None:
            raise RuntimeError(reason)
        self.script = script
        self._own_dir = storage is None
        self.storage = Path(storage or tempfile.mkdtemp(prefix="qcc-qdrant-"))
        self.http_port, self.grpc_port = free_port(), free_port()
        self.api_key, self.read_only_api_key = api_key, read_only_api_key
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> Path:
        return self.storage / "server.log"

    def start(self, timeout: float = 60.0) -> QdrantServer:
        env = {**os.environ, **self.extra_env}
        if self.api_key:
            env["QDRANT_API_KEY"] = self.api_key
        if self.read_only_api_key:
            env["QDRANT_READ_ONLY_API_KEY"] = self.read_only_api_key
        self.storage.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:  # the server keeps its own copy
            self.process = subprocess.Popen(
                [str(self.script), str(self.storage), str(self.http_port), str(self.grpc_port)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=_stop_with_parent,  # noqa: PLW1509 - the death signal can only be set in the child
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until ``/readyz`` answers 200 (it needs no API key)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Qdrant exited with {self.process.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as answer:
                    if answer.status == 200:
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
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.storage, ignore_errors=True)

    def __enter__(self) -> QdrantServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType]) -> None:
        self.cleanup()
