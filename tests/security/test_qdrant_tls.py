"""A worker talks to Qdrant over HTTPS with a custom CA and an API key (or JWT), and never shows it.

No Qdrant server can be installed here, so the far end is a small HTTPS listener (certificate
from a CA made by the test) that answers the one call the worker makes at idle, the readiness
probe's ``GET /collections``, the way Qdrant does: 200 with the right ``api-key`` header, 401
without. What is under test is the worker's side: trust of the custom CA, the header sent,
and that the key reaches no log line, metric or settings dump.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from connector.devbroker import free_port
from tests.integration.harness import Stack, Worker
from tests.security.certs import make_certificates

pytestmark = pytest.mark.integration

# shaped like a Qdrant JWT (header.claims.signature); Qdrant reads it from the api-key header
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJhY2Nlc3MiOiJydyJ9.c2lnbmF0dXJlLW5vdC10by1iZS1wcmludGVk"


class FakeQdrantEndpoint:
    """HTTPS on loopback; records the api-key header of each request it answers."""

    def __init__(self, certs: dict[str, Path]) -> None:
        self.port = free_port()
        self.keys_seen: list[str | None] = []
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ssl.load_cert_chain(certs["broker.pem"], certs["broker.pk8"])
        self._runner: web.AppRunner | None = None

    async def collections(self, request: web.Request) -> web.Response:
        key = request.headers.get("api-key")
        self.keys_seen.append(key)
        if key != TOKEN:
            return web.json_response({"status": {"error": "Must provide an API key or an Authorization bearer token"}},
                                     status=401)
        return web.json_response({"result": {"collections": []}, "status": "ok", "time": 0.0})

    async def __aenter__(self) -> FakeQdrantEndpoint:
        app = web.Application()
        app.router.add_get("/collections", self.collections)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._ssl).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_certificates(tmp_path_factory.mktemp("qdrant-tls"))


@pytest.mark.parametrize(("trust_ca", "key", "ready"), [
    (True, TOKEN, True),  # custom CA trusted, right key: ready
    (False, TOKEN, False),  # the server's certificate is not trusted: never sends the key
    (True, TOKEN[::-1], False),  # wrong key: Qdrant answers 401
], ids=["trusted-ca", "untrusted-ca", "wrong-key"])
async def test_https_custom_ca_and_key(kafka, model_env, tmp_path: Path, certs: dict[str, Path],
                                       trust_ca: bool, key: str, ready: bool) -> None:
    async with FakeQdrantEndpoint(certs) as endpoint:
        http_port = free_port()
        env = {"QCC_QDRANT_URL": f"https://127.0.0.1:{endpoint.port}", "QCC_QDRANT_API_KEY": key,
               "QCC_HTTP_PORT": str(http_port), "QCC_HTTP_HOST": "127.0.0.1", "QCC_LOG_LEVEL": "debug"}
        if trust_ca:
            env["QCC_QDRANT_CA_FILE"] = str(certs["ca.pem"])
        stack = Stack(kafka.bootstrap, tmp_path, model_env, extra_env=env)
        await stack.create_topics()
        worker = Worker(stack)
        try:
            def settled() -> bool:  # ready, or the reason it is not has shown up
                if ready:
                    return _get(http_port, "/readyz")[0] == 200
                return "Qdrant probe failed" in worker.output() and _get(http_port, "/livez")[0] == 200

            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and not await asyncio.to_thread(settled):
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.5)  # another probe either way
            status, _ = await asyncio.to_thread(_get, http_port, "/readyz")
            _, metrics = await asyncio.to_thread(_get, http_port, "/metrics")
        finally:
            worker.stop()
        output = worker.output()
    assert (status == 200) is ready, output[-3000:]
    if trust_ca:
        assert endpoint.keys_seen and set(endpoint.keys_seen) == {key}  # over TLS, in the api-key header
    else:
        assert endpoint.keys_seen == []  # the handshake failed before any request
        assert "CERTIFICATE_VERIFY_FAILED" in output or "certificate verify failed" in output
    if key != TOKEN:
        assert "401" in output  # the refusal is logged...
    assert "qdrant_connector_" in metrics
    dump = subprocess.run([sys.executable, "-m", "connector.cli", "settings"], env={**os.environ, **stack.env},
                          capture_output=True, text=True, check=True).stdout
    assert '"qdrant_api_key": "**********"' in dump
    for text in (output, metrics, dump):
        assert key not in text and key[:20] not in text  # ...without the key
