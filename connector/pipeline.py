"""One window of Kafka records -> applied Qdrant batches, verification events, dead letters.

Independent of Faust so that it can be driven by the stream app, the tests and the
benchmarks alike. Stages per collection: validate, resolve texts (one ``retrieve`` or a
``scroll`` per window), embed (one call per model and vector name), read the touched points
(existence and payload, one ``retrieve``), screen and plan, apply, read back and compare.
The caller publishes what :meth:`WindowProcessor.process` returns and only then lets the
source offsets be committed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import re
import socket
import time
import traceback
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.catalog import CollectionCatalog, CollectionSchema
from connector.embedder import Embedder
from connector.events import (
    NAME_PATTERN,
    ChangeEvent,
    DeadLetterRecord,
    DeadLetterRef,
    ErrorInfo,
    FenceRecord,
    Latency,
    OffsetRange,
    PointsTouched,
    ReembedEvent,
    Rejection,
    SourceRecord,
    UpsertEvent,
    VerificationEvent,
    VerificationOutcome,
    normalize_id,
    parse_change,
)
from connector.errors import CollectionMissing, ConfigurationError, PermanentError, StorageError, WindowAbandoned
from connector.failpoints import Failpoints
from connector.operations import (
    DEFAULT_VECTOR,
    Op,
    PointKey,
    Vector,
    op_from_patch,
    update_vectors_op,
)
from connector.planner import plan, screen_existence
from connector.policy import check_blast_radius, check_policy
from connector.semantics import State, text_at
from connector.settings import Settings
from connector.sink import QdrantSink
from connector.validation import check_event, vector_kind
from connector.verifier import (
    compare,
    expected_state,
    state_from_records,
    touched_vectors,
)

log = logging.getLogger(__name__)

READ_CHUNK = 1000
SCROLL_PAGE = 512
LISTED_IDS = 100
LISTED_DEAD_LETTERS = 100
LISTED_MESSAGE_CHARS = 500
WORKER = f"{socket.gethostname()}:{os.getpid()}"


Retarget = Callable[[ChangeEvent], "ChangeEvent | None"]


@dataclass(frozen=True)
class Record:
    """A consumed Kafka record, as the pipeline needs it."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp_ms: int | None = None


@dataclass
class _Item:
    position: int
    record: Record
    event: ChangeEvent | None = None
    error: ErrorInfo | None = None
    claimed_collection: str | None = None  # from a rejected event, when it names one validly
    fence: FenceRecord | None = None
    skipped: bool = False  # nothing to apply (a retargeted event with nothing left)
    recheck: bool = False  # read its texts before every earlier patch was applied (a rebalance cut the wait short)


@dataclass
class WindowResult:
    verifications: list[VerificationEvent] = field(default_factory=list)
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)
    # Re-embeds applied from texts that may predate earlier patches: published again to the
    # re-embed topic before the window is committed, so they are re-done after those patches.
    rechecks: list[Record] = field(default_factory=list)

    def extend(self, other: WindowResult) -> None:
        self.verifications += other.verifications
        self.dead_letters += other.dead_letters
        self.rechecks += other.rechecks


def batch_id_for(topic: str, ranges: Sequence[OffsetRange], collection: str | None) -> str:
    """Deterministic from the source: a replay of the same window gets the same id."""
    spans = ",".join(f"{r.partition}:{r.first_offset}-{r.last_offset}" for r in ranges)
    return hashlib.sha256(f"{topic}|{spans}|{collection or ''}".encode()).hexdigest()[:32]


def offset_ranges(records: Sequence[Record]) -> list[OffsetRange]:
    """Exact runs of consecutive offsets per partition: a range holds only these records."""
    by_partition: dict[int, list[int]] = defaultdict(list)
    for record in records:
        by_partition[record.partition].append(record.offset)
    ranges: list[OffsetRange] = []
    for partition, offsets in sorted(by_partition.items()):
        offsets.sort()
        first = previous = offsets[0]
        for offset in offsets[1:]:
            if offset != previous + 1:
                ranges.append(OffsetRange(partition=partition, first_offset=first, last_offset=previous))
                first = offset
            previous = offset
        ranges.append(OffsetRange(partition=partition, first_offset=first, last_offset=previous))
    return ranges


def points_touched(ids: Sequence[PointKey]) -> PointsTouched:
    ordered = sorted(ids, key=lambda i: (isinstance(i, str), str(i) if isinstance(i, str) else i))
    digest = hashlib.sha256(",".join(str(i) for i in ordered).encode()).hexdigest()
    return PointsTouched(count=len(ordered), ids=ordered if len(ordered) <= LISTED_IDS else None, digest=digest)


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(key).decode()


def dead_letter_for(item: _Item, batch_id: str | None) -> DeadLetterRecord:
    assert item.error is not None
    event = item.event
    rec = item.record
    return DeadLetterRecord(
        error=item.error,
        source=SourceRecord(topic=rec.topic, partition=rec.partition, offset=rec.offset,
                            timestamp_ms=rec.timestamp_ms, key=_key_text(rec.key)),
        event_id=getattr(event, "event_id", None),
        collection=getattr(event, "collection", None),
        batch_id=batch_id,
        original_value_base64=base64.b64encode(rec.value or b"").decode(),
        failed_at=datetime.now(timezone.utc),
    )


class WindowProcessor:
    """Turns a window of records into applied batches; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        client: AsyncQdrantClient,
        sink: QdrantSink,
        embedder: Embedder,
        expect: Literal["patch", "reembed"],
        catalog: CollectionCatalog | None = None,
        failpoints: Failpoints | None = None,
        *,
        retarget: Retarget | None = None,
        honor_fences: bool = True,
        before_payload_texts: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """``retarget`` (used by a migration) maps an event to the collection and form to apply;
        ``honor_fences=False`` passes migration fences without waiting (the migration's own tail)."""
        self.settings, self.client, self.sink, self.embedder, self.expect = settings, client, sink, embedder, expect
        self.catalog = catalog or CollectionCatalog(client, sink.call)
        self.failpoints = failpoints or Failpoints(settings.failpoints_dir)
        self.retarget = retarget
        self.honor_fences = honor_fences
        self.before_payload_texts = before_payload_texts  # the patch watermark (patch_watermark.py)
        self.stage = "parsing"  # where the window being processed is (named in poison_record dead letters)

    async def process_quarantining(self, records: Sequence[Record]) -> WindowResult:
        """:meth:`process`, and when the window fails for a reason that may be a record's (not
        storage, configuration, the broker or a shutdown: :func:`is_infrastructure`), the
        window is cut in halves, processed in order, until the record(s) that fail alone are
        found; they are dead-lettered as ``poison_record`` with the failure, the rest applied.
        Replaying an applied part is safe (assignments, same order). When more than half of
        the window fails alone, it is not its records: the first failure is raised.
        """
        try:
            return await self.process(records)
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            log.warning("window of %d records failed (%s: %s); looking for the record that breaks it",
                        len(records), type(exc).__name__, exc)
            result = await self._isolate_poison(list(records))
            poisoned = sum(1 for dead in result.dead_letters if dead.error.code == "poison_record")
            if poisoned > max(1, len(records) // 2):  # ordinary rejections do not count
                raise
            return result

    async def _isolate_poison(self, records: list[Record]) -> WindowResult:
        try:
            return await self.process(records)
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            if len(records) == 1:  # self.stage is where it failed
                return self._poison(records[0], exc)
            middle = len(records) // 2
            result = await self._isolate_poison(records[:middle])
            result.extend(await self._isolate_poison(records[middle:]))
            return result

    def _poison(self, record: Record, exc: Exception) -> WindowResult:
        """A record that fails alone: dead-lettered with where it failed, its offset confirmed."""
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        place = f" (in {where.name}, {os.path.basename(where.filename)}:{where.lineno})" if where else ""
        item = self._parse(0, record)
        message = f"failed in {self.stage}: {type(exc).__name__}: {exc}{place}"
        item.error = ErrorInfo(code="poison_record", message=message[:4000])
        log.error("record %s:%d:%d breaks the window: %s; dead-lettered", record.topic, record.partition,
                  record.offset, item.error.message)
        collection = item.event.collection if item.event is not None else item.claimed_collection
        outcome = VerificationOutcome(status="skipped", reason="a record that breaks the pipeline (poison_record)")
        verification, dead = self._report(collection, [item], [], 0, outcome,
                                          {"embed": 0.0, "apply": 0.0, "verify": 0.0}, time.monotonic())
        return WindowResult([verification], dead)

    async def process(self, records: Sequence[Record]) -> WindowResult:
        """Apply a window; a migration fence splits it and holds it until the fence is passed."""
        started = time.monotonic()
        self.stage = "parsing"
        result = WindowResult()
        segment: list[_Item] = []
        for position, record in enumerate(records):
            item = self._parse(position, record)
            if item.fence is None:
                segment.append(item)
                continue
            await self._process_segment(segment, started, result)
            segment = []
            result.verifications.append(await self._pass_fence(item, started))
        await self._process_segment(segment, started, result)
        return result

    async def _process_segment(self, items: list[_Item], started: float, result: WindowResult) -> None:
        groups: dict[str | None, list[_Item]] = {}
        for item in items:
            collection = item.event.collection if item.event is not None else item.claimed_collection
            groups.setdefault(collection, []).append(item)
        for collection, members in groups.items():
            try:
                verification, dead = await self._process_collection(collection, members, started)
            except CollectionMissing as exc:  # deleted under the catalog's cache: nothing of it can apply
                log.warning("collection %r vanished while its window was processed: %s", collection, exc)
                for item in members:
                    _fail(item, "unknown_collection", f"collection {collection!r} does not exist (deleted meanwhile)")
                await self.catalog.get(collection or "", fresh=True)
                verification, dead = self._report(collection, members, [], 0,
                                                  VerificationOutcome(status="skipped", reason=str(exc)),
                                                  {"embed": 0.0, "apply": 0.0, "verify": 0.0}, started)
            result.verifications.append(verification)
            result.dead_letters.extend(dead)
            result.rechecks += [item.record for item in members if item.recheck and item.error is None]

    async def _pass_fence(self, item: _Item, started: float) -> VerificationEvent:
        """Wait until the fence's alias points at its target, or the fence expires."""
        fence = item.fence
        assert fence is not None
        waited = time.monotonic()
        reason = "migration fence passed by the migration's own tail"
        while self.honor_fences:
            aliases = await self.sink.call("get_aliases", self.client.get_aliases)
            if any(a.alias_name == fence.collection and a.collection_name == fence.target for a in aliases.aliases):
                reason = f"migration fence: alias {fence.collection!r} now points at {fence.target!r}"
                break
            if datetime.now(timezone.utc) >= fence.expires_at:
                reason = f"migration fence expired: alias {fence.collection!r} was not switched to {fence.target!r}"
                log.warning(reason)
                break
            await asyncio.sleep(0.2)
        outcome = VerificationOutcome(status="skipped", reason=f"{reason} (held {time.monotonic() - waited:.1f}s)")
        verification, _ = self._report(fence.collection, [item], [], 0, outcome,
                                       {"embed": 0.0, "apply": 0.0, "verify": 0.0}, started)
        return verification

    def _parse(self, position: int, record: Record) -> _Item:
        parsed = parse_change(
            record.value,
            expect=self.expect,
            max_event_bytes=self.settings.max_event_bytes,
            max_ids_per_event=self.settings.max_ids_per_event,
        )
        if isinstance(parsed, FenceRecord):
            return _Item(position, record, fence=parsed)
        if isinstance(parsed, Rejection):
            claimed = parsed.collection if parsed.collection and re.match(NAME_PATTERN, parsed.collection) else None
            error = ErrorInfo(code=parsed.code, message=parsed.message)
            return _Item(position, record, error=error, claimed_collection=claimed)
        if self.retarget is not None:
            retargeted = self.retarget(parsed)
            if retargeted is None:  # nothing of this event applies to the target
                return _Item(position, record, event=parsed, skipped=True)
            parsed = retargeted
        return _Item(position, record, event=parsed)

    async def _process_collection(
        self, collection: str | None, items: list[_Item], started: float
    ) -> tuple[VerificationEvent, list[DeadLetterRecord]]:
        timings = {"embed": 0.0, "apply": 0.0, "verify": 0.0}
        self.stage = "validation"
        schema = await self._schema_or_reject(collection, items)
        ops: list[Op] = []
        applied: list[Op] = []
        outcome = VerificationOutcome(status="skipped", reason="no operation to apply")
        requests = 0
        if schema is not None:
            t0 = time.monotonic()
            self.stage = "embedding"
            ops = await self._to_ops(schema, items)
            timings["embed"] = time.monotonic() - t0
        if ops and schema is not None:
            before = await self._read(schema.name, _ids_of(ops), payload=self.settings.verify_after_apply)
            screened = screen_existence(ops, set(before))
            by_position = {item.position: item for item in items}
            for op, absent in screened.missing:
                _fail(by_position[op.sources[0]], "point_not_found", f"points not found: {_list(absent)}")
            self.stage = "planning"
            self.failpoints.poison("plan", [item.record.value for item in items])
            planned = plan(screened.accepted)
            rejected: list[Op] = []
            t0 = time.monotonic()
            if planned:
                self.stage = "the Qdrant request"
                self.failpoints.poison("apply", [item.record.value for item in items])
                result = await self.sink.apply(schema.name, planned)
                applied, requests = result.applied, result.requests
                failed_positions = {failure.position for failure in result.failed}
                rejected = [op for op in screened.accepted if op.sources[0] in failed_positions]
                for failure in result.failed:
                    _fail(by_position[failure.position], "qdrant_rejected", str(failure.error))
            timings["apply"] = time.monotonic() - t0
            self.failpoints.crash_if_active("crash-after-apply")
            t0 = time.monotonic()
            self.stage = "verification, after its operations were applied"
            self.failpoints.poison("verify", [item.record.value for item in items])
            outcome = await self._verify(schema, before, applied, rejected)
            timings["verify"] = time.monotonic() - t0
        return self._report(collection, items, applied, requests, outcome, timings, started)

    async def _schema_or_reject(self, collection: str | None, items: list[_Item]) -> CollectionSchema | None:
        pending = [item for item in items if item.error is None]
        if collection is None or not pending:
            return None
        self.failpoints.poison("validate", [item.record.value for item in pending])
        allowed = self.settings.collections
        if allowed is not None and collection not in allowed:
            for item in pending:
                _fail(item, "collection_not_allowed", f"collection {collection!r} is not in the connector's allowed list")
            return None
        schema = await self.catalog.get(collection)
        if schema is None or self._schema_rejections(schema, pending):
            # The cache may predate a collection or a named vector created since: ask again
            # before refusing healthy events for it.
            schema = await self.catalog.get(collection, fresh=True)
        if schema is None:
            for item in pending:
                _fail(item, "unknown_collection", f"collection {collection!r} does not exist")
            return None
        for item in pending:
            assert item.event is not None
            rejection = check_policy(item.event, item.record.topic, self.settings) or check_event(
                item.event, schema, self.settings.models_allowed()
            )
            flt = getattr(item.event, "filter", None)
            if rejection is None and flt is not None:
                rejection = await self._check_blast_radius(collection, item.event, flt)
            if rejection is not None:
                _fail(item, rejection.code, rejection.message)
        return schema

    def _schema_rejections(self, schema: CollectionSchema, items: list[_Item]) -> bool:
        """Whether the schema refuses any of these events (unknown vector, wrong size)."""
        allowed = self.settings.models_allowed()
        return any(item.event is not None and check_event(item.event, schema, allowed) is not None for item in items)

    async def _check_blast_radius(self, collection: str, event: ChangeEvent, flt: dict[str, Any]) -> Rejection | None:
        try:
            matched = await self._count(collection, flt)
        except PermanentError as exc:  # e.g. strict mode refuses a filter on an unindexed key
            return Rejection(code="blast_radius_unknown", collection=collection, event_id=event.event_id,
                             message=f"Qdrant refused to count the points of this filter, so its blast radius "
                                     f"cannot be checked: {exc}")
        return check_blast_radius(event, matched, self.settings)

    async def _count(self, collection: str, flt: dict[str, Any]) -> int:
        """How many points a filter matches now (for the blast-radius guard)."""
        if self.settings.filter_blast_radius is None:
            return 0
        result = await self.sink.call(
            f"count({collection})",
            lambda: self.client.count(collection, count_filter=qm.Filter.model_validate(flt), exact=True),
        )
        return int(result.count)

    async def _to_ops(self, schema: CollectionSchema, items: list[_Item]) -> list[Op]:
        """Embed what needs embedding, then one Op per remaining event, in window order."""
        live = [item for item in items if item.error is None and not item.skipped]
        texts = await self._texts_to_embed(schema, live)
        vectors = await self._embed(schema, live, texts)
        ops: list[Op] = []
        for item in live:
            if item.error is not None:
                continue
            event = item.event
            if isinstance(event, ReembedEvent):
                name = event.vector_name or DEFAULT_VECTOR
                own = vectors.get(item.position, {})
                if own:
                    ops.append(update_vectors_op(own, name, item.position))
                continue
            ops.append(op_from_patch(event, item.position, vectors.get(item.position)))  # type: ignore[arg-type]
        return ops

    async def _texts_to_embed(self, schema: CollectionSchema, live: list[_Item]) -> dict[int, dict[PointKey, str]]:
        """Per event position, the texts to embed by point id (reading payload where asked).

        Before reading texts from payload fields, earlier patches are waited for (if so wired)."""
        texts: dict[int, dict[PointKey, str]] = {}
        reads_payload = any(isinstance(item.event, ReembedEvent) and item.event.points is None for item in live)
        if reads_payload and self.before_payload_texts is not None and not await self.before_payload_texts():
            for item in live:  # the wait was cut short: these may read texts older than earlier patches
                if isinstance(item.event, ReembedEvent) and item.event.points is None:
                    item.recheck = True
        by_field: list[_Item] = []
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
                    by_field.append(item)
                else:
                    await self._texts_by_filter(schema, item, texts)
        if by_field:
            ids = list(dict.fromkeys(normalize_id(i) for item in by_field for i in item.event.ids))  # type: ignore[union-attr]
            fields = sorted({item.event.text_field.split(".")[0] for item in by_field})  # type: ignore[union-attr]
            found = await self._read(schema.name, ids, payload=fields)
            for item in by_field:
                event = item.event
                assert isinstance(event, ReembedEvent) and event.ids is not None and event.text_field
                wanted = [normalize_id(i) for i in event.ids]
                absent = [i for i in wanted if i not in found]
                if absent:
                    _fail(item, "point_not_found", f"points not found: {_list(absent)}")
                    continue
                own = {i: text_at(found[i].payload, event.text_field) for i in wanted}
                no_text = [i for i, t in own.items() if t is None]
                if no_text:
                    _fail(item, "text_missing", f"payload field {event.text_field!r} is not a non-empty string on points {_list(no_text)}")
                    continue
                texts[item.position] = {i: t for i, t in own.items() if t is not None}
        return texts

    async def _texts_by_filter(self, schema: CollectionSchema, item: _Item, texts: dict[int, dict[PointKey, str]]) -> None:
        """Scroll the filter's points with only the text field; points without text are skipped."""
        event = item.event
        assert isinstance(event, ReembedEvent) and event.filter is not None and event.text_field
        flt = qm.Filter.model_validate(event.filter)
        top = event.text_field.split(".")[0]
        limit = self.settings.max_points_per_filter_reembed
        own: dict[PointKey, str] = {}
        offset: Any = None
        seen = 0
        while True:
            try:
                page, offset = await self.sink.call(
                    f"scroll({schema.name})",
                    lambda: self.client.scroll(schema.name, scroll_filter=flt, limit=SCROLL_PAGE, offset=offset,
                                               with_payload=[top], with_vectors=False),
                )
            except PermanentError as exc:  # the server refuses this filter (e.g. strict mode, unindexed key)
                _fail(item, "qdrant_rejected", f"Qdrant refused to scroll this filter's points: {exc}")
                return
            seen += len(page)
            if seen > limit:
                _fail(item, "too_many_points", f"filter matches more than {limit} points (QCC_MAX_POINTS_PER_FILTER_REEMBED)")
                return
            for record in page:
                text = text_at(record.payload or {}, event.text_field)
                if text is not None:
                    own[record.id] = text
            if offset is None:
                break
        texts[item.position] = own

    async def _embed(
        self, schema: CollectionSchema, live: list[_Item], texts: dict[int, dict[PointKey, str]]
    ) -> dict[int, dict[PointKey, Vector]]:
        """One embedding call per (model, vector name); results by event position and id."""
        groups: dict[tuple[str, str, str], list[tuple[int, PointKey, str]]] = defaultdict(list)
        for item in live:
            if item.error is not None or item.position not in texts:
                continue
            event = item.event
            name = getattr(event, "vector_name", None) or DEFAULT_VECTOR
            kind = vector_kind(schema, name) or "dense"
            model = getattr(event, "model", None) or self.embedder.default_model(kind)  # type: ignore[arg-type]
            for pid, text in texts[item.position].items():
                groups[(model, kind, name)].append((item.position, pid, text))
        out: dict[int, dict[PointKey, Vector]] = defaultdict(dict)
        by_position = {item.position: item for item in live}
        for (model, kind, name), entries in groups.items():
            vectors = await self.embedder.embed(model, kind, [text for _, _, text in entries])  # type: ignore[arg-type]
            if kind == "dense" and vectors and len(vectors[0]) != schema.dense[name].size:  # type: ignore[arg-type]
                message = (f"model {model!r} makes {len(vectors[0])}-dimensional vectors; "  # type: ignore[arg-type]
                           f"{name or 'the unnamed vector'} has {schema.dense[name].size}")
                for position in {pos for pos, _, _ in entries}:
                    _fail(by_position[position], "vector_size_mismatch", message)
                continue
            for (position, pid, _), vector in zip(entries, vectors):
                out[position][pid] = vector
        return out

    async def _read(self, collection: str, ids: list[PointKey], payload: bool | list[str], vectors: bool = False) -> State:
        """The existing points among ``ids``, in chunks of READ_CHUNK per ``retrieve``."""
        state: State = {}
        for start in range(0, len(ids), READ_CHUNK):
            chunk = ids[start : start + READ_CHUNK]
            records = await self.sink.call(
                f"retrieve({collection}, {len(chunk)} ids)",
                lambda: self.client.retrieve(collection, chunk, with_payload=payload, with_vectors=vectors),
            )
            state.update(state_from_records(records))
        return state

    async def _verify(self, schema: CollectionSchema, before: State, applied: list[Op],
                      rejected: list[Op]) -> VerificationOutcome:
        """Read back the points of the applied ops, and of the rejected ones: a server applies a
        multi-point op in chunks up to the chunk naming a missing point, so a dead-lettered event
        may have changed some of its points (their payload and existence are checked; ``before``
        holds no vectors to compare theirs with)."""
        if not self.settings.verify_after_apply:
            return VerificationOutcome(status="skipped", reason="verification is off (QCC_VERIFY_AFTER_APPLY)")
        if not applied and not rejected:
            return VerificationOutcome(status="skipped", reason="no operation was applied")
        if any(op.by_filter for op in applied + rejected):
            return VerificationOutcome(status="skipped", reason="the batch has filter-addressed operations")
        ids = _ids_of(applied + rejected)
        after = await self._read(schema.name, ids, payload=True, vectors=True)
        expected = expected_state({pid: before[pid] for pid in ids if pid in before}, applied)
        return compare(expected, after, ids, touched_vectors(applied), schema.cosine_names(),
                       rejected_ids=set(_ids_of(rejected)))

    def _report(
        self,
        collection: str | None,
        items: list[_Item],
        applied: list[Op],
        requests: int,
        outcome: VerificationOutcome,
        timings: dict[str, float],
        started: float,
    ) -> tuple[VerificationEvent, list[DeadLetterRecord]]:
        records = [item.record for item in items]
        ranges = offset_ranges(records)
        batch_id = batch_id_for(records[0].topic, ranges, collection)
        applied_positions = {s for op in applied for s in op.sources}
        operations: dict[str, int] = defaultdict(int)
        for item in items:
            if item.position in applied_positions and item.event is not None:
                operations[item.event.op] += 1
        failed = [item for item in items if item.error is not None]
        stamps = [r.timestamp_ms for r in records if r.timestamp_ms]
        now = datetime.now(timezone.utc)
        verification = VerificationEvent(
            batch_id=batch_id,
            collection=collection,
            topic=records[0].topic,
            ranges=ranges,
            event_count=len(items),
            applied_event_count=len(applied_positions),
            operations=dict(operations),
            request_operations=len(applied),
            qdrant_requests=requests,
            points=points_touched(_ids_of(applied)),
            applied_at=now,
            latency=Latency(
                window_seconds=time.monotonic() - started,
                embed_seconds=timings["embed"],
                apply_seconds=timings["apply"],
                verify_seconds=timings["verify"],
                max_event_age_seconds=(now.timestamp() * 1000 - min(stamps)) / 1000 if stamps else None,
            ),
            verification=outcome,
            dead_letters=[
                DeadLetterRef(partition=i.record.partition, offset=i.record.offset, code=i.error.code,
                              message=i.error.message[:LISTED_MESSAGE_CHARS])
                for i in failed[:LISTED_DEAD_LETTERS]
                if i.error is not None
            ],
            dead_letter_count=len(failed),
            worker=WORKER,
        )
        return verification, [dead_letter_for(item, batch_id) for item in failed]


def is_infrastructure(exc: BaseException) -> bool:
    """Failures that are no record's fault: local storage, configuration, the broker, shutdown."""
    from aiokafka.errors import KafkaError

    return isinstance(exc, (StorageError, ConfigurationError, WindowAbandoned, KafkaError, asyncio.CancelledError,
                            MemoryError))


def _fail(item: _Item, code: str, message: str) -> None:
    if item.error is None:
        item.error = ErrorInfo(code=code, message=message)


def _ids_of(ops: Sequence[Op]) -> list[PointKey]:
    return list(dict.fromkeys(pid for op in ops for pid in op.point_ids()))


def _list(ids: Sequence[PointKey], limit: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")

