"""The rows of docs/errors.md that need a running broker (``<broker>``): run as the unit harness
runs the others (tests/unit/test_cli_errors.py), against the session's broker, with topics of
their own created beforehand with 2 partitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import Stack
from tests.unit.test_cli_errors import BROKER_ROWS, check_row, prepared, row_id  # noqa: F401 - prepared: a fixture

pytestmark = pytest.mark.integration

KAFKA_SETTINGS = ("QCC_KAFKA_BOOTSTRAP_SERVERS", "QCC_CONSUMER_GROUP", "QCC_PATCH_TOPIC", "QCC_REEMBED_TOPIC",
                  "QCC_VERIFICATION_TOPIC", "QCC_DEAD_LETTER_TOPIC")


def test_there_are_broker_rows() -> None:
    assert len(BROKER_ROWS) >= 3


@pytest.mark.parametrize(("env", "args", "code", "said"), BROKER_ROWS, ids=[row_id(r) for r in BROKER_ROWS])
async def test_a_mistake_against_the_broker(env: str, args: str, code: int, said: str, kafka, tmp_path: Path,
                                            prepared: Path) -> None:  # noqa: F811 - the fixture
    stack = Stack(kafka.bootstrap, tmp_path / "stack", {})
    await stack.create_topics(partitions=2)
    (tmp_path / "run").mkdir()
    check_row(env, args, code, said, tmp_path / "run", prepared, {k: stack.env[k] for k in KAFKA_SETTINGS})
