"""The ``--filter`` option of the bulk tools: a Qdrant filter as JSON, or ``key=value``. Pure.

A mistyped filter is one line naming what is wrong (``must[0].matchh: Extra inputs are not
permitted``, :mod:`connector.bulk.error_line`), not pydantic's error for every member of every
union a condition may be.
``key=value`` matches the value as text and, where the text is an integer or a boolean, as that
too: payloads hold ``5`` and ``"5"`` alike, and a filter that silently matches neither is a
mistake nobody sees.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError
from qdrant_client import models as qm

from connector.bulk.error_line import fitting_errors
from connector.errors import InvalidOption

OPTION = "--filter"
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def parse_filter(text: str | None) -> qm.Filter | None:
    """A Qdrant filter from JSON, or ``key=value`` for the common single-match case;
    :class:`InvalidOption` with one line when it is neither."""
    if not text:
        return None
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidOption(OPTION, f"not JSON: {exc.msg} at column {exc.colno}") from None
        try:
            return qm.Filter.model_validate(document)
        except ValidationError as exc:
            raise InvalidOption(OPTION, f"not a Qdrant filter: {fitting_errors(exc)}") from None
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise InvalidOption(f"{OPTION} {text}", 'a filter is key=value or a Qdrant filter as JSON, e.g. '
                            '\'{"must": [{"key": "n", "range": {"gt": 5}}]}\'')
    return value_filter(key.strip(), value.strip())


def value_filter(key: str, value: str) -> qm.Filter:
    """``key`` matches ``value`` as text, or as the integer or boolean the text spells."""
    text = qm.FieldCondition(key=key, match=qm.MatchValue(value=value))
    typed: int | bool | None = None
    if _INTEGER.fullmatch(value):
        typed = int(value)
    elif value in ("true", "false"):
        typed = value == "true"
    if typed is None:
        return qm.Filter(must=[text])
    return qm.Filter(should=[text, qm.FieldCondition(key=key, match=qm.MatchValue(value=typed))])
