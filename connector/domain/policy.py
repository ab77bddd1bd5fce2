"""What a source may change: collections per topic, forbidden operations, and the blast-radius
guard for filter-addressed operations. Pure: the caller supplies the filter's match count."""

from __future__ import annotations

from connector.domain.changes import ChangeEvent, Rejection, RejectionCode, filter_of
from connector.settings import Settings


def operation_name(event: ChangeEvent) -> str:
    """``op`` for id-addressed events, ``op:filter`` for filter-addressed ones."""
    return f"{event.op}:filter" if filter_of(event) is not None else event.op


def check_policy(event: ChangeEvent, topic: str, settings: Settings) -> Rejection | None:
    """A rejection when the settings forbid this event from this topic, else None."""

    def reject(code: RejectionCode, message: str) -> Rejection:
        return Rejection(code=code, message=message, collection=event.collection, event_id=event.event_id)

    allowed = settings.topic_collections.get(topic)
    if allowed is not None and event.collection not in allowed:
        return reject("collection_not_allowed", f"topic {topic!r} may not change collection {event.collection!r}")
    name = operation_name(event)
    if name in settings.denied_operations or event.op in settings.denied_operations:
        return reject(
            "operation_denied", f"operation {name!r} is denied by the connector's policy (QCC_DENIED_OPERATIONS)"
        )
    if getattr(event, "blast_radius_override", False) and not settings.allow_blast_radius_override:
        return reject(
            "override_denied", "this connector does not permit blast_radius_override (QCC_ALLOW_BLAST_RADIUS_OVERRIDE)"
        )
    return None


def check_blast_radius(event: ChangeEvent, matched: int, settings: Settings) -> Rejection | None:
    """Refuse a filter-addressed event that matches more points than the limit, unless overridden."""
    limit = settings.filter_blast_radius
    if limit is None or matched <= limit:
        return None
    if getattr(event, "blast_radius_override", False) and settings.allow_blast_radius_override:
        return None
    return Rejection(
        code="blast_radius_exceeded",
        message=f"the filter matches {matched} points, more than the limit of {limit} (QCC_FILTER_BLAST_RADIUS); "
                "set blast_radius_override where the policy permits it",
        collection=event.collection, event_id=event.event_id,
    )
