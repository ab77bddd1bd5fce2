"""A pydantic validation error as one line a person can act on. Pure.

pydantic reports a value that fits no member of a union once per member (a filter condition
has eight, a match six): 88 lines for one mistyped key. What the user meant is the member that
got furthest, so at each union only that member's errors are kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

_TYPE_NAMES = {"int", "str", "float", "bool", "none", "dict", "list", "datetime", "date", "bytes"}

Located = tuple[tuple[Any, ...], str]


def fitting_errors(exc: ValidationError, most: int = 3) -> str:
    """A validation error as one line: at each union, only the errors of the member that fits
    best (the one whose errors lie deepest, then the fewest), locations without pydantic's
    member tags."""
    located = [(tuple(error["loc"]), error["msg"]) for error in exc.errors(include_url=False)]
    parts = [f"{_path(loc)}: {msg}" if loc else msg for loc, msg in _prune(located)]
    shown = "; ".join(dict.fromkeys(parts[:most]))
    return shown + (f" (and {len(parts) - most} more)" if len(parts) > most else "")


def _is_member_tag(part: Any) -> bool:
    """A location part naming a union member (a class, a type) rather than a field or index."""
    return isinstance(part, str) and (
        "[" in part or part[:1].isupper() or part.startswith("function-") or part in _TYPE_NAMES
    )


def _prune(errors: list[Located]) -> list[Located]:
    here = [e for e in errors if not e[0]]
    groups: dict[Any, list[Located]] = {}
    for loc, msg in errors:
        if loc:
            groups.setdefault(loc[0], []).append((loc[1:], msg))
    if groups and all(_is_member_tag(part) for part in groups):
        branches = [_prune(group) for group in groups.values()]
        best = min(branches, key=lambda b: (-max((len(loc) for loc, _ in b), default=0), len(b)))
        return here + best
    return here + [((part, *loc), msg) for part, group in groups.items() for loc, msg in _prune(group)]


def _path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text
