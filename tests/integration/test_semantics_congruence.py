"""connector.semantics agrees with Qdrant (embedded local mode) on random operations.

The planner's property test and the verifier both trust this model, so it is checked here
against the real engine: the same random ops go through ``batch_update_points`` one at a
time and through the model, and the two collections must be equal after each op.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.operations import Op
from connector.semantics import PointMissing, State, apply_op
from connector.sink import classify, to_qdrant
from connector.verifier import state_from_records
from tests.unit.strategies import match_tag, ops, states


def _fresh_client(initial: State) -> QdrantClient:
    client = QdrantClient(":memory:")
    client.create_collection(
        "c",
        vectors_config={"dense": qm.VectorParams(size=2, distance=qm.Distance.DOT)},
        sparse_vectors_config={"sparse": qm.SparseVectorParams()},
    )
    seed = [Op("upsert", points={pid: _data(p) for pid, p in initial.items()})] if initial else []
    for op in seed:
        client.batch_update_points("c", [to_qdrant(op)])
    return client


def _data(point):  # noqa: ANN001, ANN202
    from connector.operations import PointData

    return PointData(vectors=dict(point.vectors), payload=copy.deepcopy(point.payload))


def _read(client: QdrantClient) -> State:
    records, _ = client.scroll("c", limit=1000, with_payload=True, with_vectors=True)
    state = state_from_records(records)
    for point in state.values():  # the model keeps dense vectors as floats, Qdrant as float32
        point.vectors = {k: (tuple(round(x, 4) for x in v) if isinstance(v, tuple) else v) for k, v in point.vectors.items()}
    return state


def _normalize(state: State) -> State:
    out = copy.deepcopy(state)
    for point in out.values():
        point.vectors = {
            k: (tuple(round(x, 4) for x in v) if isinstance(v, tuple) else
                type(v)(tuple(sorted(v.indices)), tuple(val for _, val in sorted(zip(v.indices, v.values)))))
            for k, v in point.vectors.items()
        }
    return out


@pytest.mark.integration
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states(), st.lists(ops(filter_delete=True), max_size=12))
def test_model_matches_qdrant_local_mode(initial: State, window: list[Op]) -> None:
    client = _fresh_client(initial)
    model = copy.deepcopy(initial)
    try:
        for op in window:
            model_failed = False
            try:
                apply_op(model, op, match_tag)
            except PointMissing:
                model_failed = True
            try:
                client.batch_update_points("c", [to_qdrant(op)])
                qdrant_failed = False
            except Exception as exc:  # noqa: BLE001 - compared below
                assert not classify(exc).retriable
                qdrant_failed = True
            assert model_failed == qdrant_failed, op
            assert _read(client) == _normalize(model), op
    finally:
        client.close()
