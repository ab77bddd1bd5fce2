"""The REST batch body built straight from the ops (connector/qdrant/rest_wire.py) is the JSON the
qdrant-client models of connector/qdrant/convert.py serialise to, over random windows, shard keys
and vectors; what it does not take (filters, integers beyond 64 bits) goes the model path. And the
read side: a read-back's JSON makes the connector state its models make."""

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
from connector.domain.verifier import state_from_json, state_from_records
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


# The read side: records as Qdrant's REST API writes them (the client's own JSON of its models)
# make the same connector state whether decoded into models first or read as JSON.
json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
                           | st.floats(allow_nan=False, allow_infinity=False),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)
dense = st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=6)
sparse = st.builds(lambda pairs: qm.SparseVector(indices=[i for i, _ in pairs], values=[v for _, v in pairs]),
                   st.lists(st.tuples(st.integers(0, 1000), st.floats(-10, 10, width=32)), max_size=4,
                            unique_by=lambda p: p[0]))
multi = st.lists(dense, min_size=1, max_size=2)
records = st.lists(st.builds(
    qm.Record,
    id=st.integers(0, 2**64 - 1) | st.uuids().map(str),
    payload=st.none() | st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    vector=st.none() | dense | multi | st.dictionaries(st.sampled_from(["a", "b", "s", "m"]), dense | sparse | multi,
                                                         max_size=3),
), max_size=5)


@given(records)
def test_a_read_as_json_makes_the_state_the_models_make(read: list[qm.Record]) -> None:
    answer = [orjson.loads(record.model_dump_json(exclude_none=True)) for record in read]
    assert state_from_json(answer) == state_from_records(read)
