"""The REST batch body built straight from the ops (connector/qdrant/rest_wire.py) is the JSON the
qdrant-client models of connector/qdrant/convert.py serialise to, over random windows, shard keys
and vectors; what it does not take (filters, integers beyond 64 bits) goes the model path."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from qdrant_client import models as qm
from qdrant_client.http.api.points_api import jsonable_encoder

from connector.domain.changes import ShardKeyWithFallback
from connector.domain.operations import DEFAULT_VECTOR, Op, PointData, Sparse
from connector.domain.sharding import Selector
from connector.qdrant.convert import to_requests
from connector.qdrant.rest_wire import rest_batch_body
from tests.unit.strategies import windows

SHARD_KEYS: list[Selector | None] = [None, "tenant-1", 7, ["a", "b"], ShardKeyWithFallback(target="t", fallback="all")]


def reference(ops: list[Op], shard_key: Selector | None) -> Any:
    """What qdrant-client sends for the models of these ops (its own encoder, as its REST API uses it)."""
    operations = [operation for op in ops for operation in to_requests(op, shard_key)]
    return json.loads(jsonable_encoder(qm.UpdateOperations(operations=operations)))


@given(windows(with_filters=False), st.sampled_from(SHARD_KEYS))
def test_the_body_is_what_the_models_send(ops: list[Op], shard_key: Selector | None) -> None:
    body = rest_batch_body(ops, shard_key)
    assert body is not None
    assert orjson.loads(body) == reference(ops, shard_key)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=8),
       st.sampled_from([DEFAULT_VECTOR, "dense"]), st.text(max_size=20))
def test_vectors_of_any_name_and_payload_text(values: list[float], name: str, text: str) -> None:
    points = {1: PointData(vectors={name: tuple(values)}, payload={"t": text, "n": {"f": 0.1, "l": [1, "x"]}}),
              "6f1c1d2e-0000-4000-8000-000000000007": PointData(vectors={"sparse": Sparse((3, 1), (0.5, 2.0))})}
    ops = [Op("upsert", points=points), Op("update_vectors", points={1: PointData(vectors={name: tuple(values)})})]
    assert orjson.loads(rest_batch_body(ops) or b"") == reference(ops, None)


def test_what_it_does_not_take_goes_the_model_path() -> None:
    by_filter = Op("delete", filter={"must": [{"key": "tag", "match": {"value": "x"}}]})
    assert rest_batch_body([Op("delete", ids=[1]), by_filter]) is None
    huge = Op("set_payload", ids=[1], payload={"n": 2**70})
    assert rest_batch_body([huge]) is None
