"""The fault suite's runner: each scenario N times with random timing, and a report.

    python -m tests.faults.runner --scenario kills --runs 1 --events 100000 --faults 20
    python -m tests.faults.runner --qdrant grpc --scenario server-kill --events 20000 --faults 5

starts its own broker (or uses ``--bootstrap``), runs real worker processes against Qdrant's
local mode or a real Qdrant server (``--qdrant local|rest|grpc``), injects faults, and checks
the same thing after every run: Qdrant's state equals the reference model of all valid
events, every record is covered by a verification event, the group has committed every
offset, every invalid record is in the dead-letter topic, and nothing else is. The pytest
entries (``test_fault_suite.py``, ``test_scale_out.py``) run it at a small size; the reports
of the large runs are in ``docs/faults.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.audit.accounting import DeadLetter, PartitionReport, Verification, account, verification_from_json
from connector.dev.broker import KafkaBroker
from connector.dev.qdrant_server import QdrantServer
from connector.dev.spawn import free_port
from connector.embedding.embedder import Embedder
from connector.embedding.offline_model import assemble_all
from connector.kafka.publishing import HEADER_FORM, read_dead_letter
from connector.qdrant.wires.models import state_from_records
from connector.settings import Settings
from connector.stream.pipeline import RECHECK_HEADER
from tests.faults.workload import (
    DOCS,
    DOCS_POINTS,
    KV,
    MISSING_DOC,
    OVERSIZED_BYTES,
    POISON_STAGES,
    Record,
    as_stored,
    doc_text,
    final_dead,
    hostile_workload,
    is_kv_patch,
    make_workload,
    point_of,
    poison_marker,
    reference_docs,
    reference_kv,
    replaced_later,
)
from tests.integration.harness import Stack, TopicFollower, Worker, produce
from tests.qdrant_targets import QdrantTarget

PROJECT = Path(__file__).resolve().parents[2]
KILL_KINDS = ("sigkill", "crash-while-embedding", "crash-after-apply", "crash-after-confirm")
OUTAGE_KINDS = ("qdrant-unavailable", "qdrant-timeout")
PADDING_IDS = 1_000_000  # kv ids from here on are padding, not part of the workload
SERVERS = ("rest", "grpc")  # a Qdrant server, over REST or gRPC
TARGET_NAMES = ("local", *SERVERS)
SERVER_TIMEOUT_SECONDS = 2.0  # the client's request timeout in server-pause: the pause outlasts it
TEXT_SHARE = 0.02  # records that are a docs text patch or the re-embed that follows it
SCALE_WAIT = 240  # seconds a scale-out step may take: ~10 s on 2 busy cores, > 120 s seen under far heavier load


@dataclass
class Fault:
    kind: str
    at_seconds: float  # since the run started
    recovered_seconds: float | None = None  # fault -> first verification event of the recovered worker
    note: str = ""


@dataclass
class RunReport:
    scenario: str
    seed: int
    qdrant: str = "local"  # local mode, or the server over rest or grpc
    records: int = 0
    invalid_records: int = 0
    reembed_records: int = 0
    faults: list[Fault] = field(default_factory=list)
    lost: int = 0  # valid records not covered by any verification event
    state_differences: int = 0  # points whose final state differs from the reference model
    missing_dead_letters: int = 0
    unexpected_dead_letters: int = 0
    replayed_offsets: int = 0  # confirmed more than once (a replayed window)
    replayed_batches: int = 0  # batch ids seen more than once
    mismatches: int = 0  # verification events with status "mismatch"
    patched_text_vectors: int = 0  # docs points re-embedded from a patched text, vector checked against it
    unknown_text_vectors: int = 0  # docs points with a text patch after their last field re-embed: not checked
    rechecked_reembeds: int = 0  # re-embeds published again after a rebalance cut their wait short
    dead_letters_by_code: dict[str, int] = field(default_factory=dict)  # final dead letter per offset
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


# --- the world a run needs --------------------------------------------------------------------


class Tail(TopicFollower):
    """The verification and dead-letter topics, read in the background for the whole run."""

    def __init__(self, bootstrap: str, verification_topic: str, dead_letter_topic: str, reembed_topic: str) -> None:
        self.verifications: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []
        self.rechecks: list[dict[str, Any]] = []  # re-embeds a worker published again (pipeline.RECHECK_HEADER)
        self.read_to: dict[TopicPartition, int] = {}  # per partition, the offset after the last record read
        lists = {verification_topic: self.verifications, dead_letter_topic: self.dead_letters}
        self._bootstrap, self._topics = bootstrap, [*lists, reembed_topic]
        self._dead_letter_topic, self._reembed_topic = dead_letter_topic, reembed_topic
        super().__init__(bootstrap, self._topics, lambda topic, record: lists[topic].append(record))

    async def _run(self) -> None:
        # dead letters in any form: the record_value form's value is the original, not JSON
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for tp, messages in batch.items():
                for message in messages:
                    self.read_to[TopicPartition(tp.topic, tp.partition)] = message.offset + 1
                    if tp.topic == self._reembed_topic:
                        if RECHECK_HEADER in dict(message.headers or []):
                            self.rechecks.append(json.loads(message.value))
                    elif tp.topic == self._dead_letter_topic:
                        envelope, original = read_dead_letter(message.value, list(message.headers or []))
                        envelope["form"] = dict(message.headers or []).get(HEADER_FORM, b"envelope").decode()
                        envelope["original_bytes"] = None if original is None else len(original)
                        self.dead_letters.append(envelope)
                    else:
                        self.verifications.append(json.loads(message.value))

    async def wait(self, check: Callable[[], bool], timeout: float, what: str,
                   alive: Callable[[], None] = lambda: None) -> None:
        """Until ``check()``; ``alive()`` raises at once if something it watches has died."""
        deadline = time.monotonic() + timeout
        while not check():
            alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.1)

    async def caught_up(self, timeout: float = 60) -> None:
        """Until the tail has read its topics up to their end offsets as of now: once the workers
        have stopped, everything they published."""
        known = {topic: self._consumer.partitions_for_topic(topic) for topic in self._topics}  # it follows them
        if not all(known.values()):
            raise RuntimeError(f"the tail knows no partitions of some of its topics: {known}")
        partitions = [TopicPartition(topic, p) for topic, ps in known.items() for p in sorted(ps or ())]
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap)
        await consumer.start()
        try:
            ends = {tp: end for tp, end in (await consumer.end_offsets(partitions)).items() if end > 0}
        finally:
            await consumer.stop()
        deadline = time.monotonic() + timeout
        while short := {f"{tp.topic}:{tp.partition}": (self.read_to.get(tp, 0), end) for tp, end in ends.items()
                        if self.read_to.get(tp, 0) < end}:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the tail has not read to the end after {timeout:.0f} s: (read to, end) {short}")
            await asyncio.sleep(0.1)

    def by_worker(self, pid: int) -> bool:
        return any(v["worker"].endswith(f":{pid}") for v in self.verifications)

    def covered(self) -> set[tuple[str, int, int]]:
        return {(v["topic"], r["partition"], o) for v in self.verifications for r in v["ranges"]
                for o in range(r["first_offset"], r["last_offset"] + 1)}

    def last_confirmed_by(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> pid of the worker that confirmed its latest records."""
        last: dict[tuple[str, int], tuple[int, int]] = {}
        for v in self.verifications:
            pid = int(v["worker"].rsplit(":", 1)[1])
            for r in v["ranges"]:
                tp = (v["topic"], r["partition"])
                if r["last_offset"] >= last.get(tp, (-1, 0))[0]:
                    last[tp] = (r["last_offset"], pid)
        return {tp: pid for tp, (_, pid) in last.items()}


@dataclass
class Sent:
    records: list[Record] = field(default_factory=list)
    where: list[tuple[str, int, int]] = field(default_factory=list)  # (topic, partition, offset)


class Run:
    """One run: its topics, collections, workers, failpoints and everything produced."""

    def __init__(self, bootstrap: str, model_env: dict[str, str], workdir: Path, *, partitions: int,
                 qdrant: QdrantTarget | None = None, extra_env: dict[str, str] | None = None,
                 layout: dict[str, Any] | None = None) -> None:
        """``layout``: how the collections are split on a cluster (shard_number, replication_factor)."""
        self.layout = layout or {}
        self.failpoints = workdir / "failpoints"
        self.failpoints.mkdir(parents=True)
        self.qdrant = qdrant or QdrantTarget("local", path=workdir / "qdrant")
        self.http_port = free_port()
        self.stack = Stack(bootstrap, workdir, model_env, qdrant=self.qdrant, extra_env={
            "QCC_FAILPOINTS_DIR": str(self.failpoints), "QCC_HTTP_PORT": str(self.http_port),
            "QCC_HTTP_HOST": "127.0.0.1", **(extra_env or {})})
        self.partitions = partitions
        self.sent = Sent()
        self.started = time.monotonic()
        self.workers: list[Worker] = []  # every worker process started, in order
        self.ports: dict[int, int] = {}  # worker pid -> its /readyz port
        self.broker: KafkaBroker | None = None  # set when the scenario owns its broker

    @property
    def worker(self) -> Worker | None:
        """The worker started last."""
        return self.workers[-1] if self.workers else None

    @property
    def server(self) -> QdrantServer:
        assert self.qdrant.server is not None, "this scenario needs a Qdrant server"
        return self.qdrant.server

    @property
    def topics(self) -> dict[str, str]:
        return {"patch": self.stack.env["QCC_PATCH_TOPIC"], "reembed": self.stack.env["QCC_REEMBED_TOPIC"]}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def client(self) -> QdrantClient:
        """The run's Qdrant; in local mode close it before a worker opens the folder."""
        return self.qdrant.client()

    async def setup(self, kv_points: int = 0, payload_bytes: int = 0) -> None:
        client = self.client()
        try:
            client.create_collection(KV, vectors_config={"d": qm.VectorParams(size=2, distance=qm.Distance.DOT)},
                                     sparse_vectors_config={"s": qm.SparseVectorParams()}, **self.layout)
            client.create_collection(
                DOCS, vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)}, **self.layout
            )
            client.upsert(
                DOCS,
                [
                    qm.PointStruct(id=i, vector={"dense": initial_doc_vector()}, payload={"text": doc_text(i)})
                    for i in range(DOCS_POINTS)
                ],
            )
            if kv_points:
                client.upsert(
                    KV,
                    [
                        qm.PointStruct(
                            id=PADDING_IDS + i, vector={"d": [1.0, 0.0]}, payload={"pad": "x" * payload_bytes}
                        )
                        for i in range(kv_points)
                    ],
                )
        finally:
            client.close()

    async def send(self, records: list[Record]) -> None:
        for kind in ("patch", "reembed"):
            chosen = [r for r in records if r.topic == kind]
            if not chosen:
                continue
            where = await produce(self.stack.bootstrap, self.topics[kind], [(r.key, r.value) for r in chosen])
            self.sent.records += chosen
            self.sent.where += [(self.topics[kind], p, o) for p, o in where]

    def start_worker(self, *, own_port: bool = False, **options: Any) -> Worker:
        """A new worker process; ``own_port`` gives it a /readyz port of its own (several at once)."""
        port = free_port() if own_port else self.http_port
        self.stack.extra_env["QCC_HTTP_PORT"] = str(port)
        worker = Worker(self.stack, **options)
        self.workers.append(worker)
        self.ports[worker.process.pid] = port
        return worker

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.process.poll() is None]

    def readyz(self, worker: Worker | None = None) -> int:
        port = self.ports[worker.process.pid] if worker is not None else self.http_port
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    async def behind(self) -> dict[str, tuple[int, int]]:
        """Partitions whose committed offset is short of the end: "topic:partition" -> (committed, end)."""
        options = {"bootstrap_servers": self.stack.bootstrap}
        consumer, admin = AIOKafkaConsumer(**options), AIOKafkaAdminClient(**options)
        await consumer.start()
        await admin.start()
        try:
            partitions = [TopicPartition(t, p) for t in self.topics.values() for p in range(self.partitions)]
            end = await consumer.end_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(self.stack.env["QCC_CONSUMER_GROUP"])
        finally:
            await consumer.stop()
            await admin.close()
        at = {tp: committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0 for tp in partitions}
        return {f"{tp.topic}:{tp.partition}": (at[tp], end[tp]) for tp in partitions if at[tp] < end[tp]}


def initial_doc_vector() -> list[float]:
    return [1.0] + [0.0] * 383


# --- the check ---------------------------------------------------------------------------------


def audit_problems(where: list[tuple[str, int, int]], tail: Tail) -> list[str]:
    """What ``audit`` (connector/audit/accounting.py) finds in this run's trail, over the range of
    offsets sent to each partition: nothing, or the run has a hole the other checks name too.
    Then a gap is planted (one verification event left out whose offsets no other covers) and
    the audit must name exactly those offsets."""
    verifications = [v for i, record in enumerate(tail.verifications)
                     if (v := verification_from_json(record, (record.get("applied_at", ""), i))) is not None]
    dead = [DeadLetter(d["source"]["topic"], d["source"]["partition"], d["source"]["offset"], d["error"]["code"])
            for d in tail.dead_letters]
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for topic, partition, offset in where:
        first, last = spans.get((topic, partition), (offset, offset))
        spans[(topic, partition)] = (min(first, offset), max(last, offset))

    def audit(trail: list[Verification]) -> list[PartitionReport]:
        return [account(t, p, first, last + 1, trail, dead) for (t, p), (first, last) in sorted(spans.items())]

    problems = [f"audit: {r.topic}[{r.partition}] incomplete: gaps {r.gaps[:5]}, mismatches {r.mismatches[:5]}, "
                f"missing dead letters {r.missing_dead_letters[:5]}" for r in audit(verifications) if not r.complete()]
    times_covered: dict[tuple[str, int, int], int] = {}
    for v in verifications:
        for p, a, b in v.ranges:
            for o in range(a, b + 1):
                times_covered[(v.topic, p, o)] = times_covered.get((v.topic, p, o), 0) + 1
    alone = next((v for v in verifications if v.topic in {t for t, _ in spans} and all(
        times_covered[(v.topic, p, o)] == 1 for p, a, b in v.ranges for o in range(a, b + 1))), None)
    if alone is not None:
        planted = {(alone.topic, p, o) for p, a, b in alone.ranges for o in range(a, b + 1)}
        named = {(r.topic, r.partition, o) for r in audit([v for v in verifications if v is not alone])
                 for a, b in r.gaps for o in range(a, b + 1)}
        if named != planted:
            problems.append(f"audit: a planted gap of {len(planted)} offsets was named as {len(named)} offsets")
    return problems


def check(run: Run, tail: Tail, report: RunReport, embedder: Embedder) -> None:
    """The same check after every scenario; fills the report's counts and problems."""
    records, where = run.sent.records, run.sent.where
    report.records = len(records)
    report.invalid_records = sum(r.invalid for r in records)
    report.reembed_records = sum(r.topic == "reembed" for r in records)
    patch_positions = [i for i, r in enumerate(records) if is_kv_patch(r)]
    patch_events = [records[i].event for i in patch_positions]
    expected_kv, rejected = reference_kv(patch_events)  # type: ignore[arg-type]
    expected_dead = {where[i] for i, r in enumerate(records) if r.invalid}
    expected_dead |= {where[patch_positions[j]] for j in rejected}
    expected_dead |= {
        where[i]
        for i, r in enumerate(records)
        if r.topic == "reembed" and r.event and r.event.get("ids") == [MISSING_DOC]
    }
    expected_dead |= {where[i] for i, r in enumerate(records) if r.poison}

    covered = tail.covered()
    valid_where = [w for w, r in zip(where, records, strict=True) if not r.invalid]
    report.lost = sum(w not in covered for w in valid_where)
    if report.lost:
        report.problems.append(f"{report.lost} valid records not covered by a verification event")
    uncovered_invalid = sum(w not in covered for w, r in zip(where, records, strict=True) if r.invalid)
    if uncovered_invalid:
        report.problems.append(f"{uncovered_invalid} invalid records not covered by a verification event")

    dead, replayed = final_dead(tail.verifications)
    lettered = {(d["source"]["topic"], d["source"]["partition"], d["source"]["offset"]) for d in tail.dead_letters}
    report.replayed_offsets = len(replayed)
    ids = [v["batch_id"] for v in tail.verifications]
    report.replayed_batches = len(ids) - len(set(ids))
    report.mismatches = sum(v["verification"]["status"] == "mismatch" for v in tail.verifications)
    if report.mismatches:
        report.problems.append(f"{report.mismatches} verification events report a mismatch")

    report.problems += audit_problems(where, tail)

    # a replayed window may flip a missing-point rejection; a later upsert/delete must explain it
    patch_index = {where[i]: j for j, i in enumerate(patch_positions)}
    patch_where = [(w[1], w[2]) for w in (where[i] for i in patch_positions)]

    def explained(w: tuple[str, int, int]) -> bool:
        return w in patch_index and replaced_later(patch_events, patch_where, patch_index[w])  # type: ignore[arg-type]

    differing = (dead ^ expected_dead) | (lettered - expected_dead)
    flips = {w for w in differing if explained(w)}
    missing = {w for w in expected_dead - flips if w not in lettered or w not in dead}
    unexpected = ((lettered | dead) - expected_dead) - flips
    report.missing_dead_letters, report.unexpected_dead_letters = len(missing), len(unexpected)
    last_letter = {
        (d["source"]["topic"], d["source"]["partition"], d["source"]["offset"]): d for d in tail.dead_letters
    }
    codes = {w: last_letter[w]["error"]["code"] for w in dead if w in last_letter}
    report.dead_letters_by_code = {c: sum(v == c for v in codes.values()) for c in sorted(set(codes.values()))}
    not_poison = [w for w, r in zip(where, records, strict=True) if r.poison and codes.get(w) != "poison_record"]
    if not_poison:
        report.problems.append(f"{len(not_poison)} poison records not dead-lettered as poison_record: "
                               f"{[codes.get(w) for w in not_poison[:5]]}")
    for w, r in zip(where, records, strict=True):
        if len(r.value) >= OVERSIZED_BYTES and w in last_letter:
            got = last_letter[w]
            if got["form"] != "record_value" or got["original_bytes"] != len(r.value):
                report.problems.append(
                    f"the {len(r.value)}-byte record was dead-lettered in form {got['form']} "
                    f"with {got['original_bytes']} original bytes, not record_value with all of them"
                )
    position = {w: i for i, w in enumerate(where)}
    for label, found in (("expected dead letters missing", missing), ("unexpected dead letters", unexpected)):
        if found:
            sample = [records[position[w]].value[:100] for w in sorted(found)[:3]]
            report.problems.append(f"{len(found)} {label}: {sample}")

    client = run.client()
    try:
        docs = {p.id: p for p in _scroll_all(client, DOCS)}
        actual_kv = read_kv(client)
    finally:
        client.close()
    want, got = as_stored(expected_kv), as_stored(actual_kv)
    differing = sorted((pid for pid in set(want) | set(got) if want.get(pid) != got.get(pid)), key=str)
    report.state_differences = len(differing)
    if report.state_differences:
        sample = {pid: (want.get(pid), got.get(pid)) for pid in differing[:3]}
        report.problems.append(f"{report.state_differences} kv points differ from the reference model "
                               f"(point: (expected, actual)): {sample}")

    payload, expected = reference_docs(records)  # run.sent.records is in publish order
    # A re-embed re-done after a rebalance (a re-check, published later by the worker) embeds the
    # text of its own time: the last text written, or, if an inline re-embed came between, either.
    rechecked = {pid for event in tail.rechecks if event.get("collection") == DOCS for pid in event.get("ids") or []}
    report.rechecked_reembeds = len(tail.rechecks)
    texts = sorted({v.text for v in expected.values() if v is not None} | {payload[pid] for pid in rechecked})
    model = Settings(model_paths=json.loads(run.stack.env["QCC_MODEL_PATHS"])).dense_model
    vectors = dict(zip(texts, embedder.embed_sync(model, "dense", texts), strict=True)) if texts else {}
    wrong_docs, stale, wrong_payload = [], [], []
    for pid in range(DOCS_POINTS):
        if docs[pid].payload != {"text": payload[pid]}:
            wrong_payload.append(pid)
        if pid in expected and expected[pid] is None:
            report.unknown_text_vectors += 1  # a text patch after its last re-embed: either text
            continue
        want = expected.get(pid)
        doc_vector = docs[pid].vector["dense"]
        holds_recheck = pid in rechecked and _cosine(vectors[payload[pid]], doc_vector) > 0.99  # its last written text
        if holds_recheck or _cosine(vectors[want.text] if want else initial_doc_vector(), doc_vector) > 0.99:
            report.patched_text_vectors += bool(want and want.patched)
        elif want and want.patched:
            stale.append(pid)
        else:
            wrong_docs.append(pid)
    for found, label in ((wrong_payload, "docs points whose payload text is not the last text written"),
                         (wrong_docs, "docs points do not hold the embedding of their last re-embed text"),
                         (stale, ("docs points re-embedded from a patched text do not hold the embedding of the last "
                                  "text written before the re-embed was published (a stale re-embed)"))):
        if found:
            report.state_differences += len(found)
            report.problems.append(f"{len(found)} {label}: points {found[:10]}")


def _cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _scroll_all(client: QdrantClient, collection: str) -> list[qm.Record]:
    records, offset = [], None
    while True:
        page, offset = client.scroll(collection, limit=1000, offset=offset, with_payload=True, with_vectors=True)
        records += page
        if offset is None:
            return records


# --- scenarios ----------------------------------------------------------------------------------


async def _finish(run: Run, tail: Tail, timeout: float, alive: Callable[[], None] = lambda: None) -> None:
    """Wait until every record is covered and the group has committed every offset, then stop
    the workers cleanly.

    Committed to the end means that every window a fault left unacknowledged was replayed and
    confirmed again: a worker commits only windows it has confirmed.
    """
    everything = set(run.sent.where)
    await tail.wait(lambda: everything <= tail.covered(), timeout, "every record to be covered", alive)
    deadline = time.monotonic() + 120
    while behind := await run.behind():
        alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the group has not committed every offset after 120 s: (committed, end) {behind}")
        await asyncio.sleep(0.5)
    workers = run.live_workers()
    codes = await asyncio.gather(*(asyncio.to_thread(w.stop) for w in workers))
    for worker, code in zip(workers, codes, strict=True):
        if code != 0:
            raise RuntimeError(f"worker exited {code} on SIGTERM: {worker.output()[-2000:]}")


async def _recovered(run: Run, tail: Tail, fault: Fault, fault_time: float) -> None:
    """After a restart: time from the fault to the new worker's first verification event."""
    assert run.worker is not None
    pid = run.worker.process.pid
    await tail.wait(lambda: tail.by_worker(pid), 180, "the restarted worker's first batch")
    fault.recovered_seconds = round(time.monotonic() - fault_time, 2)


async def scenario_kills(run: Run, tail: Tail, rng: random.Random, events: int, faults: int) -> list[Fault]:
    """SIGKILL, or a hard exit at one of three failpoints, ``faults`` times under a stream.

    The four kinds come round in shuffled rounds, so any four consecutive faults cover them all.
    """
    await run.setup()
    workload = make_workload(rng, events, points=max(50, events // 40), text_share=TEXT_SHARE)
    chunks = _chunks(workload, faults + 1)
    done: list[Fault] = []
    run.start_worker()
    await run.send(chunks[0])
    kinds = [kind for _ in range(-(-faults // len(KILL_KINDS))) for kind in rng.sample(KILL_KINDS, len(KILL_KINDS))]
    for chunk, kind in zip(chunks[1:], kinds, strict=False):
        assert run.worker is not None
        await tail.wait(lambda w=run.worker: tail.by_worker(w.process.pid), 180, "the worker's first batch")
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        fault = Fault(kind, round(run.elapsed(), 2))
        if kind == "sigkill":
            await run.send(chunk)
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            run.worker.kill()
        else:  # armed before the chunk arrives, so the moment is reached while it is processed
            (run.failpoints / kind).touch()
            await run.send(chunk)
            try:
                code = await asyncio.to_thread(run.worker.process.wait, 60)
                if code != 137:
                    raise RuntimeError(f"worker exited {code}, not at failpoint {kind}: {run.worker.output()[-2000:]}")
            except Exception as exc:  # subprocess.TimeoutExpired: the moment never came
                if run.worker.process.poll() is not None:
                    raise
                run.worker.kill()
                fault.note = f"failpoint not reached in 60 s ({type(exc).__name__}); SIGKILL instead"
            (run.failpoints / kind).unlink()
        fault_time = time.monotonic()
        run.start_worker()
        await _recovered(run, tail, fault, fault_time)
        done.append(fault)
    await _finish(run, tail, timeout=600 + events / 50)
    return done


async def scenario_outage(run: Run, tail: Tail, rng: random.Random, events: int, faults: int) -> list[Fault]:
    """Qdrant refuses connections or times out for seconds at a time; the worker must ride it out.

    One partition and filter-addressed deletes in the stream, so windows mix missing points,
    wrong vector sizes and deletes whose effect is unknown until applied: the sink's
    isolation path runs under load.
    """
    await run.setup()
    workload = make_workload(rng, events, points=max(50, events // 40), filters=True, text_share=TEXT_SHARE)
    chunks = _chunks(workload, faults + 1)
    done: list[Fault] = []
    worker = run.start_worker()
    await run.send(chunks[0])
    for chunk in chunks[1:]:
        await tail.wait(lambda: run.readyz() == 200, 60, "/readyz 200")
        kind = rng.choice(OUTAGE_KINDS)
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        fault = Fault(kind, round(run.elapsed(), 2))
        (run.failpoints / kind).touch()
        await run.send(chunk)
        hold = rng.uniform(2.5, 5.0)
        not_ready = False
        until = time.monotonic() + hold
        while time.monotonic() < until:
            not_ready |= run.readyz() == 503
            await asyncio.sleep(0.2)
        if worker.process.poll() is not None:
            raise RuntimeError(
                f"worker exited {worker.process.returncode} during the outage: {worker.output()[-2000:]}"
            )
        if not not_ready:
            fault.note = "/readyz never answered 503 during the outage"
        (run.failpoints / kind).unlink()
        fault_time = time.monotonic()
        seen = len(tail.verifications)
        await tail.wait(lambda s=seen: len(tail.verifications) > s, 120, "a batch after the outage")
        fault.recovered_seconds = round(time.monotonic() - fault_time, 2)
        done.append(fault)
    await _finish(run, tail, timeout=600 + events / 50)
    if any(f.note for f in done):
        raise RuntimeError("; ".join(f"{f.kind}: {f.note}" for f in done if f.note))
    return done


async def scenario_disk_full(run: Run, tail: Tail, rng: random.Random, events: int, _faults: int) -> list[Fault]:
    """Local mode's storage stops taking writes mid-stream (RLIMIT_FSIZE): exit 74, lose nothing."""
    await run.setup(kv_points=1000, payload_bytes=400)
    storage = run.stack.workdir / "qdrant" / "collection" / KV / "storage.sqlite"
    cap = storage.stat().st_size + rng.randint(24, 64) * 1024
    workload = make_workload(rng, events, points=events, reembed_share=0.0)
    worker = run.start_worker(max_file_bytes=cap)
    fault = Fault("disk-full", round(run.elapsed(), 2), note=f"files capped at {cap} bytes")
    await run.send(workload)
    code = await asyncio.to_thread(worker.process.wait, 180)
    output = worker.output()
    if code != 74 or "Qdrant local storage failed" not in output:
        raise RuntimeError(f"expected exit 74 with a clear message, got {code}: {output[-2000:]}")
    await tail.caught_up()  # what the worker published before it stopped
    fault.note += f"; {len(tail.verifications)} batches confirmed before the disk filled"
    lost = confirmed_but_not_on_disk(run, tail.covered())
    if lost:
        raise RuntimeError(f"confirmed writes missing on disk after the storage failure: points {sorted(lost)[:10]}")
    fault_time = time.monotonic()
    run.start_worker()
    await _recovered(run, tail, fault, fault_time)
    await _finish(run, tail, timeout=600 + events / 50)
    return [fault]


async def scenario_broker_restart(run: Run, tail: Tail, rng: random.Random, events: int, faults: int) -> list[Fault]:
    """The broker (the run's own) stops for seconds under load and comes back on the same port."""
    assert run.broker is not None
    await run.setup()
    workload = make_workload(rng, events, points=max(50, events // 40), text_share=TEXT_SHARE)
    chunks = _chunks(workload, faults + 1)
    done: list[Fault] = []
    worker = run.start_worker()
    await run.send(chunks[0])
    for chunk in chunks[1:]:
        await tail.wait(lambda: tail.by_worker(worker.process.pid), 180, "the worker's first batch")
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        down = rng.uniform(2.0, 6.0)
        fault = Fault("broker-restart", round(run.elapsed(), 2), note=f"down {down:.1f} s")
        run.broker.stop()
        await asyncio.sleep(down)
        run.broker.start()  # in this thread: the broker stops when the thread that started it ends
        if worker.process.poll() is not None:  # checked with the broker back, so that the run can close
            raise RuntimeError(f"worker exited {worker.process.returncode} without a broker: {worker.output()[-2000:]}")
        fault_time = time.monotonic()
        seen = len(tail.verifications)
        await run.send(chunk)
        await tail.wait(lambda s=seen: len(tail.verifications) > s, 180, "a batch after the broker came back")
        fault.recovered_seconds = round(time.monotonic() - fault_time, 2)
        done.append(fault)
    await _finish(run, tail, timeout=600 + events / 50)
    return done


async def _server_fault_halves(run: Run, tail: Tail, rng: random.Random, events: int, faults: int, kind: str,
                               fault: Callable[[Fault, list[Record]], Awaitable[None]]) -> list[Fault]:
    """``fault`` hits the server ``faults`` times while the worker is inside a chunk of the stream.

    Each chunk goes in two halves: the fault comes once the worker has confirmed part of the
    first half (plus a random moment), the second half is sent while the server is down, so
    the worker always has work in flight at the fault and work waiting after it. Recovery is
    from the server being back to the first confirmation of a record of the second half.
    """
    await run.setup()
    workload = make_workload(rng, events, points=max(50, events // 40), text_share=TEXT_SHARE)
    chunks = _chunks(workload, faults + 1)
    worker = run.start_worker()
    await run.send(chunks[0])
    await tail.wait(lambda: tail.by_worker(worker.process.pid), 180, "the worker's first batch")
    done: list[Fault] = []
    log_seen = 0
    for chunk in chunks[1:]:
        half = len(chunk) // 2
        first = await _send_tracked(run, chunk[:half])
        await tail.wait(lambda f=first: bool(f & tail.covered()), 180, "the worker to start on the chunk")
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        done.append(Fault(kind, round(run.elapsed(), 2)))
        pending = len(first - tail.covered())
        before = len(run.sent.where)
        await fault(done[-1], chunk[half:])  # returns with the server back; it sends the second half meanwhile
        back = time.monotonic()
        second = set(run.sent.where[before:])
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited {worker.process.returncode} after {kind}: {worker.output()[-2000:]}")
        await tail.wait(lambda s=second: bool(s & tail.covered()), 180, f"a confirmation after {kind}",
                        lambda: _check_alive(run))
        done[-1].recovered_seconds = round(time.monotonic() - back, 2)
        retried, log_seen = retried_calls(worker, log_seen)
        done[-1].note += (f"; {pending} of {half} records of the first half unconfirmed at the fault; calls retried: "
                          + (", ".join(f"{call} {n}" for call, n in sorted(retried.items())) or "none"))
    await _finish(run, tail, timeout=600 + events / 50)
    return done


def retried_calls(worker: Worker, skip: int) -> tuple[dict[str, int], int]:
    """The worker's Qdrant calls that failed and were retried, by call, in its log past line
    ``skip``; and the number of lines read."""
    lines = worker.output().splitlines()
    counts: dict[str, int] = {}
    for line in lines[skip:]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("logger") == "connector.qdrant.retrying" and " failed (" in entry.get("message", ""):
            call = entry["message"].split("(", 1)[0]
            counts[call] = counts.get(call, 0) + 1
    return counts, len(lines)


async def _send_tracked(run: Run, records: list[Record]) -> set[tuple[str, int, int]]:
    before = len(run.sent.where)
    await run.send(records)
    return set(run.sent.where[before:])


async def scenario_server_kill(run: Run, tail: Tail, rng: random.Random, events: int, faults: int) -> list[Fault]:
    """The Qdrant server is SIGKILLed under load and restarted on the same storage and ports.

    The worker retries its calls while the server is down (it must not exit); every write the
    server acknowledged (``wait=true``) must still be there after the restart, since the
    worker has confirmed it and may have committed its offsets.
    """

    async def kill(fault: Fault, chunk_rest: list[Record]) -> None:
        down = rng.uniform(0.5, 3.0)
        run.server.kill()
        await run.send(chunk_rest)
        await asyncio.sleep(down)
        started = time.monotonic()
        run.server.start()  # in this thread: the server stops when the thread that started it ends
        fault.note = f"down {down:.1f} s, restart {time.monotonic() - started:.1f} s"

    return await _server_fault_halves(run, tail, rng, events, faults, "server-kill", kill)


async def scenario_server_pause(run: Run, tail: Tail, rng: random.Random, events: int, faults: int) -> list[Fault]:
    """The Qdrant server is frozen (SIGSTOP) for longer than the client's request timeout, then
    resumed (SIGCONT).

    Requests that timed out on the client are still in the server's sockets and may be applied
    after the resume, next to their retries: harmless, since every point operation is an
    assignment and a window's requests are retried whole, in order.
    """

    async def pause(fault: Fault, chunk_rest: list[Record]) -> None:
        hold = rng.uniform(1.5, 2.5) * SERVER_TIMEOUT_SECONDS
        run.server.pause()
        try:
            await run.send(chunk_rest)
            await asyncio.sleep(hold)
        finally:
            run.server.resume()
        fault.note = f"paused {hold:.1f} s (client timeout {SERVER_TIMEOUT_SECONDS:.0f} s)"

    return await _server_fault_halves(run, tail, rng, events, faults, "server-pause", pause)


async def scenario_scale_out(run: Run, tail: Tail, rng: random.Random, events: int, _faults: int) -> list[Fault]:
    """Worker processes on one server go 1 -> 3 -> 1 under a stream (``faults`` is not used).

    Two workers join while the first is busy (a rebalance mid-stream), each must confirm
    records of its own; then two leave on SIGTERM (the first among them) while records keep
    coming, and the one left must take over their partitions. Needs a server: local mode
    lets one process open its folder.
    """
    await run.setup()
    workload = make_workload(rng, events, points=max(50, events // 40), text_share=TEXT_SHARE)
    chunks = _chunks(workload, 5)
    first = run.start_worker(own_port=True)
    await run.send(chunks[0])
    await tail.wait(lambda: tail.by_worker(first.process.pid), SCALE_WAIT, "the first worker's first batch")

    join = Fault("join", round(run.elapsed(), 2))
    joined = [run.start_worker(own_port=True), run.start_worker(own_port=True)]
    started = time.monotonic()
    feeding = asyncio.create_task(_trickle(run, chunks[1]))  # the first worker is busy while they join
    alive = lambda: _check_alive(run)  # noqa: E731 - a worker that dies fails the run at once
    await tail.wait(lambda: all(run.readyz(w) == 200 for w in joined), SCALE_WAIT, "the new workers' partitions", alive)
    await feeding
    await run.send(chunks[2])
    await tail.wait(
        lambda: all(tail.by_worker(w.process.pid) for w in joined), SCALE_WAIT, "a batch of each new worker", alive
    )
    join.recovered_seconds = round(time.monotonic() - started, 2)
    join.note = "2 workers joined; recovery: start to a confirmation by each"
    _check_alive(run)

    leavers, stays = [first, joined[0]], joined[1]
    held = {tp for tp, pid in tail.last_confirmed_by().items() if pid in {w.process.pid for w in leavers}}
    leave = Fault("leave", round(run.elapsed(), 2))
    feeding = asyncio.create_task(_trickle(run, chunks[3]))
    stopped = time.monotonic()
    codes = await asyncio.gather(*(asyncio.to_thread(w.stop) for w in leavers))
    for worker, code in zip(leavers, codes, strict=True):
        if code != 0:
            raise RuntimeError(f"a leaving worker exited {code} on SIGTERM: {worker.output()[-2000:]}")
    await feeding
    seen = len(tail.verifications)
    await run.send(chunks[4])

    def taken_over() -> bool:
        return any(v["worker"].endswith(f":{stays.process.pid}") and (v["topic"], r["partition"]) in held
                   for v in tail.verifications[seen:] for r in v["ranges"])

    await tail.wait(
        taken_over, SCALE_WAIT, "the remaining worker to confirm records of a partition the others held", alive
    )
    leave.recovered_seconds = round(time.monotonic() - stopped, 2)
    leave.note = (f"2 workers left ({len(held)} partitions with records moved); recovery: SIGTERM to a confirmation "
                  "of one of them by the worker left")
    _check_alive(run)
    await _finish(run, tail, timeout=600 + events / 50)
    return [join, leave]


async def scenario_hostile(run: Run, tail: Tail, rng: random.Random, events: int, _faults: int) -> list[Fault]:
    """Records that break each stage, mixed into the stream (``faults`` is not used).

    Not JSON, a wrong vector size, a ~900 KB record that is not JSON (its dead letter keeps
    the original as the record value), and records carrying the marker of a ``poison-<stage>``
    failpoint for each stage (validation, planning, embedding, the Qdrant request,
    verification; connector/failpoints.py). One worker must take them all without exiting:
    every poison record dead-lettered as ``poison_record``, everything else as by the other
    scenarios, every offset confirmed and committed.
    """
    for stage in POISON_STAGES:
        (run.failpoints / f"poison-{stage}").write_text(poison_marker(stage))
    await run.setup()
    workload = hostile_workload(rng, events, points=max(50, events // 40), text_share=TEXT_SHARE)
    points = max(50, events // 40)  # the clean first records (hostile_workload)
    run.start_worker()
    alive = lambda: _check_alive(run, any_exit=True)  # noqa: E731 - no exit at all, not even 0
    clean = await _send_tracked(run, workload[:points])
    # the rest once the worker is running, in two bursts: its windows are full-size, not the
    # few records of a start (a small window that holds a poison record next to ordinary dead
    # letters is a connector limitation: docs/faults.md, "hostile")
    await tail.wait(lambda: clean <= tail.covered(), 180, "the clean first records", alive)
    for chunk in _chunks(workload[points:], 2):
        await run.send(chunk)
        alive()
    await _finish(run, tail, timeout=600 + events / 50, alive=alive)
    return []


async def _trickle(run: Run, records: list[Record], slices: int = 10, pause: float = 0.3) -> None:
    """Send records in slices over a few seconds: a stream that keeps running, not one burst."""
    for piece in _chunks(records, slices):
        await run.send(piece)
        await asyncio.sleep(pause)


def _check_alive(run: Run, any_exit: bool = False) -> None:
    for worker in run.workers:
        code = worker.process.poll()
        if code is not None and (code != 0 or any_exit):
            raise RuntimeError(f"worker exited {code}: {worker.output()[-2000:]}")


def confirmed_but_not_on_disk(run: Run, confirmed: set[tuple[str, int, int]]) -> set[Any]:
    """Points whose confirmed state is not what local mode has on disk (one partition: a prefix)."""
    patches = [(r.event, w) for r, w in zip(run.sent.records, run.sent.where, strict=True) if is_kv_patch(r)]
    expected, _ = reference_kv([e for e, w in patches if w in confirmed])
    pending = {point_of(e) for e, w in patches if w not in confirmed}
    client = run.client()
    try:
        actual = read_kv(client)
    finally:
        client.close()
    want, got = as_stored(expected), as_stored(actual)
    return {pid for pid in set(want) | set(got) if pid not in pending and want.get(pid) != got.get(pid)}


def read_kv(client: QdrantClient) -> dict[Any, Any]:
    """kv as a semantics state, without the padding points some scenarios add."""
    state = state_from_records(_scroll_all(client, KV))
    return {pid: p for pid, p in state.items() if not (isinstance(pid, int) and pid >= PADDING_IDS)}


def _chunks(records: list[Record], n: int) -> list[list[Record]]:
    return [records[i * len(records) // n : (i + 1) * len(records) // n] for i in range(n)]


@dataclass(frozen=True)
class Scenario:
    run: Callable[..., Awaitable[list[Fault]]]
    partitions: int
    targets: tuple[str, ...] = TARGET_NAMES  # where it can run: local mode, the server over rest/grpc
    own_broker: bool = False  # stops and starts the broker: a broker of its own
    own_server: bool = False  # kills or freezes the server: a server of its own, on the run's folder
    env: tuple[tuple[str, str], ...] = ()  # worker settings of the scenario


SCENARIOS: dict[str, Scenario] = {
    "kills": Scenario(scenario_kills, 2),
    # the same with static membership: a restarted worker takes its partitions back without
    # waiting for the killed member's session timeout (recovery: the faults' recovered_seconds)
    "kills-static": Scenario(scenario_kills, 2, env=(("QCC_GROUP_INSTANCE_ID", "fault-worker"),)),
    "outage": Scenario(scenario_outage, 1),
    "disk-full": Scenario(scenario_disk_full, 1, targets=("local",)),  # local mode's own storage
    "broker-restart": Scenario(scenario_broker_restart, 2, own_broker=True),
    "server-kill": Scenario(scenario_server_kill, 2, targets=SERVERS, own_server=True),
    "server-pause": Scenario(scenario_server_pause, 2, targets=SERVERS, own_server=True,
                             env=(("QCC_QDRANT_TIMEOUT_SECONDS", str(SERVER_TIMEOUT_SECONDS)),)),
    "scale-out": Scenario(scenario_scale_out, 4, targets=SERVERS),  # several processes: a server
    "hostile": Scenario(scenario_hostile, 2),
}


async def run_scenario(name: str, *, bootstrap: str, model_env: dict[str, str], workdir: Path, seed: int,
                       events: int, faults: int, embedder: Embedder, qdrant: str = "local",
                       server: QdrantServer | None = None, worker_env: dict[str, str] | None = None,
                       layout: dict[str, Any] | None = None) -> RunReport:
    """One run of a scenario on ``qdrant`` (local, rest or grpc).

    A server target uses ``server`` (wiped first; a node of a cluster too, its collections split
    as ``layout`` says), except the scenarios that fault the server, which start one of their own
    in ``workdir``.
    """
    scenario = SCENARIOS[name]
    if qdrant not in scenario.targets:
        raise ValueError(f"scenario {name} runs on {', '.join(scenario.targets)}, not {qdrant}")
    report = RunReport(name, seed, qdrant)
    broker = KafkaBroker(data_dir=workdir / "kafka").start() if scenario.own_broker else None
    own_server = QdrantServer(workdir / "qdrant-server") if scenario.own_server else None
    try:
        if own_server is not None:
            own_server.start()
        if qdrant == "local":
            target = QdrantTarget("local", path=workdir / "qdrant")
        else:
            target = QdrantTarget(qdrant, server=own_server or server)
            if target.server is None:
                raise ValueError(f"scenario {name} on {qdrant} needs a Qdrant server")
            target.wipe()
        run = Run(broker.bootstrap if broker else bootstrap, model_env, workdir, partitions=scenario.partitions,
                  qdrant=target, extra_env=dict(scenario.env) | (worker_env or {}), layout=layout)
        run.broker = broker
        await run.stack.create_topics(partitions=scenario.partitions)
        async with Tail(run.stack.bootstrap, run.stack.env["QCC_VERIFICATION_TOPIC"],
                        run.stack.env["QCC_DEAD_LETTER_TOPIC"], run.stack.env["QCC_REEMBED_TOPIC"]) as tail:
            try:
                report.faults = await scenario.run(run, tail, random.Random(seed), events, faults)
                await tail.caught_up()  # the last dead letters, re-checks and verifications of the stopped workers
                check(run, tail, report, embedder)
            except Exception as exc:  # noqa: BLE001 - a failed run is reported, not raised
                report.problems.append(f"{type(exc).__name__}: {exc}")
            finally:
                for worker in run.live_workers():
                    worker.kill()
        report.seconds = round(run.elapsed(), 1)
    finally:
        if broker is not None:
            broker.cleanup()
        if own_server is not None:
            own_server.cleanup()
    return report


def markdown(reports: list[RunReport]) -> str:
    lines = [
        (
            "| scenario | qdrant | seed | records | invalid | re-embeds | faults | lost | state diffs "
            "| dead-letter diffs | replayed offsets | replayed batches | patched texts checked "
            "| recovery s (median / max) | run s | result |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for r in reports:
        rec = sorted(f.recovered_seconds for f in r.faults if f.recovered_seconds is not None)
        recovery = f"{rec[len(rec) // 2]:.1f} / {rec[-1]:.1f}" if rec else "-"
        kinds = ", ".join(f"{k} {sum(f.kind == k for f in r.faults)}" for k in sorted({f.kind for f in r.faults}))
        lines.append(
            f"| {r.scenario} | {r.qdrant} | {r.seed} | {r.records} | {r.invalid_records} | {r.reembed_records} | "
            f"{len(r.faults)} ({kinds}) | {r.lost} | {r.state_differences} | "
            f"{r.missing_dead_letters + r.unexpected_dead_letters} | {r.replayed_offsets} | {r.replayed_batches} | "
            f"{r.patched_text_vectors} | "
            f"{recovery} | {r.seconds} | {'pass' if r.passed else 'FAIL: ' + '; '.join(map(_one_line, r.problems))} |"
        )
    return "\n".join(lines) + "\n"


def _one_line(problem: str, limit: int = 240) -> str:
    """A problem as a table cell: its first line, cut (the JSON report keeps it whole)."""
    line = problem.replace("\\n", "\n").replace("|", "/").splitlines()[0] if problem else ""
    return (line[:limit] + " ...") if len(line) > limit or "\n" in problem.replace("\\n", "\n") else line


async def main_async(args: argparse.Namespace) -> list[RunReport]:
    model_env = {"QCC_MODEL_PATHS": json.dumps(assemble_all(Path(args.models)))}
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = KafkaBroker()
        broker.start()
        bootstrap = broker.bootstrap
    embedder = Embedder(Settings(model_paths=json.loads(model_env["QCC_MODEL_PATHS"])))
    reports = []
    # one server for the scenarios that do not fault it (those start their own)
    shared = args.qdrant != "local" and any(not SCENARIOS[name].own_server for name in args.scenario)
    server = QdrantServer().start() if shared else None
    try:
        with tempfile.TemporaryDirectory(prefix="qcc-faults-") as scratch:
            tmp = scratch if args.workdir is None else str(args.workdir)  # kept: worker logs, server logs
            for name in args.scenario:
                for i in range(args.runs):
                    seed = args.seed + i
                    report = await run_scenario(
                        name,
                        bootstrap=bootstrap,
                        model_env=model_env,
                        workdir=Path(tmp) / f"{name}-{args.qdrant}-{seed}",
                        seed=seed,
                        events=args.events,
                        faults=args.faults,
                        embedder=embedder,
                        qdrant=args.qdrant,
                        server=server,
                        worker_env=args.worker_env,
                    )
                    print(markdown([report]).splitlines()[-1], flush=True)
                    print(f"dead letters by code: {report.dead_letters_by_code}", flush=True)
                    reports.append(report)
    finally:
        if server is not None:
            server.cleanup()
        if broker is not None:
            broker.cleanup()
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="repeatable; default: all that run on --qdrant")
    parser.add_argument("--qdrant", choices=TARGET_NAMES, default="local",
                        help="local mode, or a Qdrant server (started here, ../shared/qdrant) over rest or grpc")
    parser.add_argument("--runs", type=int, default=1, help="runs of each scenario, seeds seed..seed+runs-1")
    parser.add_argument("--events", type=int, default=3000, help="records per run")
    parser.add_argument("--faults", type=int, default=3, help="faults per run (kills, outages, server faults)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("QCC_FAULT_SEED", "1")))
    parser.add_argument("--bootstrap", help="an existing broker; default: start one")
    parser.add_argument("--models", default=str(PROJECT / ".cache" / "models"))
    parser.add_argument("--report", type=Path, help="write the reports here as JSON")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="repeatable: a worker setting for every run (e.g. QCC_REEMBED_WAITS_FOR_PATCHES=false "
                             "to see the stale re-embed check fail)")
    parser.add_argument("--workdir", type=Path, help="keep each run's folder (worker and server logs) here")
    args = parser.parse_args()
    args.worker_env = dict(item.split("=", 1) for item in args.worker_env)
    args.scenario = args.scenario or sorted(n for n, s in SCENARIOS.items() if args.qdrant in s.targets)
    for name in args.scenario:
        if args.qdrant not in SCENARIOS[name].targets:
            parser.error(f"scenario {name} runs on {', '.join(SCENARIOS[name].targets)}, not {args.qdrant}")
    reports = asyncio.run(main_async(args))
    if args.report:
        args.report.write_text(json.dumps([asdict(r) | {"passed": r.passed} for r in reports], indent=2) + "\n")
    print(markdown(reports))
    raise SystemExit(0 if all(r.passed for r in reports) else 1)


if __name__ == "__main__":
    main()
