"""Start a helper process (broker, Qdrant server, worker) without ``preexec_fn``.

``subprocess.Popen(preexec_fn=...)`` runs Python in the forked child of a process that has
threads (gRPC's, onnxruntime's, the Kafka clients'): Python's documentation calls that
unsafe. A Qdrant server started so in CI exited with SIGABRT before it was ready, right after
gRPC warned that it skipped its fork handlers (the log was lost with the machine, so the
cause is likely, not proven). So the child is started with a plain ``posix_spawn``/``vfork``
as ``python -m connector.dev.spawn ...``, sets what it must on itself, then execs the real
command.

    python -m connector.dev.spawn [--parent PID] [--max-file-bytes N] -- COMMAND...

``--parent``: SIGTERM this process when PID ends (Linux ``PR_SET_PDEATHSIG``), so a killed
test or benchmark run leaves no broker or server behind. ``--max-file-bytes``: cap every file
it writes (``RLIMIT_FSIZE``), a full disk for the fault tests.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import TypeVar

PR_SET_PDEATHSIG = 1


def command(argv: list[str], *, stop_with_parent: bool = True, max_file_bytes: int | None = None) -> list[str]:
    """``argv`` wrapped so that it ends with this process (Linux) and writes at most
    ``max_file_bytes`` a file; ``argv`` itself where there is nothing to set."""
    options: list[str] = []
    if stop_with_parent and sys.platform.startswith("linux"):
        options += ["--parent", str(os.getpid())]
    if max_file_bytes is not None:
        options += ["--max-file-bytes", str(max_file_bytes)]
    if not options:
        return argv
    return [sys.executable, "-m", "connector.dev.spawn", *options, "--", *argv]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    """SIGTERM a child service (resumed first: a paused one cannot act on it), SIGKILL after
    ``timeout`` seconds. The dev broker and the dev Qdrant server stop this way."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_stopped(pid: int, timeout: float = 10) -> None:
    """Wait until every thread of ``pid`` is stopped (Linux ``/proc``; elsewhere, return at once)."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(thread_state(task) in ("T", "t", "") for task in tasks.iterdir()):
                return
        except FileNotFoundError:  # the process has ended
            return
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} did not stop within {timeout:g} s of SIGSTOP")


def thread_state(task: Path) -> str:
    """The state letter of one thread from ``/proc/PID/task/TID/stat``; empty once it is gone."""
    try:
        stat = (task / "stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]  # the name in parentheses may hold spaces


ServiceT = TypeVar("ServiceT", bound="Service")


class Service(ABC):
    """A service process the tests or the demo run (the broker, a Qdrant server): ``start`` it,
    or use it as a context manager; ``cleanup`` stops it and removes its folder when it made one."""

    process: subprocess.Popen[bytes] | None = None
    _own_dir: bool = False

    @property
    @abstractmethod
    def folder(self) -> Path:
        """Where the service keeps its data and logs."""

    @abstractmethod
    def start(self: ServiceT) -> ServiceT:
        """Start the service and wait until it answers."""

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self: ServiceT) -> ServiceT:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType]) -> None:
        self.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="connector.dev.spawn")
    parser.add_argument("--parent", type=int)
    parser.add_argument("--max-file-bytes", type=int)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        parser.error("no command")
    if args.parent is not None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != args.parent:  # it ended before the death signal was set
            sys.exit(f"parent {args.parent} ended before {argv[0]} started")
    if args.max_file_bytes is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.max_file_bytes, args.max_file_bytes))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
