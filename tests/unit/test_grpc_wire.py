"""The gRPC wire's request (connector/qdrant/wires/grpc.py, ``GrpcWire.encode``) is the messages
qdrant-client makes of the models wire's request (``RestToGrpc``), over random windows, shard keys
and vectors; what it does not build itself (filters, integers beyond 64 bits, lone surrogates) is
the models' request. And the read side: points read over gRPC decoded by the gRPC wire are the
state the models wire decodes from the client's models of them."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from qdrant_client import grpc
from qdrant_client import models as qm
from qdrant_client.conversions.conversion import GrpcToRest, RestToGrpc

from connector.domain.operations import DEFAULT_VECTOR, Op, PointData, Sparse
from connector.domain.sharding import Selector
from connector.qdrant.wires import GrpcWire, ModelsWire
from connector.qdrant.wires.models import ModelsBatch
from tests.unit.strategies import windows, with_tuples
from tests.unit.test_rest_wire import SHARD_KEYS, records


def reference(ops: list[Op], shard_key: Selector | None) -> list[grpc.PointsUpdateOperation]:
    """What qdrant-client sends over gRPC for the models wire's request (its own conversion)."""
    return [RestToGrpc.convert_update_operation(model) for model in ModelsWire.encode(ops, shard_key).operations]


def messages(ops: list[Op], shard_key: Selector | None = None) -> list[grpc.PointsUpdateOperation]:
    request = GrpcWire.encode(ops, shard_key)
    assert not isinstance(request, ModelsBatch), "the gRPC wire handed the request to the models"
    return request


def wire(messages: list[grpc.PointsUpdateOperation]) -> list[bytes]:
    return [message.SerializeToString(deterministic=True) for message in messages]


@given(windows(with_filters=False), st.sampled_from(SHARD_KEYS))
def test_the_operations_are_what_the_models_send(ops: list[Op], shard_key: Selector | None) -> None:
    fast = messages(ops, shard_key)
    want = reference(ops, shard_key)
    assert fast == want
    assert wire(fast) == wire(want)  # presence included: an empty map set is not a field unset


payload_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
                              | st.floats(allow_nan=False),
                              lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=3), max_leaves=8)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=8),
       st.sampled_from([DEFAULT_VECTOR, "dense"]), st.dictionaries(st.text(max_size=6), payload_values, max_size=4))
def test_vectors_of_any_name_and_any_payload(values: list[float], name: str, payload: dict[str, Any]) -> None:
    points = {1: PointData(vectors={name: tuple(values)}, payload=payload),
              "6f1c1d2e-0000-4000-8000-000000000007": PointData(vectors={"sparse": Sparse((3, 1), (0.5, 2.0))}),
              2: PointData(vectors={})}
    ops = [Op("upsert", points=points), Op("update_vectors", points={1: PointData(vectors={name: tuple(values)})}),
           Op("set_payload", ids=[1], payload=payload, key="m"), Op("overwrite_payload", ids=[2], payload=payload)]
    fast = messages(ops)
    assert fast == reference(ops, None)
    assert wire(fast) == wire(reference(ops, None))


def test_what_it_does_not_take_goes_the_model_path() -> None:
    by_filter = Op("delete", filter={"must": [{"key": "tag", "match": {"value": "x"}}]})
    for ops in ([Op("delete", ids=[1]), by_filter], [Op("set_payload", ids=[1], payload={"n": 2**70})],
                [Op("set_payload", ids=[1], payload={"s": "\ud800"})]):
        assert isinstance(GrpcWire.encode(ops), ModelsBatch)
        assert GrpcWire.encode(ops) == ModelsWire.encode(ops)


# The read side: points as Qdrant's gRPC API answers them (the client's own conversion of its
# models) make the same connector state read straight or converted to models first.


def typed(value: Any) -> Any:
    """A payload with the type of every number visible (1 == 1.0 would hide an int read as a double)."""
    text = json.dumps(value, default=str)
    return json.loads(text, parse_int=lambda s: ("int", s), parse_float=lambda s: ("float", s))


@given(records)
def test_a_read_over_grpc_makes_the_state_the_models_make(read: list[qm.Record]) -> None:
    # a gRPC point always has a payload map (the client's conversion takes no None)
    points = [RestToGrpc.convert_retrieved_point(record.model_copy(update={"payload": record.payload or {}}))
              for record in read]
    fast = with_tuples(GrpcWire.decode([points]))
    through_models = ModelsWire.decode([[GrpcToRest.convert_retrieved_point(point) for point in points]])
    assert fast == through_models
    assert typed({str(k): v.payload for k, v in fast.items()}) == typed(
        {str(k): v.payload for k, v in through_models.items()})


def test_a_vector_in_the_deprecated_fields_is_read_too() -> None:
    """Servers before 1.12 (or any that fills them) put vectors in ``data``/``indices``."""
    dense = grpc.VectorOutput(data=[0.5, -1.0])
    sparse = grpc.VectorOutput(data=[0.5], indices=grpc.SparseIndices(data=[3]))
    multi = grpc.VectorOutput(data=[1.0, 2.0, 3.0, 4.0], vectors_count=2)
    points = [grpc.RetrievedPoint(id=grpc.PointId(num=1), vectors=grpc.VectorsOutput(vector=dense)),
              grpc.RetrievedPoint(id=grpc.PointId(num=2), vectors=grpc.VectorsOutput(vector=multi)),
              grpc.RetrievedPoint(id=grpc.PointId(uuid="6F1C1D2E-0000-4000-8000-000000000007"),
                                  vectors=grpc.VectorsOutput(vectors=grpc.NamedVectorsOutput(
                                      vectors={"d": dense, "s": sparse, "m": multi})))]
    fast = with_tuples(GrpcWire.decode([points]))
    assert fast == ModelsWire.decode([[GrpcToRest.convert_retrieved_point(point) for point in points]])
    assert fast["6f1c1d2e-0000-4000-8000-000000000007"].vectors == {"d": (0.5, -1.0), "s": Sparse((3,), (0.5,))}
