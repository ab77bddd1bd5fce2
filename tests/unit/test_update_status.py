"""Which answers of an update count as applied (connector/qdrant/updates.py)."""

from __future__ import annotations

import pytest
from qdrant_client import models as qm

from connector.errors import UpdateNotApplied
from connector.qdrant.updates import ConfirmedUpdate, unapplied_statuses

COMPLETED = qm.UpdateResult(operation_id=1, status=qm.UpdateStatus.COMPLETED)
QUEUED = qm.UpdateResult(operation_id=2, status=qm.UpdateStatus.WAIT_TIMEOUT)
ACKNOWLEDGED = qm.UpdateResult(operation_id=3, status=qm.UpdateStatus.ACKNOWLEDGED)


def test_only_completed_counts_as_applied() -> None:
    assert unapplied_statuses([COMPLETED, COMPLETED]) == []
    assert unapplied_statuses([COMPLETED, QUEUED, ACKNOWLEDGED]) == ["wait_timeout", "acknowledged"]


async def test_a_queued_answer_raises_and_the_next_attempt_waits_as_the_server_allows() -> None:
    answers = [[COMPLETED, QUEUED], QUEUED, [COMPLETED]]
    timeouts: list[int | None] = []

    async def send(*, timeout: int | None) -> qm.UpdateResult | list[qm.UpdateResult]:
        timeouts.append(timeout)
        return answers.pop(0)

    update = ConfirmedUpdate(send, wait_timeout=5)
    for _ in range(2):
        with pytest.raises(UpdateNotApplied, match="wait_timeout"):
            await update()
    await update()
    assert timeouts == [5, None, None]
