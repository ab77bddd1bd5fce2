"""The fault suite's runner: each scenario N times with random timing, and a report.

    python -m tests.faults.runner --scenario kills --runs 1 --events 100000 --faults 20

starts its own broker (or uses ``--bootstrap``), runs real worker processes, injects faults,
and checks the same thing after every run: Qdrant's state equals the reference model of all
valid events, every record is covered by a verification event, every invalid record is in
the dead-letter topic, and nothing else is. The pytest entry (``test_fault_suite.py``) runs
it at a small size; the report of the large run is in ``docs/faults.md``.
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

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.devbroker import KafkaBroker, free_port
from connector.embedder import Embedder
from connector.offline_model import assemble_all
from connector.settings import Settings
from connector.verifier import state_from_records
from tests.faults.workload import (
    DOCS,
    DOCS_POINTS,
    KV,
    MISSING_DOC,
    Record,
    as_stored,
    doc_text,
    final_dead,
    make_workload,
    point_of,
    reference_docs,
    reference_kv,
    replaced_later,
)
from tests.integration.harness import Stack, TopicFollower, Worker, produce

PROJECT = Path(__file__).resolve().parents[2]
KILL_KINDS = ("sigkill", "crash-while-embedding", "crash-after-apply", "crash-after-confirm")
OUTAGE_KINDS = ("qdrant-unavailable", "qdrant-timeout")
PADDING_IDS = 1_000_000  # kv ids from here on are padding, not part of the workload


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
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


# --- the world a run needs --------------------------------------------------------------------


class Tail(TopicFollower):
    """The verification and dead-letter topics, read in the background for the whole run."""

    def __init__(self, bootstrap: str, verification_topic: str, dead_letter_topic: str) -> None:
        self.verifications: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []
        lists = {verification_topic: self.verifications, dead_letter_topic: self.dead_letters}
        super().__init__(bootstrap, lists, lambda topic, record: lists[topic].append(record))

    async def wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.1)

    def by_worker(self, pid: int) -> bool:
        return any(v["worker"].endswith(f":{pid}") for v in self.verifications)

    def covered(self) -> set[tuple[str, int, int]]:
        return {(v["topic"], r["partition"], o) for v in self.verifications for r in v["ranges"]
                for o in range(r["first_offset"], r["last_offset"] + 1)}


@dataclass
class Sent:
    records: list[Record] = field(default_factory=list)
    where: list[tuple[str, int, int]] = field(default_factory=list)  # (topic, partition, offset)


class Run:
    """One run: its topics, collections, worker, failpoints and everything produced."""

    def __init__(self, bootstrap: str, model_env: dict[str, str], workdir: Path, *, partitions: int,
                 extra_env: dict[str, str] | None = None) -> None:
        self.failpoints = workdir / "failpoints"
        self.failpoints.mkdir(parents=True)
        self.http_port = free_port()
        self.stack = Stack(bootstrap, workdir, model_env, extra_env={
            "QCC_FAILPOINTS_DIR": str(self.failpoints), "QCC_HTTP_PORT": str(self.http_port),
            "QCC_HTTP_HOST": "127.0.0.1", **(extra_env or {})})
        self.partitions = partitions
        self.sent = Sent()
        self.started = time.monotonic()
        self.worker: Worker | None = None
        self.broker: KafkaBroker | None = None  # set when the scenario owns its broker

    @property
    def topics(self) -> dict[str, str]:
        return {"patch": self.stack.env["QCC_PATCH_TOPIC"], "reembed": self.stack.env["QCC_REEMBED_TOPIC"]}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def setup(self, kv_points: int = 0, payload_bytes: int = 0) -> None:
        client = QdrantClient(path=str(self.stack.workdir / "qdrant"))
        try:
            client.create_collection(KV, vectors_config={"d": qm.VectorParams(size=2, distance=qm.Distance.DOT)},
                                     sparse_vectors_config={"s": qm.SparseVectorParams()})
            client.create_collection(DOCS, vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)})
            client.upsert(DOCS, [qm.PointStruct(id=i, vector={"dense": initial_doc_vector()}, payload={"text": doc_text(i)})
                                 for i in range(DOCS_POINTS)])
            if kv_points:
                client.upsert(KV, [qm.PointStruct(id=PADDING_IDS + i, vector={"d": [1.0, 0.0]}, payload={"pad": "x" * payload_bytes})
                                   for i in range(kv_points)])
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

    def start_worker(self, **options: Any) -> Worker:
        self.worker = Worker(self.stack, **options)
        return self.worker

    def readyz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0


def initial_doc_vector() -> list[float]:
    return [1.0] + [0.0] * 383


# --- the check ---------------------------------------------------------------------------------


def check(run: Run, tail: Tail, report: RunReport, embedder: Embedder) -> None:
    """The same check after every scenario; fills the report's counts and problems."""
    records, where = run.sent.records, run.sent.where
    report.records = len(records)
    report.invalid_records = sum(r.invalid for r in records)
    report.reembed_records = sum(r.topic == "reembed" for r in records)
    patch_positions = [i for i, r in enumerate(records) if r.topic == "patch" and not r.invalid]
    patch_events = [records[i].event for i in patch_positions]
    expected_kv, rejected = reference_kv(patch_events)  # type: ignore[arg-type]
    expected_dead = {where[i] for i, r in enumerate(records) if r.invalid}
    expected_dead |= {where[patch_positions[j]] for j in rejected}
    expected_dead |= {where[i] for i, r in enumerate(records) if r.topic == "reembed" and r.event and r.event.get("ids") == [MISSING_DOC]}

    covered = tail.covered()
    valid_where = [w for w, r in zip(where, records) if not r.invalid]
    report.lost = sum(w not in covered for w in valid_where)
    if report.lost:
        report.problems.append(f"{report.lost} valid records not covered by a verification event")
    uncovered_invalid = sum(w not in covered for w, r in zip(where, records) if r.invalid)
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
    position = {w: i for i, w in enumerate(where)}
    for label, found in (("expected dead letters missing", missing), ("unexpected dead letters", unexpected)):
        if found:
            sample = [records[position[w]].value[:100] for w in sorted(found)[:3]]
            report.problems.append(f"{len(found)} {label}: {sample}")

    client = QdrantClient(path=str(run.stack.workdir / "qdrant"))
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

    texts = reference_docs([r.event for r in records if r.topic == "reembed" and r.event])  # type: ignore[misc]
    model = Settings(model_paths=json.loads(run.stack.env["QCC_MODEL_PATHS"])).dense_model
    vectors = dict(zip(texts, embedder.embed_sync(model, "dense", list(texts.values())))) if texts else {}
    wrong_docs = 0
    for pid in range(DOCS_POINTS):
        want_vec = vectors.get(pid) or tuple(initial_doc_vector())
        got_vec = docs[pid].vector["dense"]
        if sum(a * b for a, b in zip(want_vec, got_vec)) < 0.999 or docs[pid].payload != {"text": doc_text(pid)}:
            wrong_docs += 1
    if wrong_docs:
        report.state_differences += wrong_docs
        report.problems.append(f"{wrong_docs} docs points do not hold the embedding of their last re-embed text")


def _scroll_all(client: QdrantClient, collection: str) -> list[qm.Record]:
    records, offset = [], None
    while True:
        page, offset = client.scroll(collection, limit=1000, offset=offset, with_payload=True, with_vectors=True)
        records += page
        if offset is None:
            return records


# --- scenarios ----------------------------------------------------------------------------------


async def _finish(run: Run, tail: Tail, timeout: float) -> None:
    """Wait until every record is covered, then stop the worker cleanly."""
    everything = set(run.sent.where)
    await tail.wait(lambda: everything <= tail.covered(), timeout, "every record to be covered")
    assert run.worker is not None
    code = await asyncio.to_thread(run.worker.stop)
    if code != 0:
        raise RuntimeError(f"worker exited {code} on SIGTERM: {run.worker.output()[-2000:]}")


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
    workload = make_workload(rng, events, points=max(50, events // 40))
    chunks = _chunks(workload, faults + 1)
    done: list[Fault] = []
    run.start_worker()
    await run.send(chunks[0])
    kinds = [kind for _ in range(-(-faults // len(KILL_KINDS))) for kind in rng.sample(KILL_KINDS, len(KILL_KINDS))]
    for chunk, kind in zip(chunks[1:], kinds):
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
            except Exception as exc:  # noqa: BLE001 - subprocess.TimeoutExpired: the moment never came
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
    workload = make_workload(rng, events, points=max(50, events // 40), filters=True)
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
            raise RuntimeError(f"worker exited {worker.process.returncode} during the outage: {worker.output()[-2000:]}")
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


async def scenario_disk_full(run: Run, tail: Tail, rng: random.Random, events: int, faults: int) -> list[Fault]:
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
    await asyncio.sleep(1.0)  # let the tail read what the worker published before it stopped
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
    workload = make_workload(rng, events, points=max(50, events // 40))
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
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited {worker.process.returncode} without a broker: {worker.output()[-2000:]}")
        run.broker.start()  # in this thread: the broker stops when the thread that started it ends
        fault_time = time.monotonic()
        seen = len(tail.verifications)
        await run.send(chunk)
        await tail.wait(lambda s=seen: len(tail.verifications) > s, 180, "a batch after the broker came back")
        fault.recovered_seconds = round(time.monotonic() - fault_time, 2)
        done.append(fault)
    await _finish(run, tail, timeout=600 + events / 50)
    return done


def confirmed_but_not_on_disk(run: Run, confirmed: set[tuple[str, int, int]]) -> set[Any]:
    """Points whose confirmed state is not what local mode has on disk (one partition: a prefix)."""
    patches = [(r.event, w) for r, w in zip(run.sent.records, run.sent.where) if r.topic == "patch" and r.event]
    expected, _ = reference_kv([e for e, w in patches if w in confirmed])
    pending = {point_of(e) for e, w in patches if w not in confirmed}
    client = QdrantClient(path=str(run.stack.workdir / "qdrant"))
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


# name -> (scenario, partitions, whether it needs a broker of its own to stop and start)
SCENARIOS: dict[str, tuple[Callable[..., Awaitable[list[Fault]]], int, bool]] = {
    "kills": (scenario_kills, 2, False),
    "outage": (scenario_outage, 1, False),
    "disk-full": (scenario_disk_full, 1, False),
    "broker-restart": (scenario_broker_restart, 2, True),
}


async def run_scenario(name: str, *, bootstrap: str, model_env: dict[str, str], workdir: Path, seed: int,
                       events: int, faults: int, embedder: Embedder) -> RunReport:
    scenario, partitions, own_broker = SCENARIOS[name]
    report = RunReport(name, seed)
    broker = KafkaBroker(data_dir=workdir / "kafka").start() if own_broker else None
    try:
        run = Run(broker.bootstrap if broker else bootstrap, model_env, workdir, partitions=partitions)
        run.broker = broker
        await run.stack.create_topics(partitions=partitions)
        async with Tail(run.stack.bootstrap, run.stack.env["QCC_VERIFICATION_TOPIC"],
                        run.stack.env["QCC_DEAD_LETTER_TOPIC"]) as tail:
            try:
                report.faults = await scenario(run, tail, random.Random(seed), events, faults)
                await asyncio.sleep(1.0)  # the last dead letters
                check(run, tail, report, embedder)
            except Exception as exc:  # noqa: BLE001 - a failed run is reported, not raised
                report.problems.append(f"{type(exc).__name__}: {exc}")
            finally:
                if run.worker is not None and run.worker.process.poll() is None:
                    run.worker.kill()
        report.seconds = round(run.elapsed(), 1)
    finally:
        if broker is not None:
            broker.cleanup()
    return report


def markdown(reports: list[RunReport]) -> str:
    lines = ["| scenario | seed | records | invalid | re-embeds | faults | lost | state diffs | dead-letter diffs | "
             "replayed offsets | replayed batches | recovery s (median / max) | run s | result |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    for r in reports:
        rec = sorted(f.recovered_seconds for f in r.faults if f.recovered_seconds is not None)
        recovery = f"{rec[len(rec) // 2]:.1f} / {rec[-1]:.1f}" if rec else "-"
        kinds = ", ".join(f"{k} {sum(f.kind == k for f in r.faults)}" for k in sorted({f.kind for f in r.faults}))
        lines.append(f"| {r.scenario} | {r.seed} | {r.records} | {r.invalid_records} | {r.reembed_records} | "
                     f"{len(r.faults)} ({kinds}) | {r.lost} | {r.state_differences} | "
                     f"{r.missing_dead_letters + r.unexpected_dead_letters} | {r.replayed_offsets} | {r.replayed_batches} | "
                     f"{recovery} | {r.seconds} | {'pass' if r.passed else 'FAIL: ' + '; '.join(r.problems)} |")
    return "\n".join(lines) + "\n"


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
    try:
        with tempfile.TemporaryDirectory(prefix="qcc-faults-") as tmp:
            for name in args.scenario:
                for i in range(args.runs):
                    seed = args.seed + i
                    report = await run_scenario(name, bootstrap=bootstrap, model_env=model_env,
                                                workdir=Path(tmp) / f"{name}-{seed}", seed=seed, events=args.events,
                                                faults=args.faults, embedder=embedder)
                    print(markdown([report]).splitlines()[-1], flush=True)
                    reports.append(report)
    finally:
        if broker is not None:
            broker.cleanup()
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default: all")
    parser.add_argument("--runs", type=int, default=1, help="runs of each scenario, seeds seed..seed+runs-1")
    parser.add_argument("--events", type=int, default=3000, help="records per run")
    parser.add_argument("--faults", type=int, default=3, help="faults per run (kills, outages)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("QCC_FAULT_SEED", "1")))
    parser.add_argument("--bootstrap", help="an existing broker; default: start one")
    parser.add_argument("--models", default=str(PROJECT / ".cache" / "models"))
    parser.add_argument("--report", type=Path, help="write the reports here as JSON")
    args = parser.parse_args()
    args.scenario = args.scenario or sorted(SCENARIOS)
    reports = asyncio.run(main_async(args))
    if args.report:
        args.report.write_text(json.dumps([asdict(r) | {"passed": r.passed} for r in reports], indent=2) + "\n")
    print(markdown(reports))
    raise SystemExit(0 if all(r.passed for r in reports) else 1)


if __name__ == "__main__":
    main()
