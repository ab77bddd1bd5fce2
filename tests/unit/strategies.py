"""Hypothesis strategies for random windows of operations over a small id space."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from connector.domain.operations import Op, PointData, Sparse
from connector.domain.semantics import PointState, State

IDS = st.sampled_from([1, 2, 3, 4, 5, "6f1c1d2e-0000-4000-8000-000000000007"])
KEYS = st.sampled_from(["a", "b", "tag", "m"])
PATHS = st.sampled_from(["a", "b", "tag", "m", "m.x", "m.y", "m.x.z"])
VALUES = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["x", "y"]), st.booleans())
VECTOR_NAMES = st.sampled_from(["dense", "sparse"])


def vectors() -> st.SearchStrategy[dict[str, Any]]:
    dense = st.tuples(st.integers(-2, 2).map(float), st.integers(-2, 2).map(float))
    sparse = st.builds(lambda i, v: Sparse((i,), (v,)), st.integers(0, 5), st.integers(1, 3).map(float))
    return st.fixed_dictionaries({}, optional={"dense": dense, "sparse": sparse})


def payloads(allow_null: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    leaf = VALUES if allow_null else VALUES.filter(lambda v: v is not None)
    return st.dictionaries(
        KEYS, st.one_of(leaf, st.dictionaries(st.sampled_from(["x", "y"]), leaf, max_size=2)), max_size=3
    )


def id_lists() -> st.SearchStrategy[list[Any]]:
    return st.lists(IDS, min_size=1, max_size=3, unique=True)


def tag_filters() -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(["x", "y"]).map(lambda v: {"must": [{"key": "tag", "match": {"value": v}}]})


def match_tag(flt: dict[str, Any], _pid: Any, point: PointState) -> bool:
    """The one filter shape the generated windows use: payload ``tag`` equals a value."""
    condition = flt["must"][0]
    return point.payload.get(condition["key"]) == condition["match"]["value"]


@st.composite
def ops(draw: st.DrawFn, with_filters: bool = True, filter_delete: bool = False) -> Op:
    kinds = ["upsert", "delete", "set_payload", "overwrite_payload", "delete_payload",
             "clear_payload", "update_vectors", "delete_vectors"]
    kind = draw(st.sampled_from(kinds))
    filter_ok = with_filters and kind not in ("upsert", "update_vectors") and (kind != "delete" or filter_delete)
    use_filter = filter_ok and draw(st.booleans()) and draw(st.booleans())
    selector: dict[str, Any] = {"filter": draw(tag_filters())} if use_filter else {"ids": draw(id_lists())}
    if kind == "upsert":
        pts = draw(st.dictionaries(IDS, st.builds(PointData, vectors(), payloads()), min_size=1, max_size=3))
        return Op("upsert", points=pts)
    if kind == "update_vectors":
        pts = draw(st.dictionaries(IDS, st.builds(PointData, vectors().filter(bool)), min_size=1, max_size=3))
        return Op("update_vectors", points=pts)
    if kind == "set_payload":
        key = draw(st.one_of(st.none(), st.sampled_from(["m", "m.x", "n"])))
        return Op("set_payload", payload=draw(payloads(allow_null=True).filter(bool)), key=key, **selector)
    if kind == "overwrite_payload":
        return Op("overwrite_payload", payload=draw(payloads()), **selector)
    if kind == "delete_payload":
        return Op("delete_payload", keys=tuple(draw(st.lists(PATHS, min_size=1, max_size=2, unique=True))), **selector)
    if kind == "delete_vectors":
        names = tuple(draw(st.lists(VECTOR_NAMES, min_size=1, max_size=2, unique=True)))
        return Op("delete_vectors", vector_names=names, **selector)
    return Op(kind, **selector)


@st.composite
def windows(draw: st.DrawFn, max_size: int = 25, **kwargs: Any) -> list[Op]:
    window = draw(st.lists(ops(**kwargs), max_size=max_size))
    for position, op in enumerate(window):
        op.sources = [position]
    return window


@st.composite
def states(draw: st.DrawFn) -> State:
    return draw(st.dictionaries(IDS, st.builds(PointState, payloads(), vectors()), max_size=5))


def with_tuples(state: State) -> State:
    """``state`` with its dense vectors as tuples of floats, to compare states with ``==``
    (a REST read-back holds them as numpy arrays: connector/domain/verifier.py)."""
    return {pid: PointState(point.payload, {name: tuple(v.tolist()) if hasattr(v, "tolist") else v
                                            for name, v in point.vectors.items()})
            for pid, point in state.items()}
