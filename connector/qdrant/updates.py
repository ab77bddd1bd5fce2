"""One ``batch_update_points(wait=True)`` that counts only once Qdrant says it is applied.

A 200 answer is not always "applied". Each operation's result carries a status: ``completed``
(applied, visible to reads), ``acknowledged`` (written to the write-ahead log, applied later: the
answer to ``wait=false``), or ``wait_timeout`` (Qdrant 1.17+: the update outlived the request's
``timeout``, from 1.18 60 s by default, and is still queued). Only ``completed`` may let a window
count as applied: a read-back or a commit on a queued update is a guess.

A queued answer raises :class:`~connector.errors.UpdateNotApplied` (transient), so the retry loop
sends the same request again. That is safe and it is how the connector waits: Qdrant applies a
shard's updates in the order of its log, so once the re-sent copy is ``completed`` the queued
original was applied before it, and applying the same assignments (or one filter-addressed op
alone, see :func:`connector.qdrant.apply.split_at_filters`) twice in order has the effect of once.
The re-sent copy waits as long as the server's own limit allows, not the configured timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

from qdrant_client import models as qm

from connector import metrics
from connector.errors import UpdateNotApplied

__all__ = ["ConfirmedUpdate", "SendUpdate", "unapplied_statuses"]


def unapplied_statuses(results: Sequence[qm.UpdateResult]) -> list[str]:
    """The statuses of ``results`` that do not say "applied", in order (empty: all applied)."""
    return [str(result.status) for result in results if result.status != qm.UpdateStatus.COMPLETED]


UpdateAnswer = qm.UpdateResult | list[qm.UpdateResult]


class SendUpdate(Protocol):
    """An update call with ``wait=True`` bound, taking Qdrant's ``timeout``."""

    def __call__(self, *, timeout: int | None) -> Awaitable[UpdateAnswer]: ...


class ConfirmedUpdate:
    """A callable for :meth:`RetryingClient.call`: one update request (``send(timeout=...)``,
    with ``wait=True``), raising :class:`UpdateNotApplied` while Qdrant answers that it is queued
    rather than applied."""

    def __init__(self, send: SendUpdate, wait_timeout: int | None = None) -> None:
        """``wait_timeout`` is Qdrant's ``timeout`` of the first attempt (None: the server's
        default); an attempt after a queued answer sends none."""
        self.send = send
        self.wait_timeout = wait_timeout

    async def __call__(self) -> None:
        answer = await self.send(timeout=self.wait_timeout)
        unapplied = unapplied_statuses(answer if isinstance(answer, list) else [answer])
        if unapplied:
            self.wait_timeout = None  # the copy waits as long as the server allows
            metrics.UPDATES_NOT_APPLIED.inc()
            raise UpdateNotApplied(
                f"Qdrant queued the batch without applying it (status {', '.join(sorted(set(unapplied)))}); "
                "sending it again to wait for it"
            )
