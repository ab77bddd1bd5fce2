"""Export -> import -> verify round trips exactly; verify finds what we plant; re-embed resumes.

Every test runs on local mode and on the real server over REST and gRPC: the library calls
in-process, the command line in subprocesses configured like a worker (``QCC_QDRANT_*``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.bulk.dump import manifest_path
from connector.bulk.export import export_collection, partial_path
from connector.bulk.importer import import_dump
from connector.bulk.reembed import reembed_collection
from connector.bulk.verify import verify_against_dump, verify_collections
from connector.embedding.embedder import Embedder
from connector.errors import InvalidOption
from connector.qdrant import RetryingClient
from connector.settings import Settings
from tests.qdrant_targets import QdrantTarget, only_targets, targets_with

UUID = "0b3f5a3e-3e1b-4a59-9d1c-6a9b1c2d3e4f"


async def _seed(client: AsyncQdrantClient, name: str = "src", n: int = 300) -> None:
    await client.create_collection(
        name,
        vectors_config={"dense": qm.VectorParams(size=4, distance=qm.Distance.COSINE),
                        "raw": qm.VectorParams(size=2, distance=qm.Distance.DOT)},
        sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
    )
    points = [
        qm.PointStruct(
            id=i or UUID,
            vector={
                "dense": [1.0, i / 7, 0.5, -0.25],
                "raw": [i * 0.1, 3.0],
                "bm25": qm.SparseVector(indices=[i % 11, 20 + i % 3], values=[0.5, 1.5]),
            },
            payload={
                "n": i,
                "user": "u-123" if i % 3 == 0 else "u-7",
                "body": f"text of point {i}",
                "nested": {"a": [1, {"b": i}]},
            },
        )
        for i in range(n)
    ]
    await client.upsert(name, points)


@pytest.fixture
async def sink(qdrant_target: QdrantTarget):
    client = qdrant_target.async_client()
    await _seed(client)
    yield RetryingClient(client)
    await client.close()


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
async def test_export_import_verify_round_trip_is_exact(sink: RetryingClient, tmp_path: Path, suffix: str) -> None:
    dump = tmp_path / f"src{suffix}"
    summary = await export_collection(sink, "src", dump, page_size=64, show_progress=False)
    assert summary.points == 300
    manifest = json.loads(manifest_path(dump).read_text())
    assert manifest["count"] == 300
    assert set(manifest["config"]["dense"]) == {"dense", "raw"}
    imported = await import_dump(sink, dump, "copy", batch_size=50, show_progress=False)
    assert imported.created
    assert imported.verification.ok
    same = await verify_collections(sink, "src", "copy", show_progress=False)
    assert same.ok
    assert same.reference_count == same.target_count == 300
    a = (await sink.client.scroll("src", limit=500, with_vectors=True))[0]
    b = (await sink.client.scroll("copy", limit=500, with_vectors=True))[0]
    assert [(p.id, p.payload, p.vector["raw"], p.vector["bm25"]) for p in a] == [
        (p.id, p.payload, p.vector["raw"], p.vector["bm25"]) for p in b
    ]
    # Qdrant normalises cosine vectors on every write: the copy may differ by one float32 ulp
    assert all(
        abs(x - y) < 2e-7
        for pa, pb in zip(a, b, strict=True)
        for x, y in zip(pa.vector["dense"], pb.vector["dense"], strict=True)
    )


async def test_verify_finds_every_planted_difference(sink: RetryingClient, tmp_path: Path) -> None:
    dump = tmp_path / "src.jsonl"
    await export_collection(sink, "src", dump, show_progress=False)
    client = sink.client
    await client.delete("src", [1, 2])                                         # missing
    await client.upsert("src", [qm.PointStruct(id=999, vector={"dense": [1, 0, 0, 0], "raw": [1, 1]})])  # extra
    await client.set_payload("src", {"n": -1}, [3])                            # payload changed
    await client.update_vectors("src", [qm.PointVectors(id=4, vector={"raw": [9.0, 9.0]})])  # dense vector changed
    await client.update_vectors(
        "src", [qm.PointVectors(id=5, vector={"bm25": qm.SparseVector(indices=[1], values=[1.0])})]
    )
    await client.delete_vectors("src", ["bm25"], [6])                           # vector removed
    report = await verify_against_dump(sink, "src", dump, show_progress=False)
    assert not report.ok
    assert report.missing == [1, 2]
    assert report.extra == [999]
    assert sorted(report.mismatched) == [3, 4, 5, 6]


async def test_a_damaged_dump_is_refused(sink: RetryingClient, tmp_path: Path) -> None:
    dump = tmp_path / "src.jsonl"
    await export_collection(sink, "src", dump, show_progress=False)
    lines = dump.read_text().splitlines()
    dump.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="damaged or incomplete"):
        await verify_against_dump(sink, "src", dump, show_progress=False)


def failing_at(sink: RetryingClient, call: str, nth: int, error: BaseException) -> None:
    """Make the ``nth`` call of ``sink`` whose name starts with ``call`` raise ``error``."""
    calls = 0
    original = sink.call

    async def failing_call(what: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        nonlocal calls
        if what.startswith(call):
            calls += 1
            if calls == nth:
                sink.call = original  # type: ignore[method-assign]
                raise error
        return await original(what, fn)

    sink.call = failing_call  # type: ignore[method-assign]


class Interrupted(asyncio.CancelledError):
    """What Ctrl-C is inside ``asyncio.run``: the running task cancelled."""


async def test_export_resumes_after_an_interruption(sink: RetryingClient, tmp_path: Path) -> None:
    full = tmp_path / "full.jsonl.gz"
    await export_collection(sink, "src", full, page_size=40, show_progress=False)
    part = tmp_path / "part.jsonl.gz"
    failing_at(sink, "scroll", 4, Interrupted())
    with pytest.raises(Interrupted):
        await export_collection(sink, "src", part, page_size=40, show_progress=False)
    assert not part.exists(), "an interrupted dump looks finished"
    assert partial_path(part).exists()
    summary = await export_collection(sink, "src", part, page_size=40, resume=True, show_progress=False)
    assert summary.resumed_from == 120
    assert not partial_path(part).exists()
    assert (
        json.loads(manifest_path(part).read_text())["digests"] == json.loads(manifest_path(full).read_text())["digests"]
    )


async def test_a_failed_export_leaves_nothing_and_keeps_an_older_dump(sink: RetryingClient, tmp_path: Path) -> None:
    folder = tmp_path / "dumps"  # not tmp_path: local mode's storage is there
    folder.mkdir()
    dump = folder / "src.jsonl"
    await export_collection(sink, "src", dump, page_size=40, show_progress=False)
    older = {path.name: path.read_bytes() for path in folder.iterdir()}
    failing_at(sink, "scroll", 4, RuntimeError("a failure that is no interruption"))
    with pytest.raises(RuntimeError):
        await export_collection(sink, "src", dump, page_size=40, show_progress=False)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == older


async def test_a_failed_import_deletes_the_collection_it_made(sink: RetryingClient, tmp_path: Path) -> None:
    folder = tmp_path / "dumps"  # not tmp_path: local mode's storage is there
    folder.mkdir()
    dump = folder / "src.jsonl"
    await export_collection(sink, "src", dump, show_progress=False)
    failing_at(sink, "upsert", 2, RuntimeError("a failure that is no interruption"))
    with pytest.raises(RuntimeError):
        await import_dump(sink, dump, "copy", batch_size=50, show_progress=False)
    assert not await sink.client.collection_exists("copy"), "a half-filled collection stayed"
    assert sorted(path.name for path in folder.iterdir()) == ["src.jsonl", "src.jsonl.manifest.json"]


async def test_an_interrupted_import_keeps_its_collection_for_resume(sink: RetryingClient, tmp_path: Path) -> None:
    dump = tmp_path / "src.jsonl"
    await export_collection(sink, "src", dump, show_progress=False)
    failing_at(sink, "upsert", 3, Interrupted())
    with pytest.raises(Interrupted):
        await import_dump(sink, dump, "copy", batch_size=50, show_progress=False)
    assert (await sink.client.count("copy")).count == 100
    resumed = await import_dump(sink, dump, "copy", batch_size=50, resume=True, show_progress=False)
    assert resumed.verification.ok
    assert resumed.points == 300


async def test_reembed_changes_only_the_chosen_vector(sink: RetryingClient, model_paths, tmp_path: Path) -> None:
    client = sink.client
    await client.create_collection(
        "docs",
        vectors_config={
            "dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE),
            "other": qm.VectorParams(size=2, distance=qm.Distance.DOT),
        },
    )
    await client.upsert(
        "docs",
        [
            qm.PointStruct(
                id=i,
                vector={"dense": [1.0] + [0.0] * 383, "other": [i, 1]},
                payload={"body": f"document about topic {i}", "user": "u-123" if i % 2 else "u-9"},
            )
            for i in range(40)
        ]
        + [qm.PointStruct(id=40, vector={"dense": [1.0] + [0.0] * 383, "other": [0, 1]}, payload={"user": "u-123"})],
    )
    before = {p.id: p for p in (await client.scroll("docs", limit=100, with_vectors=True))[0]}
    embedder = Embedder(Settings(model_paths=model_paths))
    summary = await reembed_collection(
        sink,
        embedder,
        "docs",
        text_field="body",
        vector_name="dense",
        scroll_filter=qm.Filter(must=[qm.FieldCondition(key="user", match=qm.MatchValue(value="u-123"))]),
        page_size=7,
        checkpoint_file=tmp_path / "ck.json",
        show_progress=False,
    )
    assert summary.points == 20
    assert summary.skipped_without_text == 1
    after = {p.id: p for p in (await client.scroll("docs", limit=100, with_vectors=True))[0]}
    for pid, point in after.items():
        assert point.payload == before[pid].payload
        assert point.vector["other"] == before[pid].vector["other"]
        changed = point.vector["dense"] != before[pid].vector["dense"]
        assert changed == (pid % 2 == 1 and pid < 40)
    assert not (tmp_path / "ck.json").exists()


@only_targets("local")
async def test_a_reembed_whose_model_does_not_fit_is_refused_before_writing(sink: RetryingClient, model_paths,
                                                                             tmp_path: Path) -> None:
    """The default model's 384-d vectors into src's 4-d dense vector: refused, nothing written."""
    before = (await sink.client.scroll("src", limit=500, with_vectors=True))[0]
    embedder = Embedder(Settings(model_paths=model_paths))
    with pytest.raises(InvalidOption, match=r"--model .*: it makes 384-dimensional vectors, and vector dense of src "
                                            r"has 4"):
        await reembed_collection(sink, embedder, "src", text_field="body", vector_name="dense",
                                 checkpoint_file=tmp_path / "ck.json", show_progress=False)
    assert (await sink.client.scroll("src", limit=500, with_vectors=True))[0] == before
    assert not (tmp_path / "ck.json").exists()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300, check=False)


def test_cli_export_import_verify(qdrant_target: QdrantTarget, tmp_path: Path) -> None:
    """Cosine, dot and sparse named vectors. Local mode normalises a cosine vector in memory but
    stores it as given, so export (a new process) reads the raw vector and import's verification
    (the process that wrote it) the normalised one: the comparison takes both as unit vectors."""
    import asyncio

    async def seed() -> None:
        client = qdrant_target.async_client()
        try:
            await _seed(client, n=120)
        finally:
            await client.close()

    asyncio.run(seed())
    env = qdrant_target.env()
    dump = tmp_path / "src.jsonl.gz"
    exported = _cli("export", "src", str(dump), "--page-size", "50", env=env)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(manifest_path(dump).read_text())["count"] == 120
    imported = _cli("import", str(dump), "copy", "--batch-size", "32", env=env)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "verification: OK" in imported.stderr, imported.stdout + imported.stderr
    for against in (str(dump), "src"):
        same = _cli("verify", "copy", against, env=env)
        assert same.returncode == 0, same.stdout + same.stderr
    client = qdrant_target.client()
    try:
        client.set_payload("copy", {"n": -1}, [3])
        client.delete("copy", [4])
    finally:
        client.close()
    report = tmp_path / "diff.json"
    differ = _cli("verify", "copy", str(dump), "--report", str(report), env=env)
    assert differ.returncode == 1
    diff = json.loads(report.read_text())
    assert diff["missing"] == [4], diff
    assert diff["mismatched"] == [3], diff


# 2 x 3,000 points embedded: the kill and resume are the same over REST and gRPC
POINTS_TO_REEMBED = 1200  # twelve pages of 100: the kill lands after the third, well before the end


@only_targets("local", "rest")
def test_reembed_resumes_after_a_kill_with_the_same_result(
    model_paths, tmp_path: Path, qdrant_target: QdrantTarget
) -> None:
    """One run straight through into docs_a, one killed and resumed into docs_b; then the two agree."""
    client = qdrant_target.client()
    try:
        for name in ("docs_a", "docs_b"):
            client.create_collection(name, vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
            client.upsert(
                name,
                [
                    qm.PointStruct(id=i, vector=[1.0] + [0.0] * 383, payload={"body": f"text number {i} on {i % 13}"})
                    for i in range(POINTS_TO_REEMBED)
                ],
            )
    finally:
        client.close()  # local mode: one process at a time holds the folder

    env = {**os.environ, **qdrant_target.env(), "QCC_MODEL_PATHS": json.dumps(model_paths)}
    cmd = [sys.executable, "-m", "connector.cli", "reembed", "--text-field", "body", "--page-size", "100"]
    subprocess.run([*cmd, "docs_a", "--checkpoint", str(tmp_path / "a.ck")], env=env, check=True, capture_output=True)
    checkpoint = tmp_path / "b.ck"
    proc = subprocess.Popen([*cmd, "docs_b", "--checkpoint", str(checkpoint)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (checkpoint.exists() and json.loads(checkpoint.read_text())["points"] >= 300):
        assert time.monotonic() < deadline
        assert proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = json.loads(checkpoint.read_text())["points"]
    assert 0 < done_before < POINTS_TO_REEMBED
    subprocess.run(
        [*cmd, "docs_b", "--checkpoint", str(checkpoint), "--resume"], env=env, check=True, capture_output=True
    )
    result = subprocess.run([sys.executable, "-m", "connector.cli", "verify", "docs_b", "docs_a"], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    client = qdrant_target.client()
    try:
        pa = {p.id: p.vector for p in client.scroll("docs_a", limit=5000, with_vectors=True)[0]}
        pb = {p.id: p.vector for p in client.scroll("docs_b", limit=5000, with_vectors=True)[0]}
        assert pa.keys() == pb.keys()
        assert all(abs(x - y) < 1e-6 for k in pa for x, y in zip(pa[k], pb[k], strict=True))
        assert pa[7] != [1.0] + [0.0] * 383
    finally:
        client.close()


# dot: "raw" above; cosine on local mode (which keeps a cosine vector as given) and a server
@targets_with({"local": qm.Distance.COSINE, "rest": qm.Distance.EUCLID, "grpc": qm.Distance.COSINE}, "distance")
def test_an_unnamed_vector_round_trips_and_a_changed_one_is_found(qdrant_target: QdrantTarget, tmp_path: Path,
                                                                  distance: qm.Distance) -> None:
    client = qdrant_target.client()
    try:
        client.create_collection("plain", vectors_config=qm.VectorParams(size=3, distance=distance))
        client.upsert("plain", [qm.PointStruct(id=i, vector=[1.0 + i, i / 3, -2.5], payload={"i": i})
                                for i in range(30)])
    finally:
        client.close()
    env = qdrant_target.env()
    dump = tmp_path / "plain.jsonl"
    assert _cli("export", "plain", str(dump), env=env).returncode == 0
    imported = _cli("import", str(dump), "copy", env=env)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert _cli("verify", "copy", str(dump), env=env).returncode == 0
    assert _cli("verify", "copy", "plain", env=env).returncode == 0
    client = qdrant_target.client()
    try:
        client.update_vectors("copy", [qm.PointVectors(id=7, vector=[1.0, 5.0, 1.0])])  # another direction
    finally:
        client.close()
    report = tmp_path / "diff.json"
    differ = _cli("verify", "copy", str(dump), "--report", str(report), env=env)
    assert differ.returncode == 1, differ.stdout + differ.stderr
    assert json.loads(report.read_text())["mismatched"] == [7]
