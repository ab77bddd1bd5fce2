"""Settings that cannot work are refused at load, and what is refused is what the clients could
not use: a broker list accepted here is read the same by aiokafka and by Faust, a Qdrant URL
accepted here is one qdrant-client takes. Settings that do nothing as given are warnings, one line
each; an answer no Qdrant server gives is a configuration error, not an event's fault.
(docs/errors.md holds the one-line messages, row by row.)"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka.conn import collect_hosts
from faust.transport.drivers.aiokafka import server_list
from faust.utils.urls import urllist
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import UnexpectedResponse

from connector.errors import (
    AccessDenied,
    CollectionMissing,
    ConfigurationError,
    PermanentError,
    RequestTooLarge,
    TransientError,
)
from connector.qdrant import classify
from connector.setting_warnings import TOOL_VARIABLES, ineffective_settings, setting_warnings, unknown_variables
from connector.settings import Settings, bootstrap_problem, qdrant_url_problem, topic_problem

PROJECT = Path(__file__).resolve().parents[2]

HOSTS = st.sampled_from(["kafka", "kafka-1.example.com", "10.0.0.7", "k_1", "[::1]", "[fe80::1]", "", " kafka ",
                         "kafka://a", "a b", "::1", "[::1", "[nope]", "host]", "ka:fka"])
PORTS = st.one_of(st.none(), st.integers(0, 70_000).map(str), st.sampled_from(["", "x", "90 92", "-1", "+1"]))
ENTRIES = st.builds(lambda host, port: host if port is None else f"{host}:{port}", HOSTS, PORTS)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(("QCC_", "QDRANT_"))}


@hypothesis_settings(deadline=None)  # a Settings and Faust's URLs per example: slow on a loaded machine, not wrong
@given(st.lists(ENTRIES, min_size=1, max_size=3).map(",".join))
def test_a_broker_list_accepted_is_read_alike_by_aiokafka_and_faust(servers: str) -> None:
    if bootstrap_problem(servers) is not None:
        return
    by_aiokafka = [(host, port) for host, port, _ in collect_hosts(servers, randomize=False)]
    assert all(host and 1 <= port <= 65535 for host, port in by_aiokafka), by_aiokafka
    faust_url = Settings(kafka_bootstrap_servers=servers).kafka_broker_url()  # the worker's form
    by_faust = [server.rsplit(":", 1) for server in server_list(urllist(faust_url, default_scheme="kafka"), 9092)]
    assert [(host.strip("[]"), int(port)) for host, port in by_faust] == by_aiokafka


@pytest.mark.parametrize(("servers", "said"), [
    ("", "no broker named"),
    (" , ", "no broker named"),
    ("a:9092,,b:9092", "an empty entry between commas"),
    ("kafka:notaport", "'notaport' is not a port (1-65535)"),
    ("kafka:0", "'0' is not a port"),
    ("kafka:70000", "'70000' is not a port"),
    ("kafka://a:9092", "has a scheme"),
    ("::1", "an IPv6 address goes in brackets, e.g. [::1]:9092"),
    ("a b:9092", "is not a host name or address"),
])
def test_a_broker_list_refused_says_why(servers: str, said: str) -> None:
    problem = bootstrap_problem(servers)
    assert problem is not None
    assert said in problem


URLS = st.builds(lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
                 st.sampled_from(["http://", "https://", "htp://", "grpc://", "", "http:/", "HTTP://"]),
                 st.sampled_from(["qdrant", "127.0.0.1", "localhost", "[::1]", "", "q.example.com"]),
                 st.one_of(st.just(""), st.integers(0, 70_000).map(lambda p: f":{p}"), st.just(":x")),
                 st.sampled_from(["", "/", "/prefix"]))


@hypothesis_settings(deadline=None)  # a client per example
@given(URLS)
def test_a_qdrant_url_accepted_is_one_qdrant_client_takes(url: str) -> None:
    if qdrant_url_problem(url) is not None:
        return
    client = QdrantClient(url=url, check_compatibility=False)  # makes no request
    client.close()


@pytest.mark.parametrize(("url", "said"), [
    ("htp://127.0.0.1:1", "the scheme must be http or https, not 'htp'"),
    ("qdrant:6333", "no scheme: write http://qdrant:6333"),
    ("http://:6333", "no host"),
    ("http://qdrant:x", "the port must be a number from 1 to 65535"),
    ("http://qdrant:0", "the port must be a number from 1 to 65535"),
])
def test_a_qdrant_url_refused_says_why(url: str, said: str) -> None:
    problem = qdrant_url_problem(url)
    assert problem is not None
    assert said in problem


@pytest.mark.parametrize("name", ["", ".", "..", "a b", "a/b", "ä", "x" * 250])
def test_a_topic_kafka_refuses_is_refused(name: str) -> None:
    assert topic_problem(name) is not None


@pytest.mark.parametrize("name", ["qdrant.patches", "a_b-c.1", "x" * 249])
def test_a_topic_kafka_takes_is_taken(name: str) -> None:
    assert topic_problem(name) is None


def test_kafka_names_are_taken_in_any_case() -> None:
    settings = Settings(kafka_security_protocol="sasl_ssl", kafka_sasl_mechanism="scram-sha-256",
                        kafka_sasl_username="u", kafka_sasl_password="p")
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")


def test_every_qcc_variable_the_project_reads_is_a_setting_or_a_tool_variable() -> None:
    """So that no variable the project itself uses is warned about as unknown."""
    read = re.compile(r"""(?:environ(?:\.get)?\(?\[?|getenv\()\s*["'](QCC_\w+)|\$\{?(QCC_\w+)""")
    found = set()
    for path in [*PROJECT.glob("connector/**/*.py"), *PROJECT.glob("tests/**/*.py"), *PROJECT.glob("bench/**/*.py"),
                 *PROJECT.glob("scripts/*"), *PROJECT.glob(".ci/*"), PROJECT / "Dockerfile"]:
        if path.is_file():
            found |= {a or b for a, b in read.findall(path.read_text(errors="replace"))}
    settings = {f"QCC_{field.upper()}" for field in Settings.model_fields}
    assert found, "the scan found no variable read at all"
    assert found - settings - TOOL_VARIABLES == set()
    assert unknown_variables(dict.fromkeys(found | TOOL_VARIABLES, "1")) == []


def test_an_unknown_variable_is_named_with_the_nearest_setting() -> None:
    assert unknown_variables({"QCC_KAFKA_BOOTSTRAP_SERVER": "k:9092", "QCC_QDRANT_URI": "http://q:6333",
                              "qcc_window_max_events": "5", "QCC_NOTHING_LIKE_IT": "1", "PATH": "/bin"}) == [
        "QCC_KAFKA_BOOTSTRAP_SERVER is not a setting and is ignored: did you mean QCC_KAFKA_BOOTSTRAP_SERVERS?",
        "QCC_NOTHING_LIKE_IT is not a setting and is ignored: the README's Settings table lists every setting",
        "QCC_QDRANT_URI is not a setting and is ignored: did you mean QCC_QDRANT_URL?",
    ]


@pytest.mark.parametrize(("given", "said"), [
    ({"qdrant_api_key": "k"}, "QCC_QDRANT_API_KEY is not used in local mode"),
    ({"qdrant_prefer_grpc": True}, "QCC_QDRANT_PREFER_GRPC is not used in local mode"),
    ({"qdrant_url": "http://q:6333", "qdrant_path": Path("data")}, "QCC_QDRANT_PATH is not used"),
    ({"qdrant_url": "http://q:6333", "qdrant_grpc_port": 7000}, "QCC_QDRANT_GRPC_PORT is not used"),
    ({"kafka_sasl_username": "u"}, "QCC_KAFKA_SASL_USERNAME is not used with QCC_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
    ({"cdc_mapping": Path("mapping.yaml")}, "QCC_CDC_MAPPING maps no records"),
    ({"retry_initial_seconds": 60.0}, "QCC_RETRY_INITIAL_SECONDS=60 is above QCC_RETRY_MAX_SECONDS=30"),
])
def test_a_setting_that_does_nothing_is_one_line(given: dict[str, object], said: str) -> None:
    lines = ineffective_settings(Settings(**given))  # type: ignore[arg-type]
    assert [line for line in lines if said in line] == lines, lines
    assert len(lines) == 1


def test_defaults_are_said_nothing_about() -> None:
    assert setting_warnings(Settings(), _clean_env()) == []


# What a server answers, and what the answer means: a web server's page is no Qdrant server.
HTML = b"<!DOCTYPE HTML>\n<html><body><h1>Error response</h1><p>Error code: 404</p></body></html>\n"


def _answer(status: int, body: bytes, content_type: str = "text/html") -> UnexpectedResponse:
    return UnexpectedResponse(status, "x", body, httpx.Headers({"Content-Type": content_type}))


@pytest.mark.parametrize(("error", "kind"), [
    (_answer(404, HTML), ConfigurationError),
    (_answer(405, HTML), ConfigurationError),
    (_answer(400, b"Bad Request", "text/plain"), ConfigurationError),
    (orjson.JSONDecodeError("Expecting value", "<html>", 0), ConfigurationError),  # a 200 page, read as JSON
    (_answer(404, b'{"status":{"error":"Not found: Collection `docs` doesn\'t exist!"},"time":0.0}',
             "application/json"), CollectionMissing),
    (_answer(400, b'{"status":{"error":"Format error in JSON body"},"time":0.0}', "application/json"), PermanentError),
    (_answer(404, b""), PermanentError),  # Qdrant's own answer to a path it lacks (an older server)
    (_answer(502, HTML), TransientError),  # a proxy while Qdrant restarts
    (_answer(413, HTML), RequestTooLarge),  # a proxy's body limit
    (_answer(401, HTML), AccessDenied),  # a proxy's authentication
])
def test_an_answer_no_qdrant_server_gives_is_a_configuration_error(error: BaseException, kind: type) -> None:
    classified = classify(error)
    assert type(classified) is kind, classified
    if kind is ConfigurationError:
        assert "QCC_QDRANT_URL" in str(classified)
        assert "<" not in str(classified)


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False, env={**_clean_env(), "HF_HUB_OFFLINE": "1", **env})


def test_settings_says_each_warning_once_and_succeeds(tmp_path: Path) -> None:
    result = _run(["settings"], {"QCC_QDRANT_URI": "http://qdrant:6333", "QCC_QDRANT_API_KEY": "k3y"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: QCC_QDRANT_URI is not a setting and is ignored: did you mean QCC_QDRANT_URL?",
        ("warning: QCC_QDRANT_API_KEY is not used in local mode (QCC_QDRANT_URL is not set): set QCC_QDRANT_URL "
        "for a server"),
    ]
    assert json.loads(result.stdout)["qdrant_url"] is None
    assert "k3y" not in result.stdout + result.stderr


class _WebPages(http.server.BaseHTTPRequestHandler):
    """A web server that is not Qdrant: an HTML page for every request, 404 or (``ok``) 200."""

    ok = False

    def _page(self) -> None:
        self.send_response(200 if self.ok else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(HTML)))
        self.end_headers()
        self.wfile.write(HTML)

    do_GET = do_POST = do_PUT = _page

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def web_server(ok: bool) -> Iterator[str]:
    """A web server that answers every request with an HTML page, 200 (``ok``) or 404."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Pages", (_WebPages,), {"ok": ok}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# verify against a 404 page retried a POST answered 501 forever; export against it printed the page
@pytest.mark.parametrize(("command", "ok"), [("export docs out.jsonl", False), ("export docs out.jsonl", True),
                                             ("verify docs other", False)])
def test_a_url_that_is_not_qdrant_is_one_line(command: str, ok: bool, tmp_path: Path) -> None:
    with web_server(ok) as url:
        result = _run(command.split(), {"QCC_QDRANT_URL": url}, tmp_path)
    assert result.returncode == 78, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr  # one line
    assert "which no Qdrant server does" in result.stderr
    assert "QCC_QDRANT_URL" in result.stderr
    assert "<" not in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
