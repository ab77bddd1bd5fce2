"""Which Qdrant filters match every point whatever the points hold, told from the filter alone:
no condition at all, only empty clauses, or clauses made of such filters. Pure.

The rules are Qdrant 1.18's (checked on the server and local mode): an absent or empty ``must``,
``should`` or ``must_not`` constrains nothing, a ``must`` is met when each of its conditions is, a
``should`` when any is, and a nested filter is a condition. A server also reads a ``min_should``
without conditions as no constraint (local mode as none met; either way it asks nothing of a
point). Anything else may exclude a point, so it is not claimed: the count in the window's
admission stage judges those.
"""

from __future__ import annotations

from typing import Any

__all__ = ["matches_everything"]

_CLAUSES = frozenset({"must", "should", "must_not", "min_should"})


def matches_everything(flt: object) -> bool:
    """Whether ``flt``, a Qdrant filter as JSON, matches every point of any collection."""
    if not isinstance(flt, dict) or not set(flt) <= _CLAUSES:
        return False
    must, should = _conditions(flt.get("must")), _conditions(flt.get("should"))
    if must is None or should is None or _conditions(flt.get("must_not")) != []:
        return False
    if not _empty_min_should(flt.get("min_should")):
        return False
    return all(map(matches_everything, must)) and (not should or any(map(matches_everything, should)))


def _conditions(clause: object) -> list[Any] | None:
    """A clause's conditions (Qdrant takes one condition or a list; absent or null: none), or None
    when it is neither."""
    if clause is None:
        return []
    if isinstance(clause, dict):
        return [clause]
    return list(clause) if isinstance(clause, list) else None


def _empty_min_should(clause: object) -> bool:
    return clause is None or (isinstance(clause, dict) and clause.get("conditions") == [])
