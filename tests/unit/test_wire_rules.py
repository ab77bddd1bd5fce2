"""The two rules every wire spells, written once over the connector's ops
(connector/qdrant/wires/base.py): the null split of a ``set_payload`` keeps the op's effect, and a
batch's shard key selector is read the same for every wire (each wire's spelling of it is held to
the models' by tests/unit/test_rest_wire.py and test_grpc_wire.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connector.domain.changes import ShardKeyWithFallback
from connector.domain.operations import Op
from connector.domain.semantics import State, apply_all, copy_state
from connector.domain.sharding import Selector, keys_that_must_exist
from connector.qdrant.wires import request_ops, shard_target
from tests.unit.strategies import ops, states


@given(states(), ops(with_filters=False))
def test_the_ops_sent_for_an_op_have_its_effect(state: State, op: Op) -> None:
    """What a wire sends for ``op`` leaves every point as ``op`` does (a null removes the key),
    and sends no null: engines disagree on one."""
    sent = request_ops(op)
    assert all(v is not None for part in sent if part.kind == "set_payload" for v in (part.payload or {}).values())
    want, got = copy_state(state), copy_state(state)
    apply_all(want, [op])
    apply_all(got, sent)
    assert got == want


def test_the_null_split_spelled_out() -> None:
    assert request_ops(Op("set_payload", ids=[1, 2], payload={"a": None, "b": 1, "c": None}, key="m")) == [
        Op("delete_payload", ids=[1, 2], keys=("m.a", "m.c")), Op("set_payload", ids=[1, 2], payload={"b": 1}, key="m")]
    assert request_ops(Op("set_payload", ids=[1], payload={"a": None})) == [Op("delete_payload", ids=[1], keys=("a",))]
    # under a key, the set of nothing stays: it creates the objects on its way
    assert request_ops(Op("set_payload", ids=[1], payload={"a": None}, key="m"))[1].payload == {}
    by_filter = Op("set_payload", filter={"must": []}, payload={"a": None})
    assert request_ops(by_filter) == [by_filter]  # two ops on one filter: the second could match otherwise


shard_keys = st.integers(0, 2**32) | st.text(min_size=1, max_size=4)
selectors: st.SearchStrategy[Selector] = (
    shard_keys | st.lists(shard_keys, min_size=1, max_size=3)
    | st.builds(lambda target, fallback: ShardKeyWithFallback(target=target, fallback=fallback),
                shard_keys, shard_keys))


@given(selectors)
def test_a_selector_is_read_whole(selector: Any) -> None:
    target = shard_target(selector)
    assert target is not None
    fallback = isinstance(selector, ShardKeyWithFallback)
    assert target.fallback == (selector.fallback if fallback else None)
    assert target.keys == ([selector.target] if fallback else keys_that_must_exist(selector))
    assert target.as_named == (selector.target if fallback else selector)
    assert shard_target(None) is None
