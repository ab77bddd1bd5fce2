"""collection_plan maps a CollectionInfo onto create_collection, payload indexes and
update_collection, without IO. The infos are JSON as Qdrant 1.18 reports it (REST)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.bulk.collection_config import (
    CREATE_PARAMS,
    UPDATE_PARAMS,
    CollectionConfigError,
    CollectionPlan,
    PayloadIndex,
    collection_plan,
    info_from_json,
    info_to_json,
    is_local_mode_info,
)
from connector.bulk.importer import manifest_plan
from connector.bulk.migrate import migrated_plan
from connector.qdrant.reads import strict_limit

SERVER_INFO: dict[str, Any] = {
    "status": "green",
    "optimizer_status": "ok",
    "segments_count": 3,
    "points_count": 10,
    "indexed_vectors_count": 0,
    "config": {
        "params": {
            "vectors": {
                "dense": {
                    "size": 4,
                    "distance": "Cosine",
                    "on_disk": True,
                    "datatype": "float16",
                    "hnsw_config": {"m": 8},
                },
                "raw": {"size": 3, "distance": "Dot", "quantization_config": {"binary": {"always_ram": True}}},
            },
            "shard_number": 3,
            "replication_factor": 2,
            "write_consistency_factor": 2,
            "on_disk_payload": False,
            "read_fan_out_factor": 2,
            "read_fan_out_delay_ms": 7,
            "sparse_vectors": {"bm25": {"modifier": "idf", "index": {"on_disk": True, "full_scan_threshold": 1234}}},
        },
        "hnsw_config": {
            "m": 24,
            "ef_construct": 123,
            "full_scan_threshold": 5000,
            "max_indexing_threads": 2,
            "on_disk": True,
            "payload_m": 20,
        },
        "optimizer_config": {
            "deleted_threshold": 0.3,
            "vacuum_min_vector_number": 500,
            "default_segment_number": 3,
            "max_segment_size": 100000,
            "indexing_threshold": 12345,
            "flush_interval_sec": 7,
            "max_optimization_threads": 1,
        },
        "wal_config": {"wal_capacity_mb": 16, "wal_segments_ahead": 1, "wal_retain_closed": 1},
        "quantization_config": {"scalar": {"type": "int8", "quantile": 0.95, "always_ram": True}},
        "strict_mode_config": {
            "enabled": True,
            "max_query_limit": 500,
            "upsert_max_batchsize": 300,
            "search_max_hnsw_ef": 256,
            "sparse_config": {"bm25": {"max_length": 1000}},
        },
        "metadata": {"owner": "team-a"},
    },
    "payload_schema": {
        "kind": {"data_type": "keyword", "points": 4},
        "tenant": {"data_type": "keyword", "params": {"type": "keyword", "is_tenant": True}, "points": 4},
        "body": {
            "data_type": "text",
            "params": {"type": "text", "tokenizer": "word", "lowercase": True, "min_token_len": 2},
            "points": 4,
        },
        "n": {"data_type": "integer", "params": {"type": "integer", "lookup": False, "range": True}, "points": 4},
    },
}


def server_info() -> qm.CollectionInfo:
    return qm.CollectionInfo.model_validate(copy.deepcopy(SERVER_INFO))


def test_every_configuration_item_maps_to_its_argument() -> None:
    plan = collection_plan(server_info())
    create = plan.create
    assert set(create) == {"vectors_config", "sparse_vectors_config", "shard_number", "replication_factor",
                           "write_consistency_factor", "on_disk_payload", "hnsw_config", "optimizers_config",
                           "wal_config", "quantization_config", "metadata"}
    assert create["vectors_config"]["dense"] == qm.VectorParams(
        size=4,
        distance=qm.Distance.COSINE,
        on_disk=True,
        datatype=qm.Datatype.FLOAT16,
        hnsw_config=qm.HnswConfigDiff(m=8),
    )
    assert create["vectors_config"]["raw"].quantization_config == qm.BinaryQuantization(
        binary=qm.BinaryQuantizationConfig(always_ram=True))
    assert create["sparse_vectors_config"]["bm25"] == qm.SparseVectorParams(
        modifier=qm.Modifier.IDF, index=qm.SparseIndexParams(on_disk=True, full_scan_threshold=1234))
    assert (create["shard_number"], create["replication_factor"], create["write_consistency_factor"]) == (3, 2, 2)
    assert create["on_disk_payload"] is False
    assert create["hnsw_config"] == qm.HnswConfigDiff(m=24, ef_construct=123, full_scan_threshold=5000,
                                                      max_indexing_threads=2, on_disk=True, payload_m=20)
    assert create["optimizers_config"] == qm.OptimizersConfigDiff(
        deleted_threshold=0.3, vacuum_min_vector_number=500, default_segment_number=3, max_segment_size=100000,
        indexing_threshold=12345, flush_interval_sec=7, max_optimization_threads=1)
    assert create["wal_config"] == qm.WalConfigDiff(wal_capacity_mb=16, wal_segments_ahead=1, wal_retain_closed=1)
    assert create["quantization_config"] == qm.ScalarQuantization(
        scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=0.95, always_ram=True))
    assert create["metadata"] == {"owner": "team-a"}
    assert plan.payload_indexes == (
        PayloadIndex("body", qm.TextIndexParams(type=qm.TextIndexType.TEXT, tokenizer=qm.TokenizerType.WORD,
                                                lowercase=True, min_token_len=2)),
        PayloadIndex("kind", qm.PayloadSchemaType.KEYWORD),
        PayloadIndex("n", qm.IntegerIndexParams(type=qm.IntegerIndexType.INTEGER, lookup=False, range=True)),
        PayloadIndex("tenant", qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True)),
    )
    assert plan.finish == {
        "strict_mode_config": qm.StrictModeConfig(
            enabled=True,
            max_query_limit=500,
            upsert_max_batchsize=300,
            search_max_hnsw_ef=256,
            sparse_config={"bm25": qm.StrictModeSparse(max_length=1000)},
        ),
        "collection_params": qm.CollectionParamsDiff(read_fan_out_factor=2, read_fan_out_delay_ms=7),
    }


def test_the_arguments_form_a_valid_create_request() -> None:
    # the REST body the client builds from them forbids unknown fields and checks every type
    create = dict(collection_plan(server_info()).create)
    body = qm.CreateCollection(vectors=create.pop("vectors_config"), sparse_vectors=create.pop("sparse_vectors_config"),
                               **create)
    assert body.model_dump(exclude_none=True)["shard_number"] == 3


def test_every_field_of_the_client_models_is_mapped() -> None:
    # a qdrant-client upgrade that adds a setting fails here until the plan carries it
    assert set(qm.CollectionParams.model_fields) == {"vectors", "sparse_vectors", *CREATE_PARAMS, *UPDATE_PARAMS}
    assert set(qm.CollectionConfig.model_fields) == {"params", "hnsw_config", "optimizer_config", "wal_config",
                                                     "quantization_config", "strict_mode_config", "metadata"}
    for output, diff in ((qm.HnswConfig, qm.HnswConfigDiff), (qm.OptimizersConfig, qm.OptimizersConfigDiff),
                         (qm.WalConfig, qm.WalConfigDiff), (qm.StrictModeConfigOutput, qm.StrictModeConfig)):
        assert set(output.model_fields) == set(diff.model_fields), (output, diff)
    assert set(qm.PayloadIndexInfo.model_fields) == {"data_type", "params", "points"}


def test_unset_items_are_left_to_the_server_defaults() -> None:
    data = copy.deepcopy(SERVER_INFO)
    for key in ("quantization_config", "strict_mode_config", "metadata"):
        data["config"][key] = None
    del data["config"]["params"]["read_fan_out_factor"], data["config"]["params"]["read_fan_out_delay_ms"]
    data["config"]["params"]["sparse_vectors"] = None
    data["payload_schema"] = {}
    plan = collection_plan(qm.CollectionInfo.model_validate(data))
    assert not {"quantization_config", "metadata", "sparse_vectors_config"} & set(plan.create)
    assert plan.payload_indexes == ()
    assert plan.finish == {}


def test_strict_mode_that_is_only_reported_empty_is_not_copied() -> None:
    data = copy.deepcopy(SERVER_INFO)
    data["config"]["strict_mode_config"] = {}
    assert "strict_mode_config" not in collection_plan(qm.CollectionInfo.model_validate(data)).finish


def test_local_mode_placeholders_are_not_copied_as_settings() -> None:
    data = copy.deepcopy(SERVER_INFO)
    params = data["config"]["params"]
    for key in ("shard_number", "replication_factor", "write_consistency_factor", "on_disk_payload",
                "read_fan_out_factor", "read_fan_out_delay_ms"):
        params[key] = None  # what local mode reports
    data["config"].update(quantization_config=None, strict_mode_config=None)
    data["payload_schema"] = {}
    info = qm.CollectionInfo.model_validate(data)
    assert is_local_mode_info(info)
    assert not is_local_mode_info(server_info())
    plan = collection_plan(info)
    assert set(plan.create) == {"vectors_config", "sparse_vectors_config", "metadata"}
    assert plan.finish == {}


def test_custom_sharding_is_refused() -> None:
    data = copy.deepcopy(SERVER_INFO)
    data["config"]["params"]["sharding_method"] = "custom"
    with pytest.raises(CollectionConfigError, match="custom sharding"):
        collection_plan(qm.CollectionInfo.model_validate(data))


def test_info_survives_the_manifest_json() -> None:
    info = server_info()
    assert info_from_json(json.loads(json.dumps(info_to_json(info)))) == info
    local = server_info().model_copy(deep=True)
    local.config.params.shard_number = None
    assert is_local_mode_info(info_from_json(json.loads(json.dumps(info_to_json(local)))))


def test_a_manifest_plan_uses_the_whole_info_and_old_manifests_still_read() -> None:
    new = manifest_plan({"collection": info_to_json(server_info()), "config": {"dense": {}, "sparse": {}}})
    assert new == collection_plan(server_info())
    old = manifest_plan({"config": {"dense": {"": {"size": 2, "distance": "Dot"}}, "sparse": {"s": {}}}})
    assert old == CollectionPlan({"vectors_config": qm.VectorParams(size=2, distance=qm.Distance.DOT),
                                  "sparse_vectors_config": {"s": qm.SparseVectorParams()}})


def test_migration_changes_only_the_migrated_vector() -> None:
    plan = migrated_plan(server_info(), "dense", 384, qm.Distance.EUCLID)
    before = collection_plan(server_info())
    assert plan.create["vectors_config"]["dense"] == qm.VectorParams(
        size=384,
        distance=qm.Distance.EUCLID,
        on_disk=True,
        datatype=qm.Datatype.FLOAT16,
        hnsw_config=qm.HnswConfigDiff(m=8),
    )
    assert plan.create["vectors_config"]["raw"] == before.create["vectors_config"]["raw"]
    assert {k: v for k, v in plan.create.items() if k != "vectors_config"} == {
        k: v for k, v in before.create.items() if k != "vectors_config"}
    assert (plan.payload_indexes, plan.finish) == (before.payload_indexes, before.finish)
    with pytest.raises(CollectionConfigError, match="no named dense vector 'other'"):
        migrated_plan(server_info(), "other", 384, qm.Distance.COSINE)


def test_an_unnamed_vector_cannot_be_replaced_by_name() -> None:
    plan = CollectionPlan({"vectors_config": qm.VectorParams(size=2, distance=qm.Distance.DOT)})
    with pytest.raises(CollectionConfigError):
        plan.with_vector("dense", qm.VectorParams(size=3, distance=qm.Distance.DOT))


def test_strict_limits_count_only_when_strict_mode_is_on() -> None:
    info = server_info()
    assert strict_limit(info, "max_query_limit") == 500
    assert strict_limit(info, "upsert_max_batchsize") == 300
    assert strict_limit(info, "search_max_batchsize") is None
    info.config.strict_mode_config.enabled = False  # type: ignore[union-attr]
    assert strict_limit(info, "max_query_limit") is None
