"""The read-back: the touched points read after applying (through the client's wire,
connector/qdrant/reads.py ``read_state``) and compared with what the plan should have left
(connector/domain/verifier.py)."""

from __future__ import annotations

from collections.abc import Mapping

from connector.domain.operations import Op, PointKey
from connector.domain.records import VerificationOutcome
from connector.domain.schema import CollectionSchema
from connector.domain.semantics import State
from connector.domain.sharding import Selector
from connector.domain.verifier import (
    FilterMatch,
    compare,
    expected_state,
    resolve_filters,
    touched_vectors,
    vectors_to_read,
)
from connector.qdrant.reads import read_state
from connector.qdrant.retrying import RetryingClient
from connector.stream.window.items import ids_of

__all__ = ["verify_applied"]


async def verify_applied(qdrant: RetryingClient, schema: CollectionSchema, before: State, read: set[PointKey],
                         applied: list[Op], rejected: list[Op],
                         matches: Mapping[int, FilterMatch] | None = None, *,
                         shard_key: Selector | None = None, payload: bool = True) -> VerificationOutcome:
    """Read back the points of the applied ops, and of the rejected ones: a server applies a
    multi-point op in chunks up to the chunk naming a missing point, so a dead-lettered event
    may have changed some of its points (their payload and existence are checked; ``before``
    holds no vectors to compare theirs with). ``read`` are the ids whose state before the
    window was read (connector/domain/planner.py, ``ids_to_read``): a point whose first op was
    a rejected upsert or delete was not, so what it holds now cannot be judged.

    A filter-addressed op is checked on the points it matched when it was applied
    (``matches``, by ``id(op)``, taken by connector/stream/window/filters.py): those whose
    state was taken then, and any an id-addressed op of the window names too.

    ``payload=False`` (a re-embed window) checks existence and the vectors written, not the
    payload: the patch stream owns it and may change it at any moment in between."""
    if not applied and not rejected:
        return VerificationOutcome(status="skipped", reason="no operation was applied")
    before, resolved = resolve_filters(before, applied, matches or {})
    rejected_ids = set(ids_of(rejected))
    unknown = {pid for pid in rejected_ids if pid not in read}
    # a matched point counts when its state before is known (taken at its first match, or read)
    captured = [pid for match in (matches or {}).values() for pid in match.states if pid in before]
    ids = [pid for pid in dict.fromkeys(ids_of(applied + rejected) + captured) if pid not in unknown]
    touched = touched_vectors(resolved)
    after = await read_state(qdrant, schema.name, ids, payload=payload, vectors=vectors_to_read(touched),
                             shard_key=shard_key)
    expected = expected_state({pid: before[pid] for pid in ids if pid in before}, resolved)
    outcome = compare(expected, after, ids, touched, schema.cosine_names(), rejected_ids=rejected_ids, payload=payload)
    if unknown:
        outcome = outcome.model_copy(update={"reason": f"{len(unknown)} points of rejected upserts or deletes "
                                                       "were not read before the window: not compared"})
    return outcome
