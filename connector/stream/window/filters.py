"""What each filter-addressed op touches, taken as it is applied (the read-back's input for it).

The applier sends a filter op in a request of its own, after the requests before it were
applied (``wait=true``), so a scroll of its filter right before it is sent finds exactly the
points it will change, even when an earlier op of the window wrote what the filter matches.
The scroll takes the payload of the first ``QCC_VERIFY_FILTER_MAX_POINTS`` matched points (the
read-back compares those point by point) and only the ids of the rest (for the digest and the
count). Beyond the bound, where a filter can say it, Qdrant counts right after the op the points
that match the filter but are not as written: after a ``delete`` nothing matches; after a
``set_payload``/``overwrite_payload`` of scalar values no matching point lacks them. Another
writer between the scroll and the op shows up as a mismatch, which is what an audit wants to know.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from qdrant_client import models as qm

from connector.domain.changes import normalize_id
from connector.domain.operations import Op, PointKey
from connector.domain.records import FilterCheck, VerificationOutcome
from connector.domain.semantics import PointState, State
from connector.domain.sharding import Selector
from connector.domain.verifier import FilterMatch
from connector.errors import PermanentError
from connector.failpoints import Failpoints
from connector.qdrant.reads import count_points, scroll_pages
from connector.qdrant.retrying import RetryingClient
from connector.stream.window.items import Item
from connector.stream.window.report import points_touched

__all__ = ["FilterMatcher", "count_filter", "filter_checks"]

log = logging.getLogger(__name__)

LISTED_FILTERS = 100  # filter checks listed in one verification event
SCALARS = (str, int, bool)  # values a match condition can test for equality (not floats: range only)


def count_filter(op: Op, matched_filter: dict[str, Any]) -> qm.Filter | None:
    """A filter of the points that match ``matched_filter`` but are not as ``op`` leaves them,
    or None where a filter cannot say it."""
    base = qm.Filter.model_validate(matched_filter)
    if op.kind == "delete":
        return base
    if op.kind in ("set_payload", "overwrite_payload") and op.key is None and op.payload:
        if not all(isinstance(value, SCALARS) for value in op.payload.values()):
            return None
        written: list[qm.Condition] = [
            qm.FieldCondition(key=key, match=qm.MatchValue(value=value)) for key, value in op.payload.items()
        ]
        return qm.Filter(must=[base], must_not=[qm.Filter(must=written)])
    return None


class FilterMatcher:
    """The applier's hook around each filter op of one collection's window (see the module)."""

    def __init__(self, qdrant: RetryingClient, collection: str, bound: int, failpoints: Failpoints,
                 shard_key: Selector | None = None) -> None:
        self.qdrant, self.collection, self.bound, self.failpoints = qdrant, collection, bound, failpoints
        self.shard_key = shard_key  # the batch's: its filters match in those shards only
        self.matches: dict[int, FilterMatch] = {}
        self.methods: dict[int, Literal["points", "count", "sample"]] = {}
        self.counts_after: dict[int, int] = {}
        self._filters: dict[int, dict[str, Any]] = {}

    async def before(self, op: Op) -> None:
        """Take the points ``op``'s filter matches now, just before it is sent."""
        if op.filter is None:
            return
        matched_filter = op.filter
        ids: list[PointKey] = []
        states: State = {}
        pages = scroll_pages(self.qdrant, self.collection, scroll_filter=qm.Filter.model_validate(matched_filter),
                             with_payload=True, with_vectors=False, page_size=min(self.bound + 1, 1000),
                             shard_key=self.shard_key)
        async for page, next_offset in pages:
            for record in page:
                pid = normalize_id(record.id)
                ids.append(pid)
                if len(states) < self.bound:
                    states[pid] = PointState(payload=dict(record.payload or {}))
            if len(ids) > self.bound and next_offset is not None:
                ids += await self._ids_from(matched_filter, next_offset)
                break
        self.matches[id(op)] = FilterMatch(ids=ids, states=states)
        self._filters[id(op)] = matched_filter
        self.methods[id(op)] = "points" if len(ids) <= self.bound else (
            "count" if count_filter(op, matched_filter) is not None else "sample")
        if ids and self.failpoints.active("drop-filter-match"):
            # stands in for a server that leaves out part of what a filter matched
            left_out = ids[0]
            op.filter = {"must": [matched_filter], "must_not": [{"has_id": [left_out]}]}
            log.warning("failpoint drop-filter-match: point %s left out of a %s by filter", left_out, op.kind)

    async def after(self, op: Op) -> None:
        """Right after ``op`` was applied: the count check, where the match was over the bound."""
        if self.methods.get(id(op)) != "count":
            return
        counted = count_filter(op, self._filters[id(op)])
        if counted is None:
            return
        try:
            self.counts_after[id(op)] = await count_points(self.qdrant, self.collection, counted,
                                                           shard_key=self.shard_key)
        except PermanentError as exc:  # e.g. strict mode refuses the count on an unindexed key
            log.warning("count check of a %s by filter refused (%s); verified by its first %d points",
                        op.kind, exc, self.bound)
            self.methods[id(op)] = "sample"

    async def _ids_from(self, matched_filter: dict[str, Any], start: Any) -> list[PointKey]:
        ids: list[PointKey] = []
        pages = scroll_pages(self.qdrant, self.collection, scroll_filter=qm.Filter.model_validate(matched_filter),
                             with_payload=False, with_vectors=False, page_size=1000, start=start,
                             shard_key=self.shard_key)
        async for page, _ in pages:
            ids += [normalize_id(record.id) for record in page]
        return ids


def filter_checks(outcome: VerificationOutcome, matcher: FilterMatcher, applied: list[Op],
                  by_position: dict[int, Item]) -> VerificationOutcome:
    """``outcome`` with one :class:`FilterCheck` per applied filter op, in window order; a count
    check that found points not as written makes it a mismatch."""
    checks: list[FilterCheck] = []
    counted_wrong: list[str] = []
    for op in applied:
        match = matcher.matches.get(id(op)) if op.by_filter else None
        if match is None:
            continue
        record = by_position[op.sources[0]].record
        count_after = matcher.counts_after.get(id(op))
        checks.append(FilterCheck(
            partition=record.partition, offset=record.offset, op=op.kind, method=matcher.methods[id(op)],
            matched=len(match.ids), checked_points=len(match.states), ids_digest=points_touched(match.ids).digest,
            count_after=count_after,
        ))
        if count_after:
            counted_wrong.append(f"{count_after} points still match the {op.kind} by filter of "
                                 f"{record.partition}:{record.offset} but are not as it wrote them")
    update: dict[str, Any] = {"filters": checks[:LISTED_FILTERS]}
    if counted_wrong:
        update.update(status="mismatch", mismatch_count=outcome.mismatch_count + len(counted_wrong),
                      reason="; ".join(counted_wrong))
    return outcome.model_copy(update=update)
