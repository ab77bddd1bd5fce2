"""One window of Kafka records -> applied Qdrant batches, verification events, dead letters.

Independent of Faust so that it can be driven by the stream app, the tests and the
benchmarks alike. The window is cut at migration fences, then each collection's part goes
through the stages, each a module of its own:

1. ``parse`` (:mod:`.parse`): records -> events, fences or rejections;
2. ``validate`` (:mod:`.admission`): the collection, policy, schema and blast radius; for CDC
   row changes, which form applies (:mod:`.rows`);
3. ``embed``: the texts (:mod:`.texts`), inline or read from payload fields after earlier
   patches, then the vectors (:mod:`.embedding`): one call per model and vector name, one op
   per event; in a chunked collection the chunks' ops (:mod:`.chunks`);
4. ``plan``: read the touched points, screen and plan (connector/domain/planner.py);
5. ``apply`` (connector/qdrant/apply.py);
6. ``verify``: read back and compare (:mod:`.readback`), then report (:mod:`.report`): the
   verification event and the dead letters.

The stage names are :class:`connector.stages.Stage`'s, the failpoints' too (docs/design.md,
"Glossary").

The caller publishes what :meth:`WindowProcessor.process` returns and only then lets the
source offsets be committed. A window that breaks is quarantined (:mod:`.quarantine`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime, timezone
from functools import partial
from typing import Literal

from qdrant_client import AsyncQdrantClient

from connector.domain.cdc_mapping import CdcMapping
from connector.domain.debezium import placeholder
from connector.domain.documents import chunked_fields, dependents
from connector.domain.operations import Op
from connector.domain.planner import ids_to_read, plan, screen_existence
from connector.domain.records import DeadLetterRecord, ErrorInfo, VerificationEvent, VerificationOutcome
from connector.domain.schema import CollectionSchema
from connector.domain.sharding import Selector, group_key
from connector.embedding.embedder import Embedder
from connector.errors import CollectionMissing
from connector.failpoints import Failpoints, Written
from connector.metrics import CDC_SKIPPED
from connector.qdrant import BatchApplier, RetryingClient
from connector.qdrant.catalog import CollectionCatalog
from connector.qdrant.reads import read_state
from connector.settings import ChunkedField, Settings
from connector.stages import Stage
from connector.stream.window.admission import Admission
from connector.stream.window.chunks import ChunkStage, DocumentWindow
from connector.stream.window.embedding import embed_texts, operations_for
from connector.stream.window.filters import FilterMatcher, filter_checks
from connector.stream.window.items import (
    Item,
    Record,
    Retarget,
    WindowResult,
    fail,
    fail_together,
    ids_of,
    listed,
)
from connector.stream.window.parse import parse_cdc_record, parse_record
from connector.stream.window.quarantine import process_quarantining
from connector.stream.window.readback import verify_applied
from connector.stream.window.report import Timings, report_batch
from connector.stream.window.rows import LISTED_UNAVAILABLE, Prefetched, choose_forms, not_held
from connector.stream.window.texts import TextReader

__all__ = ["WindowProcessor"]

log = logging.getLogger(__name__)

Report = tuple[VerificationEvent, list[DeadLetterRecord]]
_STAGE: ContextVar[Stage] = ContextVar("window_stage", default=Stage.PARSE)


class WindowProcessor:
    """Turns a window of records into applied batches; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        client: AsyncQdrantClient,
        qdrant: RetryingClient,
        embedder: Embedder,
        expect: Literal["patch", "reembed"],
        catalog: CollectionCatalog | None = None,
        failpoints: Failpoints | None = None,
        *,
        retarget: Retarget | None = None,
        honor_fences: bool = True,
        before_payload_texts: Callable[[], Awaitable[bool]] | None = None,
        cdc_mapping: CdcMapping | None = None,
        chunk_ids_from: dict[str, str] | None = None,
        chunked: Mapping[str, ChunkedField] | None = None,
    ) -> None:
        """``retarget`` (used by a migration) maps an event to the collection and form to apply, and
        ``chunk_ids_from`` a chunked collection it maps to to the name events use, which chunk ids derive from;
        ``honor_fences=False`` passes migration fences without waiting (the migration's own tail);
        ``before_payload_texts`` is the patch watermark's wait (connector/stream/patch_watermark.py);
        ``cdc_mapping``: the records are Debezium change events, mapped by it (connector/domain/cdc.py);
        ``chunked``: the chunked collections (default: the settings' and ``cdc_mapping``'s; a worker
        gives every processor its mapping's, since patches and re-embeds reach those collections too)."""
        self.settings, self.client, self.qdrant, self.embedder, self.expect = settings, client, qdrant, embedder, expect
        self.failpoints = failpoints or Failpoints(settings.failpoints_dir)
        self.applier = BatchApplier(qdrant, settings.qdrant_max_request_bytes, ordering=settings.qdrant_write_ordering,
                                    failpoints=self.failpoints)
        self.catalog = catalog or CollectionCatalog(qdrant)
        self.retarget = retarget
        self.cdc_mapping = cdc_mapping
        self.honor_fences = honor_fences
        self.admission = Admission(settings, qdrant, self.catalog, self.failpoints, mapped=cdc_mapping is not None)
        self.texts = TextReader(settings, qdrant, before_payload_texts)
        self.chunks = ChunkStage(settings, qdrant, embedder,
                                 dict(chunked) if chunked is not None else chunked_fields(settings, cdc_mapping),
                                 chunk_ids_from)

    @property
    def stage(self) -> Stage:
        """Where the window being processed in this task is (named in poison_record dead letters);
        a context variable, since independent windows are processed at the same time."""
        return _STAGE.get()

    @stage.setter
    def stage(self, value: Stage) -> None:
        _STAGE.set(value)

    async def process_quarantining(self, records: Sequence[Record], parsed: list[Item] | None = None) -> WindowResult:
        """:meth:`process`, with the records that break it dead-lettered (connector/stream/window/quarantine.py).
        ``parsed``: the records parsed ahead (:meth:`parse_ahead`), used for the first attempt."""
        first = None if parsed is None else (lambda: self.process_parsed(parsed))
        return await process_quarantining(self.process, self._poisoned, lambda: self.stage, records, first=first)

    def parse_ahead(self, records: Sequence[Record]) -> list[Item] | None:
        """Stage 1 for the next window while this one is applied (connector/stream/pipeline.py);
        None when it raises: the window is then parsed again where a failure is quarantined."""
        try:
            return self._parse_records(records)
        except Exception:  # noqa: BLE001  # a record that breaks parsing: the quarantine finds it, not this
            return None

    def _poisoned(self, record: Record, message: str) -> WindowResult:
        """A record that fails alone: dead-lettered with where it failed, its offset confirmed."""
        item = self._parse_records([record])[0]
        item.error = ErrorInfo(code="poison_record", message=message)
        outcome = VerificationOutcome(status="skipped", reason="a record that breaks the pipeline (poison_record)")
        verification, dead = report_batch(item.collection, [item], [], 0, outcome, Timings(), time.monotonic())
        return WindowResult([verification], dead)

    def parse(self, records: Sequence[Record]) -> list[Item]:
        """Stage 1 for a whole window (a migration reads the parsed events too)."""
        self.stage = Stage.PARSE
        return self._parse_records(records)

    def _parse_records(self, records: Sequence[Record]) -> list[Item]:
        if self.cdc_mapping is None:
            return [parse_record(position, record, self.settings, self.expect, self.retarget)
                    for position, record in enumerate(records)]
        items: list[Item] = []
        for record in records:  # a row change may mean several events: positions run on over them
            items += parse_cdc_record(len(items), record, self.settings, self.cdc_mapping)
        return items

    async def process(self, records: Sequence[Record]) -> WindowResult:
        """Apply a window; a migration fence splits it and holds it until the fence is passed."""
        return await self.process_parsed(self.parse(records))

    async def process_parsed(self, items: list[Item]) -> WindowResult:
        """:meth:`process` after :meth:`parse`."""
        started = time.monotonic()
        result = WindowResult()
        segment: list[Item] = []
        for item in items:
            if item.fence is None:
                segment.append(item)
                continue
            await self._process_segment(segment, started, result)
            segment = []
            result.verifications.append(await self._pass_fence(item, started))
        await self._process_segment(segment, started, result)
        return result

    async def _process_segment(self, items: list[Item], started: float, result: WindowResult) -> None:
        groups: dict[tuple[str | None, str | None, str], list[Item]] = {}
        for item in items:  # one batch per collection and shard key (and topic: a CDC agent reads several)
            groups.setdefault((item.collection, group_key(item.shard_key), item.record.topic), []).append(item)
        for (collection, _, _), members in groups.items():
            try:
                verification, dead = await self._process_collection(collection, members, started)
            except CollectionMissing as exc:  # deleted under the catalog's cache: nothing of it can apply
                log.warning("collection %r vanished while its window was processed: %s", collection, exc)
                for item in members:
                    fail(item, "unknown_collection", f"collection {collection!r} does not exist (deleted meanwhile)")
                await self.catalog.get(collection or "", fresh=True)
                verification, dead = report_batch(collection, members, [], 0,
                                                  VerificationOutcome(status="skipped", reason=str(exc)),
                                                  Timings(), started)
            result.verifications.append(verification)
            result.dead_letters.extend(dead)
            result.rechecks += [item.record for item in members if item.recheck and item.error is None]
            for item in members:  # counted once known: a row change of nothing is known once its point was read
                if item.skip_reason is not None and item.error is None:
                    CDC_SKIPPED.labels(item.skip_reason).inc()

    async def _pass_fence(self, item: Item, started: float) -> VerificationEvent:
        """Wait until the fence's alias points at its target, or the fence expires."""
        fence = item.fence
        if fence is None:
            raise ValueError("not a fence")
        waited = time.monotonic()
        reason = "migration fence passed by the migration's own tail"
        while self.honor_fences:
            aliases = await self.qdrant.call("get_aliases", self.client.get_aliases)
            if any(a.alias_name == fence.collection and a.collection_name == fence.target for a in aliases.aliases):
                reason = f"migration fence: alias {fence.collection!r} now points at {fence.target!r}"
                break
            if datetime.now(timezone.utc) >= fence.expires_at:
                reason = f"migration fence expired: alias {fence.collection!r} was not switched to {fence.target!r}"
                log.warning(reason)
                break
            await asyncio.sleep(0.2)
        outcome = VerificationOutcome(status="skipped", reason=f"{reason} (held {time.monotonic() - waited:.1f}s)")
        verification, _ = report_batch(fence.collection, [item], [], 0, outcome, Timings(), started)
        return verification

    async def _process_collection(self, collection: str | None, items: list[Item], started: float) -> Report:
        """One batch: the items of one collection and one shard key."""
        timings = Timings()
        self.stage = Stage.VALIDATE
        shard_key = items[0].shard_key
        schema = await self.admission.admit(collection, items, shard_key)
        fail_together(items)
        if schema is None:
            return report_batch(collection, items, [], 0, VerificationOutcome(status="skipped",
                                reason="no operation to apply"), timings, started)
        t0 = time.monotonic()
        prefetched = await choose_forms(self.qdrant, schema.name, items, shard_key)
        self.stage = Stage.EMBED
        live = [item for item in items if item.error is None and not item.skipped]
        spec = self.chunks.spec(collection)
        if spec is not None and collection is not None:  # events address documents: chunk ops
            await self.texts.wait_for_patches(live)  # a re-embed by ids reads its texts from the chunks
            documents = await self.chunks.plan(collection, spec, schema, live, shard_key)
            fail_together(items)
            by_position = {item.position: item for item in items}
            ops = [op for op in documents.ops if by_position[op.sources[0]].error is None]
            timings.embed = time.monotonic() - t0
            if not ops:  # yet a row change may have left a document unwritten: said all the same
                outcome = await self._with_unheld(VerificationOutcome(status="skipped", reason="no operation to apply"),
                                                  schema.name, items, set(), shard_key, documents)
                return report_batch(collection, items, [], 0, outcome, timings, started)
            return await self._apply(schema, items, ops, timings, started, shard_key, documents.prefetched,
                                     documents)
        texts = await self.texts.texts(schema, live, shard_key)
        vectors = await embed_texts(self.embedder, schema, live, texts)
        fail_together(items)
        ops = operations_for(live, vectors)
        timings.embed = time.monotonic() - t0
        if not ops:
            return report_batch(collection, items, [], 0, VerificationOutcome(status="skipped",
                                reason="no operation to apply"), timings, started)
        return await self._apply(schema, items, ops, timings, started, shard_key, prefetched)

    async def _with_unheld(self, outcome: VerificationOutcome, collection: str, items: list[Item],
                           applied_positions: set[int], shard_key: Selector | None,
                           documents: DocumentWindow | None) -> VerificationOutcome:
        """``outcome`` with the touched points that lack columns their CDC change did not carry, read
        from Qdrant (docs/cdc.md); as it was where the window holds no CDC change or nothing is checked."""
        if self.cdc_mapping is None or not self.settings.verify_after_apply:
            return outcome
        marker = placeholder(self.cdc_mapping.unavailable_value_placeholder).text
        unheld = (await not_held(self.qdrant, collection, items, applied_positions, marker, shard_key)
                  if documents is None else  # a document's columns are on its chunks
                  await self.chunks.not_held(collection, documents, items, applied_positions, marker, shard_key))
        if not unheld:
            return outcome
        return outcome.model_copy(update={"unavailable": unheld[:LISTED_UNAVAILABLE], "unavailable_count": len(unheld)})

    async def _apply(self, schema: CollectionSchema, items: list[Item], ops: list[Op], timings: Timings,
                     started: float, shard_key: Selector | None, prefetched: Prefetched | None = None,
                     documents: DocumentWindow | None = None) -> Report:
        """Screen (which points exist), plan, apply, read back and compare: in ``shard_key``'s shards.
        ``prefetched``: points read already in this window (their existence and payload), not read again."""
        self.stage = Stage.PLAN
        values = [item.record.value for item in items]
        await self.failpoints.stage(Stage.PLAN, values)
        read = ids_to_read(ops)
        # a re-embed window checks the vectors it wrote, not payloads: the patch stream, consumed
        # beside it, may change a payload between this read and the read-back (docs/design.md)
        checks_payload = self.expect == "patch"
        known = prefetched or Prefetched()
        before = await read_state(self.qdrant, schema.name, [pid for pid in read if pid not in known.ids],
                                  payload=self.settings.verify_after_apply and checks_payload, shard_key=shard_key)
        wanted = set(read)
        before |= {pid: point for pid, point in known.state.items() if pid in wanted}
        screened = screen_existence(ops, set(before))
        by_position = {item.position: item for item in items}
        for op, absent in screened.missing:
            fail(by_position[op.sources[0]], "point_not_found", f"points not found: {listed(absent)}")
        fail_together(items)
        accepted = [op for op in screened.accepted if by_position[op.sources[0]].error is None]
        planned = plan(accepted)
        applied: list[Op] = []
        rejected: list[Op] = []
        requests = 0
        matcher: FilterMatcher | None = None
        t0 = time.monotonic()
        if planned:
            self.stage = Stage.APPLY
            await self.failpoints.stage(Stage.APPLY, values)
            matcher = (FilterMatcher(self.qdrant, schema.name, self.settings.verify_filter_max_points, self.failpoints,
                                     shard_key) if self.settings.verify_after_apply else None)
            # in a chunked collection an event refused takes the later events of its documents with it:
            # they were planned on the chunks it would have left (docs/design.md, "Chunked documents")
            with_it = partial(dependents, documents.documents) if documents is not None else None
            result = await self.applier.apply(schema.name, planned, matcher, shard_key, dependents=with_it)
            applied, requests = result.applied, result.requests
            refused = {failure.position for failure in result.failed if failure.after is None}
            rejected = [op for op in accepted if op.sources[0] in refused]
            for failure in result.failed:
                fail(by_position[failure.position], "qdrant_rejected", str(failure.error) if failure.after is None else
                     f"not applied: planned on the chunks that the event at offset "
                     f"{by_position[failure.after].record.offset} of the same document would have left, which "
                     f"Qdrant refused ({failure.error}); replay it")
        fail_together(items)
        timings.apply = time.monotonic() - t0
        t0 = time.monotonic()
        self.stage = Stage.VERIFY
        await self.failpoints.stage(Stage.VERIFY, values,
                                    Written(self.client, self.qdrant.call, schema.name, applied, checks_payload))
        if self.settings.verify_after_apply:
            matches = matcher.matches if matcher is not None else {}
            outcome = await verify_applied(self.qdrant, schema, before, set(read), applied, rejected, matches,
                                           shard_key=shard_key, payload=checks_payload)
            if matcher is not None and matcher.matches:
                outcome = filter_checks(outcome, matcher, applied, by_position)
            if documents is not None:  # and no other chunk of the window's documents remains
                outcome = await self.chunks.check(schema.name, documents, applied, set(ids_of(rejected)), outcome,
                                                  shard_key, matches)
            outcome = await self._with_unheld(outcome, schema.name, items,
                                              {source for op in applied for source in op.sources}, shard_key,
                                              documents)
        else:
            outcome = VerificationOutcome(status="skipped", reason="verification is off (QCC_VERIFY_AFTER_APPLY)")
        timings.verify = time.monotonic() - t0
        return report_batch(schema.name, items, applied, requests, outcome, timings, started,
                            documents.documents if documents is not None else None)
