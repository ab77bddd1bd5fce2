"""Which Qdrant filters match every point whatever the points hold, told from the filter alone:
no condition at all, only empty clauses, or clauses of nested filters that come out so. Pure.

A nested filter is a condition; a filter without any other condition matches every point or none,
and this finds which by Qdrant 1.18's rules (checked on the server and local mode): an absent or
empty clause constrains nothing, ``must`` needs each of its conditions, ``should`` any, ``must_not``
none. A server also reads a ``min_should`` without conditions as no constraint (local mode as none
met; either way it asks nothing of a point). A condition on the points (a key, an id) is not
judged here: the count in the window's admission stage judges what it matches.
"""

from __future__ import annotations

__all__ = ["matches_everything"]

_CLAUSES = frozenset({"must", "should", "must_not", "min_should"})


def matches_everything(flt: object) -> bool:
    """Whether ``flt``, a Qdrant filter as JSON, matches every point of any collection."""
    return _outcome(flt) is True


def _outcome(flt: object) -> bool | None:
    """True: the filter matches every point; False: none; None: it depends on the points (or it is
    no filter)."""
    if not isinstance(flt, dict) or not set(flt) <= _CLAUSES:
        return None
    clauses = [_all(flt.get("must")), _any(flt.get("should")), _none(flt.get("must_not")),
               True if _empty_min_should(flt.get("min_should")) else None]
    return _and(clauses)


def _conditions(clause: object) -> list[bool | None] | None:
    """The outcome of each condition of a clause (one condition or a list; absent or null: none), or
    None when the clause is neither."""
    if clause is None:
        return []
    items = [clause] if isinstance(clause, dict) else clause
    return [_outcome(item) for item in items] if isinstance(items, list) else None


def _and(outcomes: list[bool | None]) -> bool | None:
    return False if False in outcomes else True if all(o is True for o in outcomes) else None


def _all(clause: object) -> bool | None:
    outcomes = _conditions(clause)
    return None if outcomes is None else _and(outcomes)


def _any(clause: object) -> bool | None:
    outcomes = _conditions(clause)
    if outcomes is None:
        return None
    if not outcomes or True in outcomes:  # an empty should constrains nothing
        return True
    return False if all(o is False for o in outcomes) else None


def _none(clause: object) -> bool | None:
    outcomes = _conditions(clause)
    if outcomes is None:
        return None
    return _and([None if o is None else not o for o in outcomes])


def _empty_min_should(clause: object) -> bool:
    return clause is None or (isinstance(clause, dict) and clause.get("conditions") == [])
