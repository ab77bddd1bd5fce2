"""The one line and the exit code (connector/exit_codes.py) each known failure of a command prints.

Every command goes through :func:`failure`: a user's mistake (a bad setting, a missing file, a
service that cannot be reached) is one line saying what failed and what to do, and a documented
code; a traceback only with ``--debug``. docs/errors.md lists the cases, each a test.
"""

from __future__ import annotations

import difflib
import json
import re
import typing

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from connector.errors import (
    AccessDenied,
    CannotCreateOutput,
    CollectionMissing,
    ConfigurationError,
    InvalidInput,
    InvalidOption,
    PermanentError,
    StorageError,
    StorageInUse,
    TransientError,
)
from connector.exit_codes import (
    EX_CANTCREAT,
    EX_CONFIG,
    EX_DATAERR,
    EX_IOERR,
    EX_NOINPUT,
    EX_SOFTWARE,
    EX_UNAVAILABLE,
    EX_USAGE,
)

__all__ = ["failure", "readable", "settings_problem"]

_FIELD_FROM_SOURCE = re.compile(r'error parsing value for field "(\w+)"')


def _variable(field: str) -> str:
    name = field.upper()
    return name if name.startswith("QCC_") else f"QCC_{name}"  # a field read by its alias is named so already


_UNION_MEMBER = re.compile(r"(constrained-)?(int|str|float|bool|none)|.*\[.*|function-.*")  # pydantic's, not ours


def _plain(location: tuple[int | str, ...]) -> list[str]:
    """A location without pydantic's internals (the union and validator names in it); list positions as [0]."""
    return [f"[{part}]" if isinstance(part, int) else part for part in location
            if isinstance(part, int) or not _UNION_MEMBER.fullmatch(part)]


def _message(error: ErrorDetails) -> str:
    """pydantic's message as the rest of the line: lower-case start, valid values as they are."""
    text = error["msg"].removeprefix("Value error, ")
    return text[:1].lower() + text[1:]


def _nested(field: str, error: ErrorDetails) -> str:
    """An error inside a setting's JSON: where in it, not the value there (QCC_SHARD_KEYS: docs.from_paylod)."""
    where = "".join(part if part.startswith("[") else f".{part}" for part in _plain(error["loc"][1:])).lstrip(".")
    if error["type"] == "extra_forbidden":
        keys = _keys_of(field)
        nearest = difflib.get_close_matches(str(error["loc"][-1]), keys, n=1)
        hint = f"did you mean {nearest[0]}? " if nearest else ""
        return f"{_variable(field)}: unknown key {where} ({hint}a rule takes {', '.join(keys)})"
    return f"{_variable(field)}: {where}: {_message(error)}"


def _keys_of(field: str) -> list[str]:
    """The keys the model inside a setting's mapping takes (QCC_SHARD_KEYS' rules)."""
    from connector.settings import Settings

    info = Settings.model_fields.get(field)
    for inner in typing.get_args(info.annotation if info else None):
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return list(inner.model_fields)
    return []


def readable(exc: ValidationError) -> str:
    """A validation error without pydantic's internals (the union and validator names in its
    locations): ``field.path: message`` per error."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"] if "[" not in str(part) and "function-" not in str(part))
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(dict.fromkeys(parts))


def settings_problem(exc: Exception) -> str | None:
    """A settings error as one line naming the ``QCC_*`` variable and the rule it broke."""
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        parts = []
        for error in exc.errors(include_url=False):
            if not error["loc"]:  # a rule across settings: its message names them
                parts.append(error["msg"].removeprefix("Value error, "))
                continue
            field = str(error["loc"][0])
            if len(_plain(error["loc"])) > 1:
                parts.append(_nested(field, error))
                continue
            given = error.get("input")
            shown = given if isinstance(given, str) else json.dumps(given, default=str)
            parts.append(f"{_variable(field)}={shown}: {_message(error)}")
        return "; ".join(parts) + " (qdrant-change-connector settings prints every setting)"
    found = _FIELD_FROM_SOURCE.search(str(exc))
    if found is not None:
        return (f"{_variable(found.group(1))}: not a valid value (a list takes a,b or JSON; an object takes JSON)"
                " (qdrant-change-connector settings prints every setting)")
    return None


def failure(exc: BaseException, bootstrap: str | None = None) -> tuple[int, str]:
    """The exit code and one line for an error that ended a command."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    problem = settings_problem(exc) if isinstance(exc, Exception) else None
    if problem is not None:
        return EX_CONFIG, f"invalid setting: {problem}"
    if isinstance(exc, ConfigurationError):
        return EX_CONFIG, str(exc)
    if isinstance(exc, InvalidOption):
        return EX_USAGE, str(exc)
    if isinstance(exc, InvalidInput):
        return EX_DATAERR, str(exc)
    if isinstance(exc, CannotCreateOutput):
        return EX_CANTCREAT, str(exc)
    if isinstance(exc, StorageInUse):
        return EX_UNAVAILABLE, str(exc)
    if isinstance(exc, KafkaConnectionError):
        return EX_UNAVAILABLE, (f"cannot reach the Kafka broker at {bootstrap or '?'}: is it running? "
                                "(QCC_KAFKA_BOOTSTRAP_SERVERS)")
    if isinstance(exc, KafkaError):
        return EX_UNAVAILABLE, f"Kafka refused: {type(exc).__name__}: {exc}"
    if isinstance(exc, AccessDenied):
        return EX_CONFIG, f"{exc} (QCC_QDRANT_API_KEY: a key that may read and write)"
    if isinstance(exc, StorageError):
        return EX_IOERR, f"{exc} (QCC_QDRANT_PATH: free space, or a folder that may be written)"
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return EX_UNAVAILABLE, f"no answer: {type(exc).__name__}: {exc or 'timed out'} (is the service up?)"
    if isinstance(exc, CollectionMissing):
        return EX_NOINPUT, f"{exc} (set QCC_QDRANT_URL for a server; without it, local mode in QCC_QDRANT_PATH)"
    if isinstance(exc, TransientError):
        return EX_UNAVAILABLE, f"{exc} (QCC_QDRANT_URL)"
    if isinstance(exc, FileNotFoundError):
        return EX_NOINPUT, f"no such file: {exc.filename or exc}"
    if isinstance(exc, (IsADirectoryError, PermissionError)):
        return EX_IOERR, f"cannot use {exc.filename or exc}: {exc.strerror or exc}"
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError, PermanentError)):
        return EX_DATAERR, f"bad input: {exc}"
    if isinstance(exc, OSError):
        return EX_IOERR, f"{exc}"
    return EX_SOFTWARE, f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
