"""Stage 3: the texts to embed, per event: inline ones, or read from payload fields (one
``retrieve`` per window for ids, a scroll per filter). Before payload texts are read, the
patches published before them are waited for (connector/stream/patch_watermark.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from qdrant_client import models as qm

from connector.domain.changes import ReembedEvent, UpsertEvent, normalize_id
from connector.domain.operations import PointKey
from connector.domain.schema import CollectionSchema
from connector.domain.semantics import text_at
from connector.domain.sharding import Selector
from connector.errors import PermanentError
from connector.qdrant.reads import retrieve_chunked, scroll_pages
from connector.qdrant.retrying import RetryingClient
from connector.settings import Settings
from connector.stream.window.items import Item, fail, listed

__all__ = ["TextReader", "Texts"]

SCROLL_PAGE = 512
Texts = dict[int, dict[PointKey, str]]  # event position -> point id -> text


def reads_payload(item: Item) -> bool:
    return isinstance(item.event, ReembedEvent) and item.event.points is None


class TextReader:
    def __init__(self, settings: Settings, qdrant: RetryingClient,
                 before_payload_texts: Callable[[], Awaitable[bool]] | None = None) -> None:
        """``before_payload_texts`` is the patch watermark's wait: False when it was cut short."""
        self.settings, self.qdrant, self.before_payload_texts = settings, qdrant, before_payload_texts

    async def texts(self, schema: CollectionSchema, live: list[Item], shard_key: Selector | None = None) -> Texts:
        """Per event position, the texts to embed by point id, read in the batch's shards;
        items without their text fail."""
        texts: Texts = {}
        await self.wait_for_patches(live)
        by_ids: list[Item] = []
        for item in live:
            event = item.event
            if isinstance(event, UpsertEvent):
                own = {normalize_id(p.id): p.text for p in event.points if p.text is not None}
                if own:
                    texts[item.position] = own
            elif isinstance(event, ReembedEvent):
                if event.points is not None:
                    texts[item.position] = {normalize_id(p.id): p.text for p in event.points}
                elif event.ids is not None:
                    by_ids.append(item)
                else:
                    await self._by_filter(schema, item, texts, shard_key)
        if by_ids:
            await self._by_ids(schema, by_ids, texts, shard_key)
        return texts

    async def wait_for_patches(self, live: list[Item]) -> None:
        """Before any of ``live`` reads a text from a payload (a chunked document's chunks too): wait
        for the patches published before them; where the wait was cut short, mark those items to be
        published again (``recheck``)."""
        readers = [item for item in live if reads_payload(item)]
        if readers and self.before_payload_texts is not None and not await self.before_payload_texts():
            for item in readers:  # the wait was cut short: these may read texts older than earlier patches
                item.recheck = True

    async def _by_ids(self, schema: CollectionSchema, items: list[Item], texts: Texts,
                      shard_key: Selector | None) -> None:
        """One read for all id-addressed re-embeds of the window, of their text fields only."""
        events = [item.event for item in items if isinstance(item.event, ReembedEvent)]
        ids = list(dict.fromkeys(normalize_id(i) for event in events for i in event.ids or []))
        fields = sorted({(event.text_field or "").split(".")[0] for event in events})
        records = await retrieve_chunked(self.qdrant, schema.name, ids, with_payload=fields, shard_key=shard_key)
        found = {normalize_id(r.id): r.payload or {} for r in records}
        for item in items:
            event = item.event
            if not isinstance(event, ReembedEvent) or event.ids is None or not event.text_field:
                continue
            wanted = [normalize_id(i) for i in event.ids]
            absent = [i for i in wanted if i not in found]
            if absent:
                fail(item, "point_not_found", f"points not found: {listed(absent)}")
                continue
            own = {i: text_at(found[i], event.text_field) for i in wanted}
            no_text = [i for i, t in own.items() if t is None]
            if no_text:
                fail(item, "text_missing",
                     f"payload field {event.text_field!r} is not a non-empty string on points {listed(no_text)}")
                continue
            texts[item.position] = {i: t for i, t in own.items() if t is not None}

    async def _by_filter(self, schema: CollectionSchema, item: Item, texts: Texts,
                         shard_key: Selector | None) -> None:
        """Scroll the filter's points with only the text field; points without text are skipped."""
        event = item.event
        if not isinstance(event, ReembedEvent) or event.filter is None or not event.text_field:
            return
        limit = self.settings.max_points_per_filter_reembed
        own: dict[PointKey, str] = {}
        seen = 0
        pages = scroll_pages(self.qdrant, schema.name, scroll_filter=qm.Filter.model_validate(event.filter),
                             with_payload=[event.text_field.split(".")[0]], with_vectors=False, page_size=SCROLL_PAGE,
                             shard_key=shard_key)
        try:
            async for page, _ in pages:
                seen += len(page)
                if seen > limit:
                    fail(item, "too_many_points",
                         f"filter matches more than {limit} points (QCC_MAX_POINTS_PER_FILTER_REEMBED)")
                    return
                for record in page:
                    text = text_at(record.payload or {}, event.text_field)
                    if text is not None:
                        own[normalize_id(record.id)] = text
        except PermanentError as exc:  # the server refuses this filter (e.g. strict mode, unindexed key)
            fail(item, "qdrant_rejected", f"Qdrant refused to scroll this filter's points: {exc}")
            return
        texts[item.position] = own
