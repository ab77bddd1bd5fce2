"""Zero-downtime model switch: a new collection behind the same alias, no update lost.

The design (docs/bulk.md has the long form) is snapshot plus log, made exact by two facts:
every point operation is an assignment, so replaying an applied prefix of the log in order
leaves the same state; and a fence record in every partition splits the log into "before
the switch" and "after the switch".

1. Create the new collection: the old one's whole configuration and payload indexes, the
   migrated vector resized for the new model (its strict mode comes in step 7, before the switch).
2. Record W0, the workers' committed offsets on both input topics: every event before W0
   is in the old collection.
3. Fill: scroll the old collection (payload, the other vectors), embed the text field with
   the new model, upsert into the new collection.
4. Tail: replay both topics from W0 into the new collection, with the new model. The fill
   read points after W0, so the replay re-applies some changes: harmless, as said above.
5. Fence: write a fence record to every partition of both topics. A worker that reaches one
   holds that partition until the alias points at the new collection.
6. The tail applies everything up to the fences, then re-embeds the points whose migrated
   vector came as raw vectors of the old model (they cannot go into the new collection).
7. Verify that old and new hold the same points and payloads (the worker has applied
   everything before the fences to the old one), give the new collection the old one's strict
   mode and read fan-out, then switch the alias atomically. Workers
   pass their fences and write to the new collection; nothing after a fence ever reached
   the old one, nothing before it is missing from the new one.
8. Optionally drop the old collection.

A collection of chunked documents (QCC_CHUNKED_COLLECTIONS, or a chunked text column of the CDC
mapping, names the alias) is re-chunked for the new model's window: the fill rebuilds each
document from its chunks and chunks it again (connector/bulk/rechunk.py), the tail's windows
chunk as the workers do, and step 7 compares
documents (text and payload) instead of points. Chunk ids derive from the alias in both, the name
events use, so a document's chunks keep their ids across the switch.

Limits: the migrated vector must be a named vector (or a chunked collection's one vector); during
steps 5-7 (seconds) the workers hold the fenced partitions, so writes wait while reads go on.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from qdrant_client import models as qm

from connector.bulk.collection_config import (
    CollectionConfigError,
    CollectionPlan,
    collection_plan,
    create_from_plan,
    finish_from_plan,
)
from connector.bulk.documents import check_documents, with_chunk_index, workers_chunking
from connector.bulk.rechunk import RechunkJob, new_chunking, rechunk
from connector.bulk.scroll import PointsProgress
from connector.bulk.verify import VerifyReport, verify_collections, verify_documents
from connector.domain.changes import (
    ChangeEvent,
    FenceRecord,
    ReembedEvent,
    UpdateVectorsEvent,
    UpsertEvent,
    filter_of,
    normalize_id,
    point_ids_of,
)
from connector.domain.documents import document_key
from connector.domain.operations import PointKey, Sparse, Vector
from connector.embedding.embedder import Embedder
from connector.errors import ConnectorError, InvalidOption
from connector.kafka.options import client_options
from connector.qdrant import RetryingClient
from connector.qdrant.reads import count_points, retrieve_chunked, scroll_pages
from connector.qdrant.updates import ConfirmedUpdate
from connector.settings import ChunkedField, Settings
from connector.stream.window import Record, WindowProcessor

TAIL_WINDOW = 500


def dense(vector: Vector) -> list[float]:
    """A dense vector as qdrant-client takes it (the migrated vector is always dense)."""
    if isinstance(vector, Sparse):
        raise MigrationError("a migration re-embeds a dense vector only")
    return list(vector)


class MigrationError(ConnectorError):
    """The migration stopped before the switch; the alias still points at the old collection."""


@dataclass
class MigrationReport:
    alias: str
    old_collection: str
    new_collection: str
    model: str
    copied: int = 0
    without_text: int = 0
    tail_events: int = 0
    tail_dead_letters: int = 0
    touched_up: int = 0
    fence_offsets: dict[str, int] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)  # a chunked collection's re-chunk (fill)
    chunking: dict[str, Any] | None = None  # the new collection's chunking: QCC_CHUNKED_COLLECTIONS after the switch
    verification: dict[str, Any] = field(default_factory=dict)
    switched: bool = False
    dropped_old: bool = False
    seconds: float = 0.0


def retarget(alias: str, old: str, new: str, vector_name: str, model: str, touch_up: set[PointKey]) -> Any:
    """The tail's rewrite of an event for the new collection (pure but for ``touch_up``).

    Events on the alias or the old collection go to the new one; texts for the migrated
    vector are embedded with the new model; raw vectors of the old model for it are dropped
    and the point is queued for re-embedding from its payload. Events of other collections are
    the workers' alone: applied again here, behind the workers, one would undo a later change.
    """

    def rewrite(event: ChangeEvent) -> ChangeEvent | None:
        if event.collection not in (alias, old):
            return None
        update: dict[str, Any] = {"collection": new}
        if isinstance(event, (ReembedEvent, UpsertEvent)) and (event.vector_name or "") == vector_name:
            update["model"] = model
        if isinstance(event, (UpsertEvent, UpdateVectorsEvent)):
            points = []
            for point in event.points:
                vector = point.vector
                if isinstance(vector, dict) and vector_name in vector:
                    touch_up.add(normalize_id(point.id))
                    rest = {k: v for k, v in vector.items() if k != vector_name}
                    kept = point.model_copy(update={"vector": rest or None})
                else:
                    kept = point
                if isinstance(event, UpdateVectorsEvent) and kept.vector is None:
                    continue
                points.append(kept)
            if not points:
                return None
            update["points"] = points
        return event.model_copy(update=update)

    return rewrite


def migrated_plan(info: qm.CollectionInfo, vector_name: str, size: int, distance: qm.Distance) -> CollectionPlan:
    """The old collection's plan with the migrated vector's size and distance changed.

    The vector keeps its other settings (HNSW, quantization, datatype, on-disk); a multivector
    setting is dropped, as the new model gives one vector per text. The unnamed vector ("") is
    migrated only where it is the collection's one vector (a chunked collection's may be).
    """
    vectors = info.config.params.vectors
    changed = {"size": size, "distance": distance, "multivector_config": None}
    if vector_name == "" and isinstance(vectors, qm.VectorParams):
        plan = collection_plan(info)
        return replace(plan, create={**plan.create, "vectors_config": vectors.model_copy(update=changed)})
    if not isinstance(vectors, dict) or vector_name not in vectors:
        raise CollectionConfigError(f"no named dense vector {vector_name!r}")
    params = vectors[vector_name].model_copy(update=changed)
    return collection_plan(info).with_vector(vector_name, params)


class Migration:
    def __init__(self, settings: Settings, qdrant: RetryingClient, embedder: Embedder, *, alias: str,
                 new_collection: str,
                 text_field: str | None, vector_name: str | None, model: str,
                 distance: qm.Distance = qm.Distance.COSINE,
                 page_size: int = 256, fence_seconds: float = 120.0, verify_seconds: float = 60.0,
                 drop_old: bool = False, show_progress: bool = True, max_tokens: int | None = None,
                 overlap_tokens: int | None = None) -> None:
        """A collection of chunked documents behind ``alias`` (QCC_CHUNKED_COLLECTIONS or a chunked column
        of the QCC_CDC_MAPPING file names the alias, as events do) is re-chunked for the new model:
        ``max_tokens``/``overlap_tokens`` or the old limits, cut to the new model's window
        (:mod:`connector.bulk.rechunk`)."""
        self.chunked = workers_chunking(settings)  # every collection the workers chunk, as they read it
        self.chunking = self.chunked.get(alias)
        if self.chunking is not None:
            text_field, vector_name = self._chunked_options(text_field, vector_name, self.chunking)
        elif max_tokens is not None or overlap_tokens is not None:
            raise InvalidOption("--max-tokens" if max_tokens is not None else "--overlap-tokens",
                                f"QCC_CHUNKED_COLLECTIONS does not name {alias} (nor does a chunked column of "
                                "QCC_CDC_MAPPING): it gives a collection of chunked documents its chunking (text "
                                "field, vector, limits)")
        elif text_field is None:
            raise InvalidOption("--text-field", "name the payload key that holds the text to embed")
        elif vector_name is None:
            raise InvalidOption("--vector-name", "name the named dense vector that changes model")
        elif not vector_name:
            raise MigrationError("migrate needs a named vector (--vector-name)")
        self.settings, self.qdrant, self.embedder = settings, qdrant, embedder
        self.alias, self.new, self.text_field = alias, new_collection, str(text_field)
        self.vector_name, self.model = str(vector_name), model
        self.limits = (max_tokens, overlap_tokens)
        self.new_chunking: ChunkedField | None = None  # the chunking of the new collection, once known
        self.distance, self.page_size, self.fence_seconds = distance, page_size, fence_seconds
        self.verify_seconds, self.drop_old, self.show_progress = verify_seconds, drop_old, show_progress
        self.topics = [settings.patch_topic, settings.reembed_topic]
        self.touch_up: set[PointKey] = set()
        self._admin: Any = None  # an AIOKafkaAdminClient while run() runs

    @staticmethod
    def _chunked_options(text_field: str | None, vector_name: str | None, chunking: ChunkedField
                         ) -> tuple[str, str]:
        """A chunked collection's text field and vector are its setting's; options may only repeat them."""
        if text_field not in (None, chunking.text_field):
            raise InvalidOption(f"--text-field {text_field}", f"the documents' text is {chunking.text_field!r} "
                                "(its chunking: QCC_CHUNKED_COLLECTIONS or QCC_CDC_MAPPING)")
        if vector_name not in (None, chunking.vector):
            raise InvalidOption(f"--vector-name {vector_name}", f"the chunks are embedded into "
                                f"{chunking.vector or 'the unnamed vector'} (its chunking: QCC_CHUNKED_COLLECTIONS "
                                "or QCC_CDC_MAPPING)")
        return chunking.text_field, chunking.vector

    @property
    def client(self) -> Any:
        return self.qdrant.client

    async def run(self) -> MigrationReport:
        started = time.monotonic()
        old = await self._old_collection()
        report = MigrationReport(self.alias, old, self.new, self.model)
        if self.chunking is not None:  # before anything is created: limits the new model cannot take are refused
            old_chunking = self.chunking.model_copy(update={"model": self.chunking.model or self.settings.dense_model})
            self.new_chunking = new_chunking(self.embedder, old_chunking, self.model, *self.limits)
            report.chunking = self.new_chunking.model_dump(mode="json")
        plan = await self.create_new_collection(old)
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(self.settings))
        await consumer.start()
        self._admin = AIOKafkaAdminClient(**client_options(self.settings))  # polled while verifying
        await self._admin.start()
        try:
            partitions = [TopicPartition(t, p) for t in self.topics for p in sorted(await self._partitions(t))]
            w0 = await self._applied_offsets(consumer, partitions)
            if self.new_chunking is None:
                report.copied, report.without_text = await self._fill(old)
            else:
                report.documents = await self._fill_documents(old, self.new_chunking)
                report.copied = report.documents["written"]
            tail = _Tail(self, consumer, partitions, w0, old)
            await tail.run_until(await consumer.end_offsets(partitions))
            fences = await self._write_fences()
            report.fence_offsets = {f"{tp.topic}:{tp.partition}": o for tp, o in fences.items()}
            await tail.run_until({tp: o + 1 for tp, o in fences.items()})
            report.tail_events, report.tail_dead_letters = tail.events, tail.dead_letters
            if self.new_chunking is not None:
                await self._check_tail_documents(tail)
            report.touched_up = await self._touch_up()
            verification, in_flight = await self._verify_until_equal(old, tail, fences)
            report.verification = {**json.loads(verification.to_json()), "in_flight_points": len(in_flight)}
            if not verification.ok:
                raise MigrationError(
                    f"old and new collections differ after {self.verify_seconds}s; alias not switched: "
                    f"{verification.missing_count} missing, {verification.extra_count} extra, "
                    f"{verification.mismatched_count} differ"
                )
            if datetime.now(timezone.utc) > self._fence_expiry - timedelta(seconds=5):
                raise MigrationError("the fences are about to expire; alias not switched (raise --fence-seconds)")
            await self.finish_new_collection(plan)
            await self._switch()
            report.switched = True
        finally:
            await consumer.stop()
            await self._admin.close()
        if self.drop_old:
            await self.qdrant.call("delete_collection", lambda: self.client.delete_collection(old))
            report.dropped_old = True
        report.seconds = round(time.monotonic() - started, 2)
        return report

    async def _old_collection(self) -> str:
        aliases = await self.qdrant.call("get_aliases", self.client.get_aliases)
        for alias in aliases.aliases:
            if alias.alias_name == self.alias:
                return str(alias.collection_name)
        raise MigrationError(f"{self.alias!r} is not an alias: create it (or point producers at one) before migrating")

    async def create_new_collection(self, old: str) -> CollectionPlan:
        """Create the new collection like ``old`` but for the migrated vector; returns the plan,
        whose finishing step (strict mode, read fan-out) waits until the copy is verified."""
        if await self.qdrant.call("collection_exists", lambda: self.client.collection_exists(self.new)):
            raise MigrationError(f"collection {self.new!r} already exists")
        info = await self.qdrant.call("get_collection", lambda: self.client.get_collection(old))
        probe = await self.embedder.embed(self.model, "dense", ["dimension probe"])
        try:
            plan = migrated_plan(info, self.vector_name, len(probe[0]), self.distance)
        except CollectionConfigError as exc:
            raise MigrationError(f"collection {old!r}: {exc}") from None
        if self.chunking is not None:  # the index that finds a document's chunks (a local-mode old one has none)
            plan = with_chunk_index(plan)
        await create_from_plan(self.qdrant, self.new, plan)
        return plan

    async def finish_new_collection(self, plan: CollectionPlan) -> None:
        """The old collection's strict mode and read fan-out, once the new one holds the data."""
        await finish_from_plan(self.qdrant, self.new, plan)

    async def _fill(self, old: str) -> tuple[int, int]:
        """Copy payload and the other vectors; embed the text with the new model."""
        copied = without_text = 0
        total = await count_points(self.qdrant, old)
        with PointsProgress(f"fill {self.new}", total, self.show_progress) as progress:
            async for page, _ in scroll_pages(
                self.qdrant, old, with_payload=True, with_vectors=True, page_size=self.page_size
            ):
                vectors = await self.embedder.embed_payload_texts(self.model, "dense", page, self.text_field)
                points = []
                for record in page:
                    old_vectors = record.vector or {}
                    if not isinstance(old_vectors, dict):  # migrated_plan allows only named vectors
                        raise MigrationError(f"point {record.id} of {old!r} has an unnamed vector")
                    named = {k: v for k, v in old_vectors.items() if k != self.vector_name}
                    if record.id in vectors:
                        named[self.vector_name] = dense(vectors[record.id])
                    points.append(qm.PointStruct(id=record.id, vector=named, payload=record.payload or {}))
                await self.qdrant.call("upsert",
                                       ConfirmedUpdate(partial(self.client.upsert, self.new, points, wait=True)))
                copied += len(points)
                without_text += len(page) - len(vectors)
                progress.advance(len(page))
        return copied, without_text

    async def _fill_documents(self, old: str, chunking: ChunkedField) -> dict[str, Any]:
        """Each document of ``old`` rebuilt from its chunks and chunked for the new model into the new
        collection, chunk ids from the alias (the name events use, before and after the switch)."""
        job = RechunkJob(old, self.new, self.alias, chunking, reuse_stored=False)
        summary = await rechunk(self.qdrant, self.embedder, job, show_progress=self.show_progress,
                                max_request_bytes=self.settings.qdrant_max_request_bytes)
        if not summary.ok:
            bad = summary.not_rebuilt or summary.mismatched
            raise MigrationError(
                f"{summary.not_rebuilt_count} documents of {old!r} cannot be rebuilt from their chunks and "
                f"{summary.mismatched_count} read back from {self.new!r} otherwise than written (first: document "
                f"{bad[0]['document_id']}, {bad[0]['problem']}); alias not switched")
        return asdict(summary)

    async def _check_tail_documents(self, tail: _Tail) -> None:
        """The documents the replay wrote are whole in the new collection (the fill read back its own)."""
        keys = sorted({document_key(pid) for pid in tail.named_points()})
        check = await check_documents(self.qdrant, self.new, keys, show_progress=False)
        if check.incomplete_count:
            first = check.incomplete[0]
            raise MigrationError(f"{check.incomplete_count} documents the replay wrote into {self.new!r} are not "
                                 f"whole (first: document {first['document_id']}, {first['problem']}); alias not "
                                 "switched")

    async def _applied_offsets(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Where the replay starts: offsets below which the workers have applied everything.

        The workers' committed offsets qualify (a worker commits only applied windows); where
        the group has committed nothing, the start of the log. Not the end of the log: events
        there may not have reached the old collection when the fill reads it.
        """
        committed = await self._committed(partitions)
        beginning = await consumer.beginning_offsets(partitions)
        return {tp: committed.get(tp, beginning[tp]) for tp in partitions}

    async def _partitions(self, topic: str) -> set[int]:
        producer = AIOKafkaProducer(**client_options(self.settings))
        await producer.start()
        try:
            return set(await producer.partitions_for(topic))
        finally:
            await producer.stop()

    async def _write_fences(self) -> dict[TopicPartition, int]:
        self._fence_expiry = datetime.now(timezone.utc) + timedelta(seconds=self.fence_seconds)
        fence = FenceRecord(schema_version=1, kind="fence", collection=self.alias, target=self.new,
                            migration_id=uuid.uuid4().hex, expires_at=self._fence_expiry).model_dump_json().encode()
        producer = AIOKafkaProducer(acks="all", **client_options(self.settings))
        await producer.start()
        try:
            offsets = {}
            for topic in self.topics:
                for partition in sorted(await producer.partitions_for(topic)):
                    meta = await producer.send_and_wait(topic, fence, partition=partition)
                    offsets[TopicPartition(topic, partition)] = meta.offset
            return offsets
        finally:
            await producer.stop()

    async def _touch_up(self) -> int:
        """Re-embed, from their payload, the points whose old-model vectors the tail dropped."""
        ids = list(self.touch_up)
        done = 0
        for start in range(0, len(ids), self.page_size):
            chunk = ids[start : start + self.page_size]
            records = await retrieve_chunked(self.qdrant, self.new, chunk, with_payload=[self.text_field.split(".")[0]])
            vectors = await self.embedder.embed_payload_texts(self.model, "dense", records, self.text_field)
            if vectors:
                pvs = [qm.PointVectors(id=pid, vector={self.vector_name: dense(v)}) for pid, v in vectors.items()]
                await self.qdrant.call("update_vectors",
                                       ConfirmedUpdate(partial(self.client.update_vectors, self.new, pvs, wait=True)))
            done += len(vectors)
        return done

    async def _verify_until_equal(
        self, old: str, tail: _Tail, fences: dict[TopicPartition, int]
    ) -> tuple[VerifyReport, set[Any]]:
        """Old and new must hold the same points and payloads, except points still in flight.

        A worker holds a whole topic at the first fence it meets, so events of other partitions
        between its committed offset and their fence may not be in the old collection yet; the
        points they name are left out of the comparison (the new collection has them, and the
        worker applies them to it after the switch, in order). A filter-addressed event in
        flight cannot be bounded: the comparison then stays unequal and the switch does not happen.
        """
        deadline = time.monotonic() + self.verify_seconds
        while True:
            in_flight = tail.points_between(await self._committed(list(fences)), fences)
            if self.chunking is None:
                report = await verify_collections(self.qdrant, old, self.new, with_vectors=False, show_progress=False)
            else:  # re-chunked: the same documents (text and payload), not the same chunk points
                report = await verify_documents(self.qdrant, old, self.new, show_progress=False)
            if in_flight is not None:
                report = report.ignoring({json.dumps(i) for i in in_flight})
            if report.ok or time.monotonic() > deadline:
                return report, in_flight or set()
            await asyncio.sleep(0.5)

    async def _committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        committed = await self._admin.list_consumer_group_offsets(self.settings.consumer_group)
        return {tp: committed[tp].offset for tp in partitions if tp in committed and committed[tp].offset >= 0}

    async def _switch(self) -> None:
        operations = [
            qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=self.alias)),
            qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=self.new, alias_name=self.alias)),
        ]
        await self.qdrant.call("update_collection_aliases", lambda: self.client.update_collection_aliases(operations))


class _Tail:
    """Replays both topics into the new collection, in order, from recorded offsets."""

    def __init__(self, migration: Migration, consumer: AIOKafkaConsumer, partitions: list[TopicPartition],
                 start: dict[TopicPartition, int], old: str) -> None:
        chunked = migration.new_chunking
        settings = migration.settings.model_copy(update={
            "allowed_models": sorted(migration.settings.models_allowed() | {migration.model}),
            "collections": None,
            # every collection the workers chunk (the mapping's too: the tail reads no mapping), and the new one
            "chunked_collections": {**migration.chunked, **({migration.new: chunked} if chunked is not None else {})},
        })
        rewrite = retarget(
            migration.alias, old, migration.new, migration.vector_name, migration.model, migration.touch_up
        )
        kinds: tuple[tuple[str, Literal["patch", "reembed"]], ...] = (
            (settings.patch_topic, "patch"), (settings.reembed_topic, "reembed"))
        self.processors = {
            t: WindowProcessor(settings, migration.client, migration.qdrant, migration.embedder, kind,
                               retarget=rewrite, honor_fences=False,
                               # chunk ids from the alias, as the workers' writes before and after the switch
                               chunk_ids_from={migration.new: migration.alias} if chunked is not None else None)
            for t, kind in kinds
        }
        self.consumer = consumer
        self.reembed_topic = settings.reembed_topic
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start[tp])
        self.position = dict(start)
        self.events = self.dead_letters = 0
        self.touched: dict[TopicPartition, dict[int, list[PointKey] | None]] = {tp: {} for tp in partitions}

    def points_between(
        self, committed: dict[TopicPartition, int], fences: dict[TopicPartition, int]
    ) -> set[PointKey] | None:
        """Points named by events from the committed offsets up to the fences; None if unbounded."""
        points: set[PointKey] = set()
        for tp, fence in fences.items():
            for offset, ids in self.touched[tp].items():
                if committed.get(tp, 0) <= offset < fence:
                    if ids is None:
                        return None
                    points.update(ids)
        return points

    def named_points(self) -> set[PointKey]:
        """Every point (document, in a chunked collection) an id-addressed event of the replay named."""
        return {pid for offsets in self.touched.values() for ids in offsets.values() for pid in ids or ()}

    async def run_until(self, targets: dict[TopicPartition, int]) -> None:
        """Apply every record before ``targets`` (exclusive) on each partition, and none after."""
        while any(self.position[tp] < end for tp, end in targets.items()):
            batches = await self.consumer.getmany(timeout_ms=500, max_records=TAIL_WINDOW)
            for tp, messages in batches.items():
                end = targets.get(tp, self.position[tp])
                kept = [m for m in messages if m.offset < end]
                if len(kept) < len(messages):
                    # records past the target belong to a later run_until (or to the workers only)
                    self.consumer.seek(tp, kept[-1].offset + 1 if kept else self.position[tp])
                records = [Record(m.topic, m.partition, m.offset, m.value, m.key, m.timestamp) for m in kept]
                processor = self.processors[tp.topic]
                items = processor.parse(records)
                for item in items:
                    event = item.event
                    if event is None:  # a rejection or a fence
                        self.touched[tp][item.record.offset] = []
                    else:
                        filtered = filter_of(event) is not None
                        self.touched[tp][item.record.offset] = None if filtered else point_ids_of(event)
                if records:
                    result = await processor.process_parsed(items)
                    self.events += len(records)
                    self.dead_letters += len(result.dead_letters)
                    self.position[tp] = records[-1].offset + 1
