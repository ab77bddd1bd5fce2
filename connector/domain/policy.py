"""What a source may change: collections per topic, forbidden operations, and the guards on
filter-addressed operations: the blast radius (most points one may match) and, for operations that
remove data, the share of the collection. Pure: the caller supplies the counts."""

from __future__ import annotations

from connector.domain.changes import ChangeEvent, Rejection, RejectionCode, filter_of, removes_data
from connector.settings import Settings


def operation_name(event: ChangeEvent) -> str:
    """``op`` for id-addressed events, ``op:filter`` for filter-addressed ones."""
    return f"{event.op}:filter" if filter_of(event) is not None else event.op


def override_permitted(settings: Settings, *, mapped: bool = False) -> bool:
    """Whether an event's blast_radius_override counts: where QCC_ALLOW_BLAST_RADIUS_OVERRIDE says
    so, and on events a CDC mapping made (``mapped``): its ``truncate: delete_all`` is the operator's
    own override, and a Debezium record cannot set it."""
    return settings.allow_blast_radius_override or mapped


def _overridden(event: ChangeEvent, settings: Settings, mapped: bool) -> bool:
    return getattr(event, "blast_radius_override", False) and override_permitted(settings, mapped=mapped)


def check_policy(event: ChangeEvent, topic: str, settings: Settings, *, mapped: bool = False) -> Rejection | None:
    """A rejection when the settings forbid this event from this topic, else None (``mapped``: a CDC
    mapping made it)."""

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
    if getattr(event, "blast_radius_override", False) and not override_permitted(settings, mapped=mapped):
        return reject(
            "override_denied", "this connector does not permit blast_radius_override (QCC_ALLOW_BLAST_RADIUS_OVERRIDE)"
        )
    return None


def check_blast_radius(event: ChangeEvent, matched: int, settings: Settings, *, mapped: bool = False
                       ) -> Rejection | None:
    """Refuse a filter-addressed event that matches more points than the limit, unless overridden."""
    limit = settings.filter_blast_radius
    if limit is None or matched <= limit or _overridden(event, settings, mapped):
        return None
    return Rejection(
        code="blast_radius_exceeded",
        message=f"the filter matches {matched} points, more than the limit of {limit} (QCC_FILTER_BLAST_RADIUS); "
                "set blast_radius_override where the policy permits it",
        collection=event.collection, event_id=event.event_id,
    )


def share_guarded(event: ChangeEvent, settings: Settings, *, mapped: bool = False) -> bool:
    """Whether the share of the collection this filter-addressed event matches must be checked
    (then the caller counts the collection's points too)."""
    return filter_of(event) is not None and removes_data(event) and not _overridden(event, settings, mapped)


def check_share(event: ChangeEvent, matched: int, total: int, settings: Settings) -> Rejection | None:
    """Refuse an event that removes data from every point its filter can reach, or from more than
    QCC_FILTER_MAX_SHARE of them. ``matched``: Qdrant's exact count of the filter; ``total``: of
    the collection (in the batch's shard keys), both before the window."""
    share = settings.filter_max_share
    if matched == 0 or (matched < total and matched <= share * total):
        return None
    what = (f"every point ({matched} of {total})" if matched >= total else
            f"{matched} of {total} points, more than QCC_FILTER_MAX_SHARE={share:g} of them")
    return Rejection(
        code="blast_radius_share_exceeded",
        message=f"a {event.op} by this filter would reach {what}; name the points by ids or narrow the filter "
                "(blast_radius_override, where QCC_ALLOW_BLAST_RADIUS_OVERRIDE permits it, lifts the limit)",
        collection=event.collection, event_id=event.event_id,
    )
