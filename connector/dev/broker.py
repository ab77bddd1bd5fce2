"""A real single-node Apache Kafka broker (KRaft) for development, the demo and the tests.

The broker's jars come from Maven Central through ``kafka-broker.pom.xml`` (package data
beside this module; ``mvn dependency:copy-dependencies``), once, into
``<cache>/kafka/<kafka version>/libs``: the cache folder of :mod:`connector.paths`, or
``$QCC_KAFKA_CACHE/libs``. Each broker gets free loopback ports and its own data folder, and
is stopped with the context manager.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from connector.dev import spawn
from connector.dev.jar_cache import COMPLETE, copy_dependencies, fetched_once
from connector.dev.spawn import free_port
from connector.paths import cache_dir

POM = Path(__file__).resolve().parent / "kafka-broker.pom.xml"
LOG4J = """log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text(encoding="utf-8"))
    if match is None:
        raise RuntimeError(f"{POM} names no kafka.version")
    return match.group(1)


def kafka_cache() -> Path:
    """The folder that holds (or will hold) ``libs/``: QCC_KAFKA_CACHE, else per Kafka version
    under the cache folder, so that a package naming another version fetches its own jars."""
    named = os.environ.get("QCC_KAFKA_CACHE")
    return Path(named) if named else cache_dir("kafka", kafka_version())


def broker_jars() -> Path:
    """The folder of broker jars, resolved with Maven on first use."""
    libs = kafka_cache() / "libs"
    if not (libs / COMPLETE).exists() and shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed once to fetch the Kafka broker jars from Maven Central")
    return fetched_once(libs, lambda staging: copy_dependencies(POM, staging, "-DincludeScope=runtime"))


class KafkaBroker(spawn.Service):
    """``with KafkaBroker() as broker: broker.bootstrap`` -> a running broker on loopback."""

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        heap: str = "512m",
        *,
        extra_listeners: dict[str, tuple[str, int]] | None = None,
        extra_props: dict[str, str] | None = None,
        format_args: list[str] | None = None,
    ) -> None:
        """``extra_listeners`` maps a listener name to (security protocol, port); ``extra_props``
        are added to server.properties; ``format_args`` to the storage format (e.g. --add-scram)."""
        self.extra_listeners = extra_listeners or {}
        self.extra_props = extra_props or {}
        self.format_args = format_args or []
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="qcc-kafka-"))
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap = heap
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": ",".join(
                [
                    f"PLAINTEXT://127.0.0.1:{self.port}",
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    *(f"{name}://127.0.0.1:{p}" for name, (_, p) in self.extra_listeners.items()),
                ]
            ),
            "advertised.listeners": ",".join(
                [
                    f"PLAINTEXT://127.0.0.1:{self.port}",
                    *(f"{name}://127.0.0.1:{p}" for name, (_, p) in self.extra_listeners.items()),
                ]
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(
                [
                    "PLAINTEXT:PLAINTEXT",
                    "CONTROLLER:PLAINTEXT",
                    *(f"{name}:{proto}" for name, (proto, _) in self.extra_listeners.items()),
                ]
            ),
            "log.dirs": str(logs),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "4",
            "auto.create.topics.enable": "true",
        }
        props.update(self.extra_props)
        config = self.data_dir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.data_dir / "log4j.properties").write_text(LOG4J.format(log=self.data_dir / "broker.log"))
        return config

    def _java(self, *args: str) -> list[str]:
        return ["java", f"-Xmx{self.heap}", f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
                "-cp", f"{broker_jars()}/*", *args]

    def start(self, timeout: float = 90.0) -> KafkaBroker:
        config = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            subprocess.run(
                self._java(
                    "kafka.tools.StorageTool", "format", "-t", str(uuid.uuid4()), "-c", str(config), *self.format_args
                ),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        with (self.data_dir / "stdout.log").open("ab") as out:  # the broker keeps its own copy
            # ends with the thread that started it (spawn.py): start brokers from the main thread
            self.process = subprocess.Popen(spawn.command(self._java("kafka.Kafka", str(config))),
                                            stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Kafka broker exited with {self.process.returncode}; see {self.data_dir}/stdout.log"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"Kafka broker did not listen on {self.bootstrap} within {timeout}s")

    @property
    def folder(self) -> Path:
        return self.data_dir
