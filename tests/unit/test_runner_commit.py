"""The runner's commit after a window is best effort: a consumer that cannot commit now (broker
away, group rebalancing, stopped at shutdown) is logged and left to Faust's periodic commit; it
never ends the runner, which would leave the windows queued behind it unacknowledged and the
shutdown waiting for them."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, KafkaConnectionError
from faust.exceptions import ConsumerNotStarted

from connector.settings import Settings
from connector.stream.pipeline import Runner, WindowsInHand


class RefusingConsumer:
    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    async def commit(self) -> bool:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize("error", [
    ConsumerNotStarted("Consumer thread not yet started"), ConsumerStoppedError(),
    CommitFailedError("the group has already rebalanced"), KafkaConnectionError("broker away"),
])
async def test_a_commit_that_cannot_happen_now_is_logged_not_raised(error: Exception, tmp_path: Any,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    consumer = RefusingConsumer(error)
    app: Any = SimpleNamespace(consumer=consumer)
    runner = Runner(app, Settings(data_dir=tmp_path), processor=None,  # type: ignore[arg-type]  # not reached
                    in_hand=WindowsInHand(), stopping=lambda: False, crash_after_confirm=lambda: None)
    with caplog.at_level(logging.WARNING, logger="connector.stream.pipeline"):
        await runner.commit_acknowledged()
    assert consumer.calls == 1
    assert "commit after a window failed" in caplog.text


async def test_an_unexpected_commit_failure_is_not_hidden(tmp_path: Any) -> None:
    app: Any = SimpleNamespace(consumer=RefusingConsumer(TypeError("a bug")))
    runner = Runner(app, Settings(data_dir=tmp_path), processor=None,  # type: ignore[arg-type]  # not reached
                    in_hand=WindowsInHand(), stopping=lambda: False, crash_after_confirm=lambda: None)
    with pytest.raises(TypeError):
        await runner.commit_acknowledged()
