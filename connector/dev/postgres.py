"""A PostgreSQL server with logical decoding (``wal_level=logical``) for the CDC tests, the CDC
benchmark and the tutorial: its own cluster folder, a free loopback port, trust authentication
for loopback connections (replication included), started from the installed binaries.

The binaries are found in ``QCC_POSTGRES_BIN``, on the PATH, or in Debian's
``/usr/lib/postgresql/*/bin``. PostgreSQL refuses to run as root: run as root (a CI machine), the
server runs as the ``postgres`` user (else ``nobody``), through ``setpriv``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from connector.dev import spawn
from connector.dev.spawn import free_port

__all__ = ["PostgresServer", "postgres_bin", "unavailable"]

USER = "postgres"  # the database superuser the tests connect as


def postgres_bin() -> Path | None:
    """The folder of ``initdb``, ``postgres`` and ``psql``, or None."""
    named = os.environ.get("QCC_POSTGRES_BIN")
    candidates = [named] if named else []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    candidates += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    return next((Path(c) for c in candidates if (Path(c) / "initdb").exists() and (Path(c) / "psql").exists()), None)


def unavailable() -> str | None:
    """Why no PostgreSQL server can run here, or None."""
    if postgres_bin() is None:
        return "no PostgreSQL: initdb and psql not found (QCC_POSTGRES_BIN, the PATH, /usr/lib/postgresql/*/bin)"
    if os.geteuid() == 0 and (shutil.which("setpriv") is None or _unprivileged() is None):
        return "no PostgreSQL: run as root, it needs setpriv and a 'postgres' or 'nobody' user to run as"
    return None


def _unprivileged() -> pwd.struct_passwd | None:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


class PostgresServer(spawn.Service):
    """``with PostgresServer() as pg: pg.sql("CREATE TABLE ...")``; ``pg.port``, ``pg.database``."""

    def __init__(self, folder: Path | None = None, database: str = "shop") -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError(unavailable() or "no PostgreSQL")
        self.bin = bin_dir
        self._own_dir = folder is None
        self.root = Path(folder or tempfile.mkdtemp(prefix="qcc-postgres-"))
        self.database = database
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.as_user = _unprivileged() if os.geteuid() == 0 else None

    @property
    def folder(self) -> Path:
        return self.root

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def _as_owner(self, argv: list[str]) -> list[str]:
        """``argv`` run as the unprivileged user when this process is root (PostgreSQL refuses root)."""
        if self.as_user is None:
            return argv
        return ["setpriv", f"--reuid={self.as_user.pw_uid}", f"--regid={self.as_user.pw_gid}", "--init-groups", *argv]

    def start(self) -> PostgresServer:
        data = self.root / "data"
        if self.as_user is not None:
            os.chown(self.root, self.as_user.pw_uid, self.as_user.pw_gid)
        if not data.exists():
            subprocess.run(self._as_owner([str(self.bin / "initdb"), "-D", str(data), "-U", USER, "--auth=trust",
                                           "-E", "UTF8", "--no-sync"]), check=True, capture_output=True, timeout=120)
        settings = {"listen_addresses": "127.0.0.1", "wal_level": "logical", "max_wal_senders": "10",
                    "max_replication_slots": "10", "fsync": "off", "unix_socket_directories": str(self.root)}
        argv = [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                *(part for key, value in settings.items() for part in ("-c", f"{key}={value}"))]
        # the credentials change first: a change of user clears the parent-death signal spawn sets
        command = self._as_owner(spawn.command(argv))
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start:\n{tail}")
            time.sleep(0.2)
        if self.database != "postgres":
            exists = self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'", database="postgres")
            if not exists.strip():
                self.sql(f'CREATE DATABASE "{self.database}"', database="postgres")
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT): SIGTERM's smart shutdown would wait for Debezium to disconnect."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _ready(self) -> bool:
        answer = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                capture_output=True, check=False)
        return answer.returncode == 0

    def sql(self, statements: str, database: str | None = None) -> str:
        """Run SQL with psql (stop at the first error); what it prints, unaligned, without headers."""
        result = subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d",
             database or self.database, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-tA", "-c", statements],
            capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout
