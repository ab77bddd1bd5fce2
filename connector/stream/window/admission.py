"""Stage 2: which events of a collection may be applied (the collection, the allowed list,
policy, the schema, a filter's blast radius and share of the collection); the others fail with
the reason."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from qdrant_client import models as qm

from connector.domain.changes import ChangeEvent, Rejection, ShardKeyWithFallback, filter_of
from connector.domain.policy import check_blast_radius, check_policy, check_share, share_guarded
from connector.domain.schema import CollectionSchema
from connector.domain.sharding import Selector, shard_key_refusal
from connector.domain.validation import check_event
from connector.errors import PermanentError
from connector.failpoints import Failpoints
from connector.qdrant.catalog import CollectionCatalog
from connector.qdrant.reads import count_points
from connector.qdrant.retrying import RetryingClient
from connector.settings import Settings
from connector.stages import Stage
from connector.stream.window.items import Item, fail
from connector.versions import Feature

__all__ = ["Admission"]

log = logging.getLogger(__name__)


class Admission:
    def __init__(self, settings: Settings, qdrant: RetryingClient, catalog: CollectionCatalog,
                 failpoints: Failpoints, *, mapped: bool = False) -> None:
        """``mapped``: the events are a CDC mapping's (connector/domain/policy.py, override_permitted)."""
        self.settings, self.qdrant, self.catalog, self.failpoints = settings, qdrant, catalog, failpoints
        self.mapped = mapped

    async def admit(self, collection: str | None, items: list[Item], shard_key: Selector | None = None
                    ) -> CollectionSchema | None:
        """The collection's schema when any of ``items`` (all with this shard key) may be applied;
        refused items fail."""
        pending = [item for item in items if item.error is None]
        if collection is None or not pending:
            return None
        await self.failpoints.stage(Stage.VALIDATE, [item.record.value for item in pending])
        allowed = self.settings.collections
        if allowed is not None and collection not in allowed:
            for item in pending:
                fail(item, "collection_not_allowed",
                     f"collection {collection!r} is not in the connector's allowed list")
            return None
        schema = await self.catalog.get(collection)
        if schema is None or self._refuses_any(schema, pending):
            # The cache may predate a collection or a named vector created since: ask again
            # before refusing healthy events for it.
            schema = await self.catalog.get(collection, fresh=True)
        if schema is None:
            for item in pending:
                fail(item, "unknown_collection", f"collection {collection!r} does not exist")
            return None
        if isinstance(shard_key, ShardKeyWithFallback) and not self.qdrant.server.has(Feature.SHARD_KEY_FALLBACK):
            for item in pending:
                fail(item, "shard_key_fallback_unsupported",
                     f"Qdrant {self.qdrant.server} has no shard-key fallback (1.16+): name one shard key")
            return None
        schema = await self._with_shard_keys(schema, shard_key)
        refusal = shard_key_refusal(shard_key, schema.custom_sharding, schema.shard_keys)
        if refusal is not None:
            for item in pending:
                fail(item, refusal.code, refusal.message)
            return None
        for item in pending:
            if item.event is None:
                continue
            rejection = check_policy(item.event, item.record.topic, self.settings, mapped=self.mapped) or check_event(
                item.event, schema, self.settings.models_allowed()
            )
            flt = filter_of(item.event)
            if rejection is None and flt is not None:
                rejection = await self._check_blast_radius(collection, item.event, flt, shard_key)
            if rejection is not None:
                fail(item, rejection.code, rejection.message)
        return schema

    async def _with_shard_keys(self, schema: CollectionSchema, shard_key: Selector | None) -> CollectionSchema:
        """The schema once every key the batch needs exists: asked again (keys are created at runtime),
        and with QCC_CREATE_SHARD_KEYS created."""
        refusal = shard_key_refusal(shard_key, schema.custom_sharding, schema.shard_keys)
        if refusal is None or not refusal.missing:
            return schema
        schema = await self.catalog.get(schema.name, fresh=True) or schema
        refusal = shard_key_refusal(shard_key, schema.custom_sharding, schema.shard_keys)
        if refusal is None or not self.settings.create_shard_keys:
            return schema
        missing = refusal.missing
        client = self.qdrant.client
        for key in missing:
            log.info("creating shard key %r in collection %r (QCC_CREATE_SHARD_KEYS)", key, schema.name)
            try:
                await self.qdrant.call(f"create_shard_key({schema.name}, {key!r})",
                                       partial(client.create_shard_key, schema.name, key))
            except PermanentError as exc:  # created meanwhile by another worker: the fresh list says
                log.info("shard key %r not created: %s", key, exc)
        return await self.catalog.get(schema.name, fresh=True) or schema

    def _refuses_any(self, schema: CollectionSchema, items: list[Item]) -> bool:
        """Whether the schema refuses any of these events (unknown vector, wrong size)."""
        allowed = self.settings.models_allowed()
        return any(item.event is not None and check_event(item.event, schema, allowed) is not None for item in items)

    async def _check_blast_radius(self, collection: str, event: ChangeEvent, flt: dict[str, Any],
                                  shard_key: Selector | None) -> Rejection | None:
        """The blast radius of a filter-addressed event and, for one that removes data, its share of
        the collection: Qdrant's exact counts of the filter and of the collection (in the batch's
        shard keys), before the window."""
        by_share = share_guarded(event, self.settings, mapped=self.mapped)
        if self.settings.filter_blast_radius is None and not by_share:
            return None
        try:
            matched = await count_points(self.qdrant, collection, qm.Filter.model_validate(flt), shard_key=shard_key)
        except PermanentError as exc:  # e.g. strict mode refuses a filter on an unindexed key
            return Rejection(code="blast_radius_unknown", collection=collection, event_id=event.event_id,
                             message=f"Qdrant refused to count the points of this filter, so its blast radius "
                                     f"cannot be checked: {exc}")
        rejection = check_blast_radius(event, matched, self.settings, mapped=self.mapped)
        if rejection is not None or not by_share or matched == 0:
            return rejection
        # Counting every point asks nothing of the event's filter: strict mode has no reason to refuse it.
        total = await count_points(self.qdrant, collection, shard_key=shard_key)
        return check_share(event, matched, total, self.settings)
