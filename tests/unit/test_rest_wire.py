"""The REST wire's request (connector/qdrant/wires/rest.py, ``RestWire.encode``) is the JSON the
models wire's request serialises to (``ModelsWire.encode``), over random windows, shard keys and
vectors; what it does not write itself (filters, integers beyond 64 bits) is the models' request.
And the read side: a read-back's JSON decoded by the REST wire is the state the models wire
decodes from the same records."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from qdrant_client import models as qm
from qdrant_client.http.api.points_api import jsonable_encoder

from connector.domain.changes import ShardKeyWithFallback
from connector.domain.operations import DEFAULT_VECTOR, Op, PointData, Sparse
from connector.domain.sharding import Selector
from connector.qdrant.wires import ModelsWire, RestWire
from connector.qdrant.wires.models import ModelsBatch
from connector.qdrant.wires.rest import state_from_json
from tests.unit.strategies import windows, with_tuples

SHARD_KEYS: list[Selector | None] = [None, "tenant-1", 7, ["a", "b"], ShardKeyWithFallback(target="t", fallback="all")]


def reference(ops: list[Op], shard_key: Selector | None) -> Any:
    """What qdrant-client sends for the models wire's request (its own encoder, as its REST API uses it)."""
    operations = ModelsWire.encode(ops, shard_key).operations
    return json.loads(jsonable_encoder(qm.UpdateOperations(operations=operations)))


def rest_body(ops: list[Op], shard_key: Selector | None = None) -> bytes:
    request = RestWire.encode(ops, shard_key)
    assert isinstance(request, bytes), "the REST wire handed the request to the models"
    return request


@given(windows(with_filters=False), st.sampled_from(SHARD_KEYS))
def test_the_body_is_what_the_models_send(ops: list[Op], shard_key: Selector | None) -> None:
    assert orjson.loads(rest_body(ops, shard_key)) == reference(ops, shard_key)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=8),
       st.sampled_from([DEFAULT_VECTOR, "dense"]), st.text(max_size=20))
def test_vectors_of_any_name_and_payload_text(values: list[float], name: str, text: str) -> None:
    points = {1: PointData(vectors={name: tuple(values)}, payload={"t": text, "n": {"f": 0.1, "l": [1, "x"]}}),
              "6f1c1d2e-0000-4000-8000-000000000007": PointData(vectors={"sparse": Sparse((3, 1), (0.5, 2.0))})}
    ops = [Op("upsert", points=points), Op("update_vectors", points={1: PointData(vectors={name: tuple(values)})})]
    assert orjson.loads(rest_body(ops)) == reference(ops, None)


def test_what_it_does_not_take_goes_the_model_path() -> None:
    by_filter = Op("delete", filter={"must": [{"key": "tag", "match": {"value": "x"}}]})
    both = [Op("delete", ids=[1]), by_filter]
    assert RestWire.encode(both) == ModelsWire.encode(both)
    huge = [Op("set_payload", ids=[1], payload={"n": 2**70})]
    assert isinstance(RestWire.encode(huge), ModelsBatch)
    assert RestWire.encode(huge) == ModelsWire.encode(huge)


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
    answer = {"result": [orjson.loads(record.model_dump_json(exclude_none=True)) for record in read]}
    through_models = ModelsWire.decode([read])
    assert RestWire.decode([answer]) == through_models  # decoded by a client of another making
    assert with_tuples(RestWire.decode([orjson.dumps(answer)])) == through_models  # its bytes, by simdjson


JSON_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), JSON_FLOATS, st.text(max_size=5))
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
)
DENSE_JSON = st.lists(st.one_of(JSON_FLOATS, st.integers(-5, 5)), max_size=6)
SPARSE_JSON = st.builds(lambda pairs: {"indices": [i for i, _ in pairs], "values": [v for _, v in pairs]},
                        st.lists(st.tuples(st.integers(0, 2**32 - 1), JSON_FLOATS), max_size=4))
VECTOR_JSON = st.one_of(
    st.none(), DENSE_JSON, st.lists(st.lists(JSON_FLOATS, min_size=1, max_size=3), min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["dense", "sparse", "multi", "empty"]),
                    st.one_of(DENSE_JSON, SPARSE_JSON, st.lists(st.lists(JSON_FLOATS, min_size=1, max_size=2),
                                                                min_size=1, max_size=2)), max_size=3),
)
RECORD_JSON = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(0, 2**63 - 1), st.uuids().map(str))},
    optional={"payload": st.one_of(st.none(), st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=4)),
              "vector": VECTOR_JSON},
)


@settings(max_examples=300)
@given(records=st.lists(RECORD_JSON, max_size=5))
def test_a_rest_answer_read_from_its_bytes_is_the_state_its_json_makes(records: list[dict[str, Any]]) -> None:
    """The read-back's bytes through simdjson (dense vectors as numpy arrays) make the state that
    the decoded JSON makes, for every form of vector a REST answer holds and any payload."""
    body = orjson.dumps({"result": records, "status": "ok", "time": 0.001})
    from_bytes = RestWire.decode([body])
    assert with_tuples(from_bytes) == state_from_json(records)
    for point in from_bytes.values():
        for vector in point.vectors.values():
            assert not isinstance(vector, np.ndarray) or vector.dtype == np.float64
    assert RestWire.decode([orjson.loads(body)]) == state_from_json(records)
