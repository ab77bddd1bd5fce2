"""The Qdrant servers the README's "Supported versions" table names, each a real server of that
version: the worker reads the version the server answers (REST ``GET /`` and gRPC
``HealthCheck``), turns off what the version lacks, finds a custom-sharded collection's keys
(listed from 1.17, from the cluster info before), and streams events end to end over REST and
gRPC. A server older than the floor (1.13) is refused with one line and exit 78.

``QCC_QDRANT_SERVER_VERSIONS`` is a JSON list of start scripts (each run as
``SCRIPT STORAGE_DIR HTTP_PORT GRPC_PORT``, as ``QCC_QDRANT_SERVER_START``; docs/testing.md),
default: the one the tests use. A script that is absent skips with the reason. A listed server
whose binary reports a version below the floor is not streamed on: it must be refused (over
gRPC). The refusal is also tested on a tiny HTTP server that answers ``GET /`` as Qdrant 1.12.6
does (REST; CI builds no server that old: docs/testing.md says how to build one), and on the pure
logic (tests/unit/test_versions.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient
from qdrant_client import models as qm

from connector.dev.qdrant_server import QdrantServer, server_start_script
from connector.dev.spawn import free_port
from connector.exit_codes import EX_CONFIG
from connector.qdrant import make_retrying
from connector.qdrant.catalog import CollectionCatalog
from connector.qdrant.server_version import ask_server_version
from connector.versions import Feature, parse_version
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = [pytest.mark.integration, pytest.mark.server]

ROOT = Path(__file__).resolve().parents[2]


def start_scripts() -> list[Path]:
    named = os.environ.get("QCC_QDRANT_SERVER_VERSIONS")
    if named:
        return [Path(path) for path in json.loads(named)]
    default, _ = server_start_script()
    return [default] if default is not None else []


def binary_version(script: Path) -> str | None:
    """The version the server's binary reports (``start --path`` names it), when the script says."""
    found = subprocess.run([str(script), "--path"], capture_output=True, text=True, timeout=30, check=False)
    if found.returncode != 0 or not found.stdout.strip():
        return None
    said = subprocess.run([found.stdout.strip(), "--version"], capture_output=True, text=True, timeout=30,
                          check=False)
    return said.stdout.split()[-1] if said.returncode == 0 and said.stdout.split() else None


def below_the_floor(script: Path) -> bool:
    """Is the server this script starts older than the oldest supported (its binary says, unstarted)?"""
    version = binary_version(script) if script.exists() else None
    return version is not None and parse_version(version).refusal() is not None


SUPPORTED_SCRIPTS = [script for script in start_scripts() if not below_the_floor(script)]
OLDER_SCRIPTS = [script for script in start_scripts() if below_the_floor(script)]


@pytest.fixture(scope="module", params=SUPPORTED_SCRIPTS or [None], ids=str)
def versioned_server(request: pytest.FixtureRequest) -> Iterator[QdrantServer]:
    script: Path | None = request.param
    if script is None:
        pytest.skip(server_start_script()[1] or "every listed server is older than the floor: only the refusal runs")
    if not script.exists():
        pytest.skip(f"{script} is absent (QCC_QDRANT_SERVER_VERSIONS): that version is not built here")
    with QdrantServer(script=script) as server:
        yield server


def target(server: QdrantServer, wire: str) -> QdrantTarget:
    return QdrantTarget(wire, server=server)


@pytest.mark.parametrize("wire", ["rest", "grpc"])
async def test_the_version_the_server_answers(versioned_server: QdrantServer, wire: str, tmp_path: Path) -> None:
    stack = Stack("127.0.0.1:1", tmp_path, {}, qdrant=target(versioned_server, wire))
    settings = stack.settings()
    client = AsyncQdrantClient(url=versioned_server.url, prefer_grpc=wire == "grpc",
                               grpc_port=versioned_server.grpc_port)
    try:
        server = await ask_server_version(client, settings)
    finally:
        await client.close()
    expected = binary_version(versioned_server.script)
    if expected is not None:
        assert server == parse_version(expected)
    assert server.refusal() is None
    print(f"{versioned_server.script}: Qdrant {server} over {wire}, lacking {[f.name for f in server.lacking()]}")


@pytest.fixture(scope="module")
def one_node_cluster(versioned_server: QdrantServer) -> Iterator[QdrantServer]:
    """The same version in distributed mode (custom sharding needs it), a cluster of one node."""
    with QdrantServer(script=versioned_server.script, p2p_port=free_port()) as server:
        yield server


@pytest.mark.parametrize("wire", ["rest", "grpc"])
async def test_shard_keys_are_found_on_each_version(one_node_cluster: QdrantServer, wire: str,
                                                     tmp_path: Path) -> None:
    versioned_server = one_node_cluster
    sync = QdrantClient(url=versioned_server.url)
    name = f"tenants_{wire}"
    sync.create_collection(name, vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT),
                           sharding_method=qm.ShardingMethod.CUSTOM)
    for key in ("acme", "globex"):
        sync.create_shard_key(name, key)
    sync.close()
    settings = Stack("127.0.0.1:1", tmp_path, {}, qdrant=target(versioned_server, wire)).settings()
    qdrant = make_retrying(settings)
    try:
        qdrant.server = await ask_server_version(qdrant.client, settings)
        schema = await CollectionCatalog(qdrant).get(name)
    finally:
        await qdrant.client.close()
    assert schema is not None
    assert schema.shard_keys == frozenset({"acme", "globex"})
    how = "listed" if qdrant.server.has(Feature.LIST_SHARD_KEYS) else "read from the cluster info"
    print(f"Qdrant {qdrant.server}: shard keys {how}")


@pytest.mark.parametrize("wire", ["rest", "grpc"])
async def test_a_stream_on_each_version(kafka: Any, model_env: dict[str, str], tmp_path: Path,
                                        versioned_server: QdrantServer, wire: str) -> None:
    qdrant_target = target(versioned_server, wire)
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target)
    await stack.create_topics()
    client = QdrantClient(url=versioned_server.url)
    collection = f"docs_{wire}"
    if client.collection_exists(collection):
        client.delete_collection(collection)
    client.create_collection(collection, vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT))
    client.close()
    events = [{"schema_version": 1, "collection": collection, "op": "upsert",
               "points": [{"id": i, "vector": [1, 0, 0, float(i)], "payload": {"n": i}}]} for i in range(20)]
    events += [{"schema_version": 1, "collection": collection, "op": "set_payload", "ids": [i],
                "payload": {"seen": True}} for i in range(20)]
    sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"],
                         [(f"{collection}/{i % 20}".encode(), json.dumps(e).encode()) for i, e in enumerate(events)])
    worker = Worker(stack)
    try:
        verifications = await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"],
                                         until=all_covered(sent), timeout=90)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    messages = [json.loads(line).get("message", "") for line in worker.output().splitlines() if line.startswith("{")]
    expected = binary_version(versioned_server.script)
    if expected is not None:
        assert f"Qdrant server version {expected}" in messages
        for feature in parse_version(expected).lacking():  # each said once, at info
            assert messages.count(f"Qdrant {expected} lacks {feature.value}") == 1, messages[:40]
    assert all(v["verification"]["status"] == "verified" for v in verifications)
    client = QdrantClient(url=versioned_server.url)
    points = {p.id: p.payload for p in client.scroll(collection, limit=100)[0]}
    client.close()
    assert points == {i: {"n": i, "seen": True} for i in range(20)}


class OldQdrant(BaseHTTPRequestHandler):
    """Answers as Qdrant 1.12.6 does to ``GET /`` and ``GET /collections`` (CI builds no server that old)."""

    def do_GET(self) -> None:
        answers = {"/": {"title": "qdrant - vector search engine", "version": "1.12.6", "commit": None},
                   "/collections": {"result": {"collections": []}, "status": "ok", "time": 0.0}}
        body = json.dumps(answers.get(self.path.split("?")[0], {"status": {"error": "Not found"}})).encode()
        self.send_response(200 if self.path.split("?")[0] in answers else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(params=["stand-in", *OLDER_SCRIPTS], ids=str)
def old_server(request: pytest.FixtureRequest) -> Iterator[tuple[dict[str, str], str]]:
    """Settings that reach a server older than the floor, and the version it answers: the stand-in
    above (REST), or a real one that ``QCC_QDRANT_SERVER_VERSIONS`` lists (over gRPC: REST is the
    stand-in's)."""
    if request.param != "stand-in":
        with QdrantServer(script=request.param) as real:
            yield ({"QCC_QDRANT_URL": real.url, "QCC_QDRANT_PREFER_GRPC": "true",
                    "QCC_QDRANT_GRPC_PORT": str(real.grpc_port)}, str(binary_version(request.param)))
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), OldQdrant)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"QCC_QDRANT_URL": f"http://127.0.0.1:{server.server_address[1]}"}, "1.12.6"
    finally:
        server.shutdown()


@pytest.mark.parametrize("command", [["worker"], ["export", "docs", "out.jsonl"]])
def test_a_server_older_than_the_floor_is_one_line_and_exit_78(old_server: tuple[dict[str, str], str],
                                                               model_env: dict[str, str], tmp_path: Path,
                                                               command: list[str]) -> None:
    reach, version = old_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCC_")}
    env.update(model_env)
    env.update({**reach, "QCC_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                "QCC_DATA_DIR": str(tmp_path / "state"), "QCC_HTTP_PORT": "0", "PYTHONPATH": str(ROOT)})
    done = subprocess.run([sys.executable, "-m", "connector.cli", *command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == EX_CONFIG, output
    said = [line for line in output.splitlines() if version in line]
    assert len(said) == 1, output
    assert "older than the oldest supported, 1.13" in said[0]
    assert "Traceback" not in output
