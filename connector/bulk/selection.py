"""What the bulk tools' options name, checked against the collection before anything is written.

A vector name or payload key the collection does not have is not an empty selection: Qdrant
answers it with nothing, so an export would write a dump without that data and a re-embed would
embed no point, and both would report success. Each is refused instead, naming the option
(:class:`~connector.errors.InvalidOption`, exit 64).
"""

from __future__ import annotations

from qdrant_client import models as qm

from connector.bulk.dump import vectors_config
from connector.domain.operations import DEFAULT_VECTOR
from connector.errors import InvalidOption
from connector.qdrant import RetryingClient
from connector.qdrant.reads import count_points


def vector_names(info: qm.CollectionInfo) -> tuple[set[str], set[str]]:
    """The collection's dense and sparse vector names ("" is the unnamed vector)."""
    config = vectors_config(info)
    return set(config["dense"]), set(config["sparse"])


def shown(name: str) -> str:
    return repr(name) if name == DEFAULT_VECTOR else name


def check_vectors(option: str, wanted: list[str], info: qm.CollectionInfo, collection: str) -> None:
    """InvalidOption unless the collection has every vector in ``wanted``."""
    dense, sparse = vector_names(info)
    missing = [name for name in wanted if name not in dense | sparse]
    if missing:
        have = ", ".join(sorted(shown(n) for n in dense | sparse)) or "none"
        raise InvalidOption(f"{option} {','.join(shown(n) for n in missing)}",
                            f"{collection} has no such vector (its vectors: {have})")


def has_value_at(key: str, within: qm.Filter | None = None) -> qm.Filter:
    """The points (among those ``within`` matches) with a value at payload ``key`` (dotted for nested keys)."""
    return qm.Filter(must=[within] if within is not None else None,
                     must_not=[qm.IsEmptyCondition(is_empty=qm.PayloadField(key=key))])


async def check_payload_keys(qdrant: RetryingClient, option: str, keys: list[str], collection: str,
                             within: qm.Filter | None, points: int) -> None:
    """InvalidOption when no point of ``points`` (those ``within`` matches) has a value at one of ``keys``."""
    if points == 0:
        return  # no point has anything: an empty selection, not a wrong key
    for key in keys:
        if await count_points(qdrant, collection, has_value_at(key, within)) == 0:
            scope = f"of the {points} the filter matches " if within is not None else ""
            raise InvalidOption(f"{option} {key}", f"no point {scope}of {collection} has a value there (a payload "
                                "key; a dotted path reaches into objects)")
