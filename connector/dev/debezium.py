"""Debezium's PostgreSQL connector in Kafka Connect standalone, for the CDC end-to-end test, the
CDC benchmark and the tutorial (docs/cdc.md).

The jars come from Maven Central with the two poms beside this file, once, into the cache folder
(connector/paths.py): ``plugins/debezium-postgres/`` (the connector and what it needs at run time,
without the Kafka jars Connect itself provides) and ``connect-libs/`` (a Kafka Connect runtime,
the JSON converter and a log4j2 backend). :class:`DebeziumConnect` runs one standalone worker with
one PostgreSQL connector: its offsets file stays in its folder, so a restart resumes where it
stopped (no second snapshot).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from connector.dev import spawn
from connector.dev.jar_cache import COMPLETE, copy_dependencies, fetched_once
from connector.dev.postgres import USER, PostgresServer
from connector.dev.spawn import free_port
from connector.paths import cache_dir

__all__ = ["DEBEZIUM_VERSION", "DebeziumConnect", "debezium_jars", "unavailable"]

DEBEZIUM_VERSION = "3.6.1.Final"
HERE = Path(__file__).resolve().parent
PLUGIN_POM = HERE / "debezium-plugin.pom.xml"
CONNECT_POM = HERE / "kafka-connect.pom.xml"
CONNECTOR_NAME = "qcc-postgres"
LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:qcc.connect.log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
"""


def unavailable() -> str | None:
    """Why Debezium cannot run here (no Java; no Maven for the first fetch), or None."""
    if shutil.which("java") is None:
        return "no Debezium: Java (java) is not installed"
    if not (_jars_folder() / COMPLETE).exists() and shutil.which("mvn") is None:
        return "no Debezium: Maven (mvn) is needed once to fetch its jars from Maven Central"
    return None


def _jars_folder() -> Path:
    return cache_dir("debezium", DEBEZIUM_VERSION)


def debezium_jars() -> Path:
    """The folder with ``plugins/`` and ``connect-libs/``, fetched with Maven on first use."""

    def fill(staging: Path) -> None:
        for pom, into, options in ((PLUGIN_POM, staging / "plugins" / "debezium-postgres",
                                    ("-DincludeScope=runtime", "-DexcludeGroupIds=org.apache.kafka")),
                                   (CONNECT_POM, staging / "connect-libs", ())):
            shutil.copy(pom, staging / pom.name)  # Maven writes target/ beside the pom: not into the package
            copy_dependencies(staging / pom.name, into, *options, cwd=staging)

    return fetched_once(_jars_folder(), fill)


class DebeziumConnect(spawn.Service):
    """Kafka Connect standalone with Debezium's PostgreSQL connector on ``tables`` of ``postgres``,
    writing ``<prefix>.<schema>.<table>`` topics with the JSON converter (``schemas``: embedded
    schemas on or off). ``start`` returns once the connector's task runs."""

    def __init__(self, postgres: PostgresServer, bootstrap: str, tables: list[str], *, prefix: str = "shop",
                 schemas: bool = True, folder: Path | None = None) -> None:
        self.postgres, self.bootstrap, self.tables, self.prefix, self.schemas = (
            postgres, bootstrap, tables, prefix, schemas)
        self._own_dir = folder is None
        self.root = Path(folder or tempfile.mkdtemp(prefix="qcc-debezium-"))
        self.rest_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def folder(self) -> Path:
        return self.root

    @property
    def log(self) -> Path:
        return self.root / "connect.log"

    def topic(self, table: str) -> str:
        """The topic of ``schema.table``."""
        return f"{self.prefix}.{table}"

    def worker_properties(self, jars: Path) -> dict[str, str]:
        converter = "org.apache.kafka.connect.json.JsonConverter"
        return {
            "bootstrap.servers": self.bootstrap,
            "listeners": f"http://127.0.0.1:{self.rest_port}",
            "plugin.path": str(jars / "plugins"),
            "key.converter": converter, "value.converter": converter,
            "key.converter.schemas.enable": str(self.schemas).lower(),
            "value.converter.schemas.enable": str(self.schemas).lower(),
            "offset.storage.file.filename": str(self.root / "connect.offsets"),  # kept: a restart resumes
            "offset.flush.interval.ms": "1000",
        }

    def connector_properties(self) -> dict[str, str]:
        slot = f"qcc_{self.prefix}".replace("-", "_").replace(".", "_")
        return {
            "name": CONNECTOR_NAME,
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": "1",
            "database.hostname": "127.0.0.1", "database.port": str(self.postgres.port),
            "database.user": USER, "database.password": "", "database.dbname": self.postgres.database,
            "topic.prefix": self.prefix,
            "plugin.name": "pgoutput",
            "slot.name": slot, "publication.name": f"{slot}_publication",
            "publication.autocreate.mode": "filtered",
            "table.include.list": ",".join(self.tables),
            "snapshot.mode": "initial",
        }

    def start(self) -> DebeziumConnect:
        jars = debezium_jars()
        self.root.mkdir(parents=True, exist_ok=True)
        for name, props in (("worker.properties", self.worker_properties(jars)),
                            ("postgres.properties", self.connector_properties())):
            (self.root / name).write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.root / "log4j2.properties").write_text(LOG4J2)
        argv = ["java", "-Xmx512m", f"-Dlog4j2.configurationFile=file:{self.root / 'log4j2.properties'}",
                f"-Dqcc.connect.log={self.log}", "-cp", f"{jars / 'connect-libs'}/*",
                "org.apache.kafka.connect.cli.ConnectStandalone",
                str(self.root / "worker.properties"), str(self.root / "postgres.properties")]
        with (self.root / "connect.out").open("ab") as out:
            self.process = subprocess.Popen(spawn.command(argv), stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, "KAFKA_HEAP_OPTS": "-Xmx512m"})
        self._until_running(timeout=180)
        return self

    def kill(self) -> None:
        """SIGKILL: offsets not yet flushed are lost, so some changes come again after a restart."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def status(self) -> dict[str, object] | None:
        """The connector's status from Connect's REST API, or None while it does not answer."""
        url = f"http://127.0.0.1:{self.rest_port}/connectors/{CONNECTOR_NAME}/status"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return dict(json.loads(answer.read()))
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _until_running(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                break
            status = self.status()
            tasks = status.get("tasks") if status else None
            if isinstance(tasks, list) and tasks and all(t.get("state") == "RUNNING" for t in tasks):
                return
            if isinstance(tasks, list) and any(t.get("state") == "FAILED" for t in tasks):
                break
            time.sleep(0.5)
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        self.stop()
        raise RuntimeError(f"Debezium's connector did not start running:\n{tail}")
