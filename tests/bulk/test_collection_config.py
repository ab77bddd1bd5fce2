"""On the real Qdrant server (REST and gRPC): import and migrate give the new collection the
old one's whole configuration, not only its vectors.

The source collection sets every item away from its default: shards, replicas, write
consistency, payload on disk, dense vectors with their own HNSW, datatype and quantization,
sparse vectors with IDF and an on-disk index, payload indexes of six kinds, HNSW, optimizers,
WAL, quantization, strict mode, read fan-out, metadata. Its strict mode is tight enough
(pages of 100, upserts of 50) to refuse the bulk tools' default pages and batches, so the
tests also show that reading respects it and that the copy gets it only after its data.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm
from typer.testing import CliRunner

from connector.bulk.dump import manifest_path
from connector.bulk.export import export_collection
from connector.bulk.importer import import_dump
from connector.bulk.migrate import Migration
from connector.cli import cli
from connector.embedding.embedder import Embedder
from connector.qdrant import RetryingClient
from connector.settings import Settings
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
POINTS = 230  # more than one strict-mode page (100) and upsert (50), fewer than one default page (256)
STRICT = qm.StrictModeConfig(
    enabled=True,
    max_query_limit=100,
    upsert_max_batchsize=50,
    search_max_hnsw_ef=256,
    unindexed_filtering_retrieve=True,
    sparse_config={"bm25": qm.StrictModeSparse(max_length=1000)},
)


async def create_source(client: AsyncQdrantClient, name: str = "src") -> None:
    await client.create_collection(
        name,
        vectors_config={
            "dense": qm.VectorParams(
                size=4,
                distance=qm.Distance.COSINE,
                on_disk=True,
                datatype=qm.Datatype.FLOAT16,
                hnsw_config=qm.HnswConfigDiff(m=8),
            ),
            "raw": qm.VectorParams(
                size=3,
                distance=qm.Distance.DOT,
                quantization_config=qm.BinaryQuantization(binary=qm.BinaryQuantizationConfig(always_ram=True)),
            ),
        },
        sparse_vectors_config={
            "bm25": qm.SparseVectorParams(
                modifier=qm.Modifier.IDF, index=qm.SparseIndexParams(on_disk=True, full_scan_threshold=1234)
            )
        },
        shard_number=3,
        replication_factor=2,
        write_consistency_factor=2,
        on_disk_payload=False,
        hnsw_config=qm.HnswConfigDiff(
            m=24, ef_construct=123, full_scan_threshold=5000, on_disk=True, payload_m=20, max_indexing_threads=2
        ),
        optimizers_config=qm.OptimizersConfigDiff(
            deleted_threshold=0.3,
            vacuum_min_vector_number=500,
            default_segment_number=3,
            indexing_threshold=12345,
            flush_interval_sec=7,
            max_optimization_threads=1,
            max_segment_size=100000,
        ),
        wal_config=qm.WalConfigDiff(wal_capacity_mb=16, wal_segments_ahead=1),
        quantization_config=qm.ScalarQuantization(
            scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=0.95, always_ram=True)
        ),
        metadata={"owner": "team-a", "generation": 3},
    )
    for field_name, schema in (
        ("kind", qm.PayloadSchemaType.KEYWORD),
        ("tenant", qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True)),
        (
            "body",
            qm.TextIndexParams(
                type=qm.TextIndexType.TEXT, tokenizer=qm.TokenizerType.WORD, lowercase=True, min_token_len=2
            ),
        ),
        ("n", qm.IntegerIndexParams(type=qm.IntegerIndexType.INTEGER, lookup=False, range=True)),
        ("when", qm.PayloadSchemaType.DATETIME),
        ("where", qm.PayloadSchemaType.GEO),
    ):
        await client.create_payload_index(name, field_name, field_schema=schema, wait=True)
    points = [
        qm.PointStruct(
            id=i,
            payload={
                "kind": f"k{i % 3}",
                "tenant": f"t{i % 2}",
                "body": f"article number {i}",
                "n": i,
                "when": f"2024-01-{1 + i % 28:02d}T00:00:00Z",
                "where": {"lat": 52.0, "lon": 13.0 + i / 1000},
            },
            vector={
                "dense": [1.0, i / 10, 0.5, -1.0],
                "raw": [i / 7, 1.0, -0.5],
                "bm25": qm.SparseVector(indices=[i % 11, 20 + i % 5], values=[0.5, 1.5]),
            },
        )
        for i in range(POINTS)
    ]
    for start in range(0, POINTS, 50):
        await client.upsert(name, points[start : start + 50], wait=True)
    # strict mode and read fan-out last, as a collection in use would have them
    await client.update_collection(
        name,
        strict_mode_config=STRICT,
        collection_params=qm.CollectionParamsDiff(read_fan_out_factor=2, read_fan_out_delay_ms=7),
    )


def _rounded(value: Any) -> Any:
    """Floats to float32 precision: gRPC reports float32 settings (a quantile of 0.95) as 0.9499999…"""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


async def configuration(client: AsyncQdrantClient, name: str) -> dict[str, Any]:
    """What a copy must reproduce: the config and the payload indexes (not their point counts)."""
    info = await client.get_collection(name)
    data = info.model_dump(mode="json", include={"config", "payload_schema"})
    for index in data["payload_schema"].values():
        index.pop("points")
    return _rounded(data)  # type: ignore[no-any-return]


async def test_the_source_sets_every_item_away_from_the_defaults(server_target: QdrantTarget) -> None:
    """Guards the other tests: a copy of defaults would prove nothing."""
    client = server_target.async_client()
    try:
        await create_source(client)
        await client.create_collection(
            "plain", vectors_config={"dense": qm.VectorParams(size=4, distance=qm.Distance.COSINE)}
        )
        src, plain = await configuration(client, "src"), await configuration(client, "plain")
    finally:
        await client.close()
    params, plain_params = src["config"]["params"], plain["config"]["params"]
    for key in ("shard_number", "replication_factor", "write_consistency_factor", "on_disk_payload",
                "read_fan_out_factor", "read_fan_out_delay_ms"):
        assert params[key] != plain_params[key], key
    for key in (
        "hnsw_config",
        "optimizer_config",
        "wal_config",
        "quantization_config",
        "strict_mode_config",
        "metadata",
    ):
        assert src["config"][key] != plain["config"][key], key
    assert params["sparse_vectors"]
    assert len(src["payload_schema"]) == 6
    assert plain["payload_schema"] == {}


async def test_import_from_an_export_recreates_the_whole_configuration(
    server_target: QdrantTarget, tmp_path: Path
) -> None:
    client = server_target.async_client()
    sink = RetryingClient(client)
    try:
        await create_source(client)
        dump = tmp_path / "src.jsonl.gz"
        exported = await export_collection(sink, "src", dump, show_progress=False)  # pages cut to the strict limit
        assert exported.points == POINTS
        manifest = json.loads(manifest_path(dump).read_text())
        assert manifest["collection"]["config"]["params"]["shard_number"] == 3
        summary = await import_dump(sink, dump, "copy", show_progress=False)
        assert summary.created
        assert summary.points == POINTS
        assert summary.verification.ok
        assert await configuration(client, "copy") == await configuration(client, "src")
        # into the existing copy (now under strict mode): batches of 256 would be refused
        again = await import_dump(sink, dump, "copy", show_progress=False)
        assert not again.created
        assert again.verification.ok
    finally:
        await client.close()


async def test_an_old_dump_without_the_collection_info_still_imports(
    server_target: QdrantTarget, tmp_path: Path
) -> None:
    client = server_target.async_client()
    sink = RetryingClient(client)
    try:
        await create_source(client)
        dump = tmp_path / "src.jsonl"
        await export_collection(sink, "src", dump, show_progress=False)
        manifest = json.loads(manifest_path(dump).read_text())
        del manifest["collection"]  # what dumps made before it carried
        manifest_path(dump).write_text(json.dumps(manifest))
        summary = await import_dump(sink, dump, "copy", show_progress=False)
        assert summary.created
        assert summary.verification.ok
        copy, src = await configuration(client, "copy"), await configuration(client, "src")
        assert copy["config"]["params"]["vectors"] == src["config"]["params"]["vectors"]
        assert copy["config"]["params"]["sparse_vectors"] == src["config"]["params"]["sparse_vectors"]
        assert copy["config"]["params"]["shard_number"] == 1
        assert copy["payload_schema"] == {}
    finally:
        await client.close()


async def test_migrate_creates_the_new_collection_like_the_old(
    server_target: QdrantTarget, model_paths: dict[str, str]
) -> None:
    client = server_target.async_client()
    sink = RetryingClient(client)
    settings = Settings(model_paths=model_paths)  # type: ignore[arg-type]
    try:
        await create_source(client)
        migration = Migration(
            settings,
            sink,
            Embedder(settings),
            alias="docs",
            new_collection="src_v2",
            text_field="body",
            vector_name="dense",
            model=MODEL,
            distance=qm.Distance.EUCLID,
            show_progress=False,
        )
        plan = await migration.create_new_collection("src")
        new = await configuration(client, "src_v2")
        assert (
            new["config"]["strict_mode_config"] != (await configuration(client, "src"))["config"]["strict_mode_config"]
        )
        await migration.finish_new_collection(plan)  # what run() does once the copy is verified
        old, new = await configuration(client, "src"), await configuration(client, "src_v2")
        old_dense, new_dense = (
            old["config"]["params"]["vectors"].pop("dense"),
            new["config"]["params"]["vectors"].pop("dense"),
        )
        assert (new_dense["size"], new_dense["distance"]) == (384, "Euclid")
        assert {**new_dense, "size": 4, "distance": "Cosine"} == old_dense  # its HNSW, datatype, on-disk kept
        assert new == old
    finally:
        await client.close()


def test_create_collection_like_copies_the_configuration(server_target: QdrantTarget) -> None:
    async def setup() -> None:
        client = server_target.async_client()
        try:
            await create_source(client)
        finally:
            await client.close()

    async def compare() -> tuple[dict[str, Any], dict[str, Any]]:
        client = server_target.async_client()
        try:
            return await configuration(client, "src"), await configuration(client, "twin")
        finally:
            await client.close()

    asyncio.run(setup())
    result = CliRunner().invoke(cli, ["create-collection", "twin", "--like", "src"], env=server_target.env())
    assert result.exit_code == 0, result.output
    src, twin = asyncio.run(compare())
    assert twin == src


async def test_a_local_mode_dump_brings_no_placeholders_to_the_server(
    server_target: QdrantTarget, tmp_path: Path
) -> None:
    """Local mode reports fixed HNSW, optimizer and WAL values it does not use (one optimization
    thread among them): a server copy keeps the server's defaults instead."""
    local = AsyncQdrantClient(path=str(tmp_path / "local"))
    dump = tmp_path / "local.jsonl"
    try:
        await local.create_collection(
            "src",
            vectors_config={"dense": qm.VectorParams(size=2, distance=qm.Distance.DOT)},
            sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
            metadata={"owner": "demo"},
        )
        await local.upsert(
            "src", [qm.PointStruct(id=i, vector={"dense": [1.0, float(i)]}, payload={"n": i}) for i in range(5)]
        )
        await export_collection(RetryingClient(local), "src", dump, show_progress=False)
    finally:
        await local.close()
    client = server_target.async_client()
    sink = RetryingClient(client)
    try:
        summary = await import_dump(sink, dump, "copy", show_progress=False)
        assert summary.verification.ok
        await client.create_collection(
            "plain",
            vectors_config={"dense": qm.VectorParams(size=2, distance=qm.Distance.DOT)},
            sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
            metadata={"owner": "demo"},
        )
        assert await configuration(client, "copy") == await configuration(client, "plain")
    finally:
        await client.close()
