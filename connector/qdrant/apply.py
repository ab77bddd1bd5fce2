"""Apply a plan to Qdrant: ``batch_update_points(wait=True)`` per collection and window.

Contract:
- A filter-addressed op is sent alone; the id-addressed ops between two of them go as one
  batch (see :func:`split_at_filters` for why).
- A batch is not a transaction. When Qdrant rejects a batch, the applier finds the failing op
  by sending prefixes of the plan (bisection), splits a coalesced op back into its events,
  drops the single event that fails (every op of it not yet applied), and sends the rest again.
  Re-sending is safe because every id-addressed op is an assignment: applying an applied prefix
  again in the same order leaves the same state. The caller may name events that go with a
  refused one (``dependents``: planned on its effect); they are dropped too, unsent.
- Every request goes through the :class:`~connector.qdrant.retrying.RetryingClient`: what is
  not an event's fault is retried, never blamed. A request counts as applied only when Qdrant
  says ``completed``; one answered as queued is sent again (:mod:`connector.qdrant.updates`).
- Requests are cut by estimated size and point count (:mod:`connector.qdrant.request_size`);
  one refused as too large (413, the body limit, strict mode's per-request limits, the rate
  limiter's capacity) is halved and sent in parts, never blamed on an event.
- The applier never commits anything; the caller confirms and then acknowledges offsets.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from qdrant_client import models as qm

from connector.domain.operations import Op
from connector.domain.sharding import Selector
from connector.errors import PermanentError, RateLimited, RequestTooLarge
from connector.failpoints import Failpoints
from connector.qdrant.request_size import halve, point_count, requests_for
from connector.qdrant.retrying import RetryingClient
from connector.qdrant.updates import ConfirmedUpdate

__all__ = ["ApplyResult", "BatchApplier", "FailedEvent", "FilterHook", "apply_isolating", "split_at_filters"]

log = logging.getLogger(__name__)

# --- isolation of failing ops ---------------------------------------------------------------


@dataclass(frozen=True)
class FailedEvent:
    position: int
    error: PermanentError
    after: int | None = None  # not sent: it goes with this refused event (a dependent, see apply_isolating)


@dataclass(frozen=True)
class ApplyResult:
    applied: list[Op]
    failed: list[FailedEvent]
    requests: int


SendOps = Callable[[list[Op]], Awaitable[None]]
Dependents = Callable[[int], Sequence[int]]  # a refused event's position -> the events that go with it


class FilterHook(Protocol):
    """Called around each filter-addressed op the applier sends (alone, in order)."""

    async def before(self, op: Op) -> None: ...

    async def after(self, op: Op) -> None: ...


async def apply_isolating(ops: list[Op], send: SendOps, dependents: Dependents | None = None) -> ApplyResult:
    """Send ``ops``; on a permanent error, find and drop the failing event, send the rest.

    ``send`` raises :class:`PermanentError` when the destination rejects the ops; any
    :class:`TransientError` propagates (the caller retries the whole call, which is safe).
    Every op of the failing event is dropped from what is sent and reported applied (an event of a
    chunked document is several ops), and so are those of the events ``dependents`` names for it.
    A bisection's prefix may have applied some of them already: the read-back, which expects
    nothing of a refused event, reports what they changed as ``changed_by_rejected``.
    """
    ops = list(ops)
    failed: list[FailedEvent] = []
    requests = 0
    while ops:
        requests += 1
        try:
            await send(ops)
            break
        except PermanentError as whole_error:
            index, error, tries = await _first_failing(ops, send, whole_error)
            requests += tries
            bad = ops[index]
            if len(bad.parts) > 1:
                ops[index : index + 1] = _split(bad)
                continue
            position = bad.sources[0]
            failed.append(FailedEvent(position, error))
            del ops[index]
            done = {f.position for f in failed}
            with_it = [p for p in (dependents(position) if dependents is not None else ()) if p not in done]
            failed += [FailedEvent(p, error, after=position) for p in with_it]
            ops = _without(ops, {position, *with_it})
    return ApplyResult(applied=ops, failed=failed, requests=requests)


def _without(ops: list[Op], positions: set[int]) -> list[Op]:
    """``ops`` without the parts of these events (a coalesced op keeps its other events' parts, in order)."""
    kept: list[Op] = []
    for op in ops:
        if not set(op.sources) & positions:
            kept.append(op)
        elif len(op.parts) > 1:
            kept += _without(_split(op), positions)
    return kept


def _split(op: Op) -> list[Op]:
    """A coalesced op back as its single-event ops, each still able to fail alone."""
    return [part if part.parts else _with_self_part(part) for part in op.parts]


def _with_self_part(op: Op) -> Op:
    op.parts = [op]
    return op


async def _first_failing(ops: list[Op], send: SendOps, whole_error: PermanentError) -> tuple[int, PermanentError, int]:
    """Bisect for the shortest failing prefix; its last op is the one that fails."""
    ok, failing, error, tries = 0, len(ops), whole_error, 0
    while failing - ok > 1:
        mid = (ok + failing) // 2
        tries += 1
        try:
            await send(ops[:mid])
            ok = mid
        except PermanentError as exc:
            failing, error = mid, exc
    return failing - 1, error, tries


class BatchApplier:
    """Sends plans to one Qdrant through a :class:`RetryingClient`, isolating failing events."""

    def __init__(self, qdrant: RetryingClient, max_request_bytes: int = 16 * 1024 * 1024,
                 wait_timeout: int | None = None, ordering: str = "weak", failpoints: Failpoints | None = None) -> None:
        """``max_request_bytes`` bounds the estimated body of one batch request; ``wait_timeout``
        is Qdrant's own ``timeout`` of an update (None: the server's default, 60 s on 1.18, longer
        than the client's call timeout). Not a setting: over REST qdrant-client makes it the HTTP
        read timeout too, so the client would give up just as the server answers (the REST wire
        does not; filter ops still take the client's call). Requests are encoded and sent by
        ``qdrant``'s wire (connector/qdrant/wires/)."""
        self.qdrant = qdrant
        self.max_request_bytes = max_request_bytes
        self.wait_timeout = wait_timeout
        self.ordering = qm.WriteOrdering(ordering)  # weak, medium, strong: Qdrant's, for replicated collections
        self.max_request_points: int | None = None  # learned from servers that refused a request as too large
        self.failpoints = failpoints or Failpoints(None)

    async def apply(self, collection: str, ops: list[Op], around_filters: FilterHook | None = None,
                    shard_key: Selector | None = None, dependents: Dependents | None = None) -> ApplyResult:
        """Apply a plan with ``wait=True``, to ``shard_key``'s shards of a custom-sharded collection;
        see the module docstring for the contract.
        ``around_filters`` is called right before each filter-addressed op is sent, and right
        after it was applied (the read-back learns what it matched then); ``dependents``: the
        events that go with a refused one (:func:`apply_isolating`), also in later runs."""

        async def send(batch: list[Op]) -> None:
            for number, request in enumerate(requests_for(batch, self.max_request_bytes, self.max_request_points)):
                if number:  # a batch of several requests, killed between two (the fault tests)
                    self.failpoints.crash_if_active("crash-between-requests")
                await self._send(collection, request, shard_key)

        applied: list[Op] = []
        failed: list[FailedEvent] = []
        requests = 0
        for planned_run in split_at_filters(ops):
            run = _without(planned_run, {f.position for f in failed})  # an earlier run's refused events, dependents
            if not run:
                continue
            hook = around_filters if run[0].by_filter else None
            if hook is not None:
                await hook.before(run[0])
            result = await apply_isolating(run, send, dependents)
            if hook is not None and result.applied:
                await hook.after(run[0])
            applied += result.applied
            failed += result.failed
            requests += result.requests
        return ApplyResult(applied=applied, failed=failed, requests=requests)

    async def _send(self, collection: str, request: list[Op], shard_key: Selector | None = None) -> None:
        """One batch request. Refused as too large, it is halved and both halves sent in order;
        only one point that is too large alone is an event's fault. Rate limited, it is halved
        too after the wait: Qdrant takes the tokens op by op and refuses at the first op it
        cannot pay, after applying the ones before, so re-sending the whole request would spend
        the refilled tokens on that prefix again, every time."""
        points = sum(point_count(op) for op in request)
        wire = self.qdrant.wire
        send = partial(wire.send, collection, wire.encode(request, shard_key), self.ordering)
        try:
            await self.qdrant.call(f"batch_update_points({collection}, {len(request)} ops)",
                                   ConfirmedUpdate(send, self.wait_timeout), raise_rate_limit=points > 1)
            return
        except (RequestTooLarge, RateLimited) as exc:
            parts = _halves(request)
            if parts is None:
                if isinstance(exc, RateLimited):  # one point: cannot be cut, the wait is done
                    await self._send(collection, request, shard_key)
                    return
                raise PermanentError(f"a single point is too large for Qdrant even alone: {exc}") from exc
            if isinstance(exc, RequestTooLarge):  # a limit of the server: remember it (a rate limit passes)
                self.max_request_points = max(1, min(self.max_request_points or points, points // 2))
            log.warning("request of %d points refused (%s); sending it in two parts", points, exc)
        for part in parts:
            await self._send(collection, part, shard_key)


def _halves(request: list[Op]) -> tuple[list[Op], list[Op]] | None:
    """The request as two requests in order: split between ops, else split its one op."""
    if len(request) > 1:
        middle = len(request) // 2
        return request[:middle], request[middle:]
    halves = halve(request[0])
    return None if halves is None else ([halves[0]], [halves[1]])


def split_at_filters(ops: list[Op]) -> list[list[Op]]:
    """Runs of id-addressed ops, and each filter-addressed op alone, in order.

    Isolation re-sends prefixes, and a retry re-sends a whole request: safe for id-addressed
    ops (assignments), and for one filter-addressed op alone (it assigns constants to the
    points it matches, so twice is once), but not for a filter op followed by ops it could
    match: [delete where a=1, set a=1 on X] sent twice deletes X. So a filter op never shares
    a request.
    """
    runs: list[list[Op]] = []
    for op in ops:
        if op.by_filter or not runs or runs[-1][0].by_filter:
            runs.append([op])
        else:
            runs[-1].append(op)
    return runs
