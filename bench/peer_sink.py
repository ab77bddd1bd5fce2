"""The official Qdrant Kafka Connect sink (qdrant-kafka), run as a benchmark peer.

Its jar, two poms and a log4j2 configuration are in ``../shared/peers/qdrant-kafka/`` beside
the checkout (``QCC_PEER_QDRANT_KAFKA`` names another folder). The first use copies the poms
into ``<cache>/peers/<jar name>/`` (the cache folder of :mod:`connector.paths`), lets Maven
fetch the sink's runtime dependencies and a Kafka Connect runtime from Maven Central there,
and keeps the jars, so later runs start at once. The sink then runs in Kafka Connect
standalone mode, one task, with its defaults, against the run's broker and Qdrant server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from connector.dev import spawn
from connector.dev.jar_cache import COMPLETE, copy_dependencies, fetched_once
from connector.dev.spawn import free_port, terminate
from connector.paths import SOURCE_ROOT, cache_dir

SHARED_PEER = SOURCE_ROOT.parent / "shared" / "peers" / "qdrant-kafka" if SOURCE_ROOT is not None else None
CONNECTOR_CLASS = "io.qdrant.kafka.QdrantSinkConnector"


def peer_folder() -> tuple[Path | None, str]:
    """The folder holding the sink's jar and poms, or None and why there is none."""
    named = os.environ.get("QCC_PEER_QDRANT_KAFKA")
    folder = Path(named) if named else SHARED_PEER
    if folder is None:
        return None, "no qdrant-kafka peer: not a source checkout and QCC_PEER_QDRANT_KAFKA is not set"
    if not all((folder / pom).exists() for pom in ("plugin-pom.xml", "connect-pom.xml")) or not sink_jars(folder):
        return None, f"no qdrant-kafka peer: {folder} lacks its jar or its two poms"
    return folder, ""


def sink_jars(folder: Path) -> list[Path]:
    return sorted(folder.glob("qdrant-kafka-*.jar"))


def version_of(folder: Path) -> str:
    """``qdrant-kafka-1.4.1`` from the jar's name."""
    return sink_jars(folder)[-1].name.removesuffix(".jar")


def unavailable() -> str | None:
    """Why the sink cannot run here (no peer folder, no Java, no Maven for a first fetch), or None."""
    folder, reason = peer_folder()
    if folder is None:
        return reason
    if shutil.which("java") is None:
        return "no qdrant-kafka peer: Java (java) is not installed"
    if not (jars_cache(folder) / COMPLETE).exists() and shutil.which("mvn") is None:
        return "no qdrant-kafka peer: Maven (mvn) is needed once to fetch its dependencies from Maven Central"
    return None


def jars_cache(folder: Path) -> Path:
    return cache_dir("peers", version_of(folder))


def resolve_jars(folder: Path) -> Path:
    """The cache folder with ``plugins/qdrant-kafka/`` and ``connect-libs/``, fetched on first use."""

    def fill(staging: Path) -> None:
        for pom in ("plugin-pom.xml", "connect-pom.xml"):
            shutil.copy(folder / pom, staging / pom)  # Maven's target/ lands in the staging folder
        plugin = staging / "plugins" / "qdrant-kafka"
        copy_dependencies(staging / "plugin-pom.xml", plugin, "-DincludeScope=runtime", cwd=staging)
        copy_dependencies(staging / "connect-pom.xml", staging / "connect-libs", cwd=staging)
        shutil.copy(sink_jars(folder)[-1], plugin)

    return fetched_once(jars_cache(folder), fill)


def worker_properties(bootstrap: str, plugins: Path, state: Path, rest_port: int) -> str:
    """A standalone Connect worker: schemaless JSON values, string keys, offsets in a file."""
    return "".join(f"{k}={v}\n" for k, v in {
        "bootstrap.servers": bootstrap,
        "listeners": f"http://127.0.0.1:{rest_port}",
        "plugin.path": plugins,
        "plugin.discovery": "hybrid_warn",  # the jar has no service entries: Connect must scan for it
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "offset.storage.file.filename": state / "connect.offsets",
        "connector.client.config.override.policy": "All",  # lets the sink name its consumer group
    }.items())


def sink_properties(grpc_url: str, topic: str, group: str) -> str:
    """The sink with its defaults (500-record batches, no error tolerance), one task."""
    return "".join(f"{k}={v}\n" for k, v in {
        "name": "qdrant-sink", "connector.class": CONNECTOR_CLASS, "qdrant.grpc.url": grpc_url,
        "topics": topic, "tasks.max": "1",
        "consumer.override.group.id": group, "consumer.override.auto.offset.reset": "earliest",
    }.items())


class SinkProcess:
    """One Kafka Connect standalone worker running the sink; its files in ``workdir``."""

    def __init__(self, folder: Path, jars: Path, workdir: Path, bootstrap: str, grpc_url: str, topic: str,
                 group: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        worker, sink = workdir / "worker.properties", workdir / "sink.properties"
        worker.write_text(worker_properties(bootstrap, jars / "plugins", workdir, free_port()))
        sink.write_text(sink_properties(grpc_url, topic, group))
        self.log = workdir / "connect.log"
        command = ["java", f"-Dlog4j2.configurationFile=file:{folder / 'log4j2.properties'}",
                   f"-Dqk.log.file={self.log}", "-cp", f"{jars / 'connect-libs'}/*",
                   "org.apache.kafka.connect.cli.ConnectStandalone", str(worker), str(sink)]
        self.process = subprocess.Popen(spawn.command(command), stdout=(workdir / "stdout.log").open("ab"),
                                        stderr=subprocess.STDOUT)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"Kafka Connect exited with {self.process.returncode}; see {self.log}")

    def stop(self) -> None:
        terminate(self.process)
