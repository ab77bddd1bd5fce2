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
from typing import Any, Protocol
from urllib.parse import urlencode

from qdrant_client import AsyncQdrantClient, grpc
from qdrant_client import models as qm
from qdrant_client.conversions.conversion import RestToGrpc

from connector import metrics
from connector.errors import UpdateNotApplied

__all__ = ["ConfirmedUpdate", "SendUpdate", "grpc_deadline", "send_grpc_batch", "send_rest_batch", "unapplied_statuses"]


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


async def send_rest_batch(client: AsyncQdrantClient, collection: str, body: bytes, ordering: qm.WriteOrdering, *,
                          timeout: int | None) -> list[qm.UpdateResult]:
    """``POST /collections/{collection}/points/batch?wait=true`` with a body already encoded
    (connector/qdrant/rest_wire.py), through the client's own REST session (its address, API key,
    TLS, timeouts and the answer's errors are the client's); the same request and answer as
    ``client.batch_update_points`` over REST."""
    # The query is written into the address, not passed as ``params``: the client would make a
    # ``timeout`` there its HTTP timeout too, giving up just as the server answers (at 0, at once),
    # and httpx would drop a query in the address for ``params``.
    query = urlencode({"wait": "true", "ordering": str(ordering)} | ({} if timeout is None else {"timeout": timeout}))
    api: Any = client.http.points_api.api_client  # the async client's (typed as the sync one's)
    answer: qm.InlineResponse20018 = await api.request(
        type_=qm.InlineResponse20018, method="POST", url=f"/collections/{{collection_name}}/points/batch?{query}",
        path_params={"collection_name": collection}, headers={"Content-Type": "application/json"}, content=body)
    if answer.result is None:  # never seen: an answer without results cannot say the update was applied
        raise UpdateNotApplied("Qdrant answered a batch update without its results")
    return answer.result


# qdrant-client's statuses of an update answered over gRPC
GRPC_STATUSES = {grpc.UpdateStatus.Acknowledged: qm.UpdateStatus.ACKNOWLEDGED,
                 grpc.UpdateStatus.Completed: qm.UpdateStatus.COMPLETED,
                 grpc.UpdateStatus.WaitTimeout: qm.UpdateStatus.WAIT_TIMEOUT}


def grpc_deadline(client: AsyncQdrantClient) -> int | None:
    """The deadline qdrant-client gives its own gRPC calls: its timeout, in whole seconds."""
    return getattr(client._client, "_timeout", None)  # noqa: SLF001 - not exposed otherwise


async def send_grpc_batch(client: AsyncQdrantClient, collection: str, operations: list[grpc.PointsUpdateOperation],
                          ordering: qm.WriteOrdering, *, timeout: int | None) -> list[qm.UpdateResult]:
    """``UpdateBatch`` with ``wait=true`` and operations already built (connector/qdrant/grpc_wire.py),
    through the client's own points stub (its channels, API key metadata and interceptors); the
    same request and answer as ``client.batch_update_points`` over gRPC. A status qdrant-client
    does not know (its conversion raises) counts here as not applied, by its number."""
    request = grpc.UpdateBatchPoints(collection_name=collection, wait=True, operations=operations,
                                     ordering=RestToGrpc.convert_write_ordering(ordering), timeout=timeout)
    answer = await client.grpc_points.UpdateBatch(request, timeout=grpc_deadline(client))
    return [qm.UpdateResult.model_construct(
        operation_id=result.operation_id if result.HasField("operation_id") else None,
        status=GRPC_STATUSES.get(result.status) or f"grpc:{result.status}")  # type: ignore[arg-type] # unknown: not applied
        for result in answer.result]
