"""A worker talks to the real Qdrant server over TLS (REST and gRPC) with a custom CA and an API
key or a JWT, and never shows the credential.

The server is the session's Qdrant binary started with TLS on both ports (certificate for
127.0.0.1 from a CA made by the test) and an API key, with JWT RBAC on so that a token signed
with that key works too. Trusted CA and right credential: ready, and the worker applies events.
Untrusted CA: the handshake fails, no request reaches the server. Wrong key or forged token:
the server refuses it (401/403 over REST, UNAUTHENTICATED/PERMISSION_DENIED over gRPC) and the
worker is not ready. In no case does the credential reach a log line, a metric or the settings
dump.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import models as qm

from connector.dev.qdrant_server import QdrantServer, server_start_script
from connector.dev.spawn import free_port
from tests.integration.harness import Stack, Worker, all_covered, http_get, produce, read_topic
from tests.qdrant_targets import QdrantTarget
from tests.security.certs import make_certificates

API_KEY = "qcc-tls-test-api-key-32-bytes-ok"  # JWT RBAC wants a key of 32 bytes or more


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, object], secret: str) -> str:
    """An HS256 token, the kind Qdrant accepts in the api-key header when JWT RBAC is on."""
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


TOKEN = make_jwt({"access": "m"}, API_KEY)  # full access
FORGED = make_jwt({"access": "m"}, "not-the-server-key-but-32-bytes!")
WRONG_KEY = "qcc-tls-test-wrong-key-of-32-byte"


class TlsQdrantServer(QdrantServer):
    """The real server with TLS on REST and gRPC: its URL is https, its readiness read over TLS."""

    def __init__(self, certs: dict[str, Path]) -> None:
        super().__init__(api_key=API_KEY, env={
            "QDRANT__SERVICE__ENABLE_TLS": "true",
            "QDRANT__TLS__CERT": str(certs["broker.pem"]),
            "QDRANT__TLS__KEY": str(certs["broker.pk8"]),
            "QDRANT__SERVICE__JWT_RBAC": "true",
        })
        self.ca_file = certs["ca.pem"]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_certificates(tmp_path_factory.mktemp("qdrant-tls"))


@pytest.fixture(scope="module")
def tls_server(certs: dict[str, Path]) -> Iterator[TlsQdrantServer]:
    script, reason = server_start_script()
    if script is None:
        pytest.skip(reason)
    server = TlsQdrantServer(certs)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def test_the_server_certificate_names_the_loopback_address(certs: dict[str, Path]) -> None:
    # clients check the address they dial (127.0.0.1) against the certificate's names
    names = subprocess.run(["openssl", "x509", "-in", str(certs["broker.pem"]), "-noout", "-ext", "subjectAltName"],
                           capture_output=True, text=True, check=True).stdout
    assert "IP Address:127.0.0.1" in names


CASES = {  # case: (credential, trust the CA, ready)
    "api-key": (API_KEY, True, True),
    "jwt": (TOKEN, True, True),
    "untrusted-ca": (TOKEN, False, False),  # the server's certificate is not trusted: never sends the key
    "wrong-key": (WRONG_KEY, True, False),  # refused as unauthenticated
    "forged-jwt": (FORGED, True, False),  # a token signed with another key: refused as forbidden
}
PROBE_DONE = "Qdrant probe done"  # the worker's debug line after each readiness probe (every 2 s)
# how the server refuses: (status in the worker's log, its own log line), per transport and case
REFUSALS = {
    ("rest", "wrong-key"): ("401", '"GET /collections HTTP/1.1" 401'),
    ("rest", "forged-jwt"): ("403", '"GET /collections HTTP/1.1" 403'),
    ("grpc", "wrong-key"): ("UNAUTHENTICATED", "gRPC /qdrant.Collections/List failed"),
    ("grpc", "forged-jwt"): ("PERMISSION_DENIED", "gRPC /qdrant.Collections/List failed"),
}


@pytest.mark.integration
@pytest.mark.server
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("transport", ["rest", "grpc"])
async def test_tls_custom_ca_and_credential(kafka, model_env, tmp_path: Path, tls_server: TlsQdrantServer,
                                            transport: str, case: str) -> None:
    key, trust_ca, ready = CASES[case]
    admin = QdrantTarget(transport, server=tls_server, api_key=API_KEY, ca_file=tls_server.ca_file)
    admin.wipe()
    client = admin.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.close()
    target = QdrantTarget(transport, server=tls_server, api_key=key, ca_file=tls_server.ca_file if trust_ca else None)
    http_port = free_port()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=target, extra_env={
        "QCC_HTTP_PORT": str(http_port), "QCC_HTTP_HOST": "127.0.0.1", "QCC_LOG_LEVEL": "debug"})
    await stack.create_topics()
    sent: list[tuple[int, int]] = []
    if ready:  # a refused worker would retry its window until killed: it only probes at idle
        events = [{"schema_version": 1, "collection": "docs", "op": "upsert", "points": [{"id": i, "vector": [1, i]}]}
                  for i in range(10)]
        sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"],
                             [(f"docs/{i}".encode(), json.dumps(e).encode()) for i, e in enumerate(events)])
    server_log_start = tls_server.log.stat().st_size
    worker = Worker(stack)
    try:
        if ready:
            verifications = await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"],
                                             until=all_covered(sent), timeout=90)
            assert all(v["verification"]["status"] == "verified" for v in verifications)

        def settled() -> bool:  # ready, or the reason it is not has shown up (its probe's lines all written)
            if ready:
                return http_get(http_port, "/readyz")[0] == 200
            output = worker.output()
            return ("Qdrant probe failed" in output and f"{PROBE_DONE}: failed" in output
                    and http_get(http_port, "/livez")[0] == 200)

        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not await asyncio.to_thread(settled):  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.5)
        # another probe either way: the state read below is not one probe's, and the next probe's
        # lines (the worker's, the server's) are in the logs searched for the credential too
        probes = worker.output().count(PROBE_DONE)
        await worker.wait_for_line(PROBE_DONE, timeout=30, after=probes, show="Qdrant probe")
        status, _ = await asyncio.to_thread(http_get, http_port, "/readyz")
        _, metrics = await asyncio.to_thread(http_get, http_port, "/metrics")
    finally:
        code = worker.stop()
    output = worker.output()
    server_log = tls_server.log.read_bytes()[server_log_start:].decode(errors="replace")
    assert (status == 200) is ready, output[-3000:]
    if ready:
        assert code == 0, output[-3000:]
        client = admin.client()
        try:
            assert client.count("docs").count == 10  # applied over TLS with the credential
        finally:
            client.close()
        if transport == "rest":
            assert '"GET /collections HTTP/1.1" 200' in server_log  # the probe's key was accepted
    elif not trust_ca:
        assert "CERTIFICATE_VERIFY_FAILED" in output or "certificate verify failed" in output
        assert "GET /collections" not in server_log
        assert "gRPC /qdrant" not in server_log
    else:
        in_output, in_server_log = REFUSALS[transport, case]
        assert in_output in output  # the refusal is logged...
        assert in_server_log in server_log
    assert "qdrant_connector_" in metrics
    dump = (await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "connector.cli", "settings"],
                                    env={**os.environ, **stack.env}, capture_output=True, text=True, check=True)).stdout
    assert '"qdrant_api_key": "**********"' in dump
    for text in (output, metrics, dump):
        assert key not in text
        assert key[:20] not in text
        assert key[-20:] not in text
