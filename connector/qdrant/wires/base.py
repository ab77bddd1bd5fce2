"""What every wire shares: the interface of its four jobs, and the two rules each one spells. Pure.

A wire is one way of speaking to Qdrant (qdrant-client's models, REST JSON, gRPC protobuf). It
owns four jobs: ``encode`` a batch of ops into its request, ``send`` that request with
``wait=true``, ``retrieve`` points by id, and ``decode`` what it retrieved into the verifier's
state. The applier (connector/qdrant/apply.py) and the reads (connector/qdrant/reads.py) call these
and never ask which wire they hold; the wire is chosen once, where the client is made
(:func:`connector.qdrant.wires.wire_for`).

Two rules hold on every wire and are written here once, over the connector's ops:
:func:`request_ops` (a ``set_payload``'s nulls become a ``delete_payload``) and
:func:`shard_target` (a batch's shard key selector); each wire only spells their result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import ClassVar, Generic, TypeVar

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.domain.changes import ShardKeyWithFallback
from connector.domain.operations import Op, PointKey
from connector.domain.semantics import State
from connector.domain.sharding import Selector

__all__ = ["Selection", "ShardTarget", "Wire", "request_ops", "shard_target"]

RequestT = TypeVar("RequestT")
AnswerT = TypeVar("AnswerT")
Selection = bool | list[str]  # which payload keys or vectors a read asks for: all, none, or by name


def request_ops(op: Op) -> list[Op]:
    """The ops a wire sends for ``op``: itself, except that an id-addressed ``set_payload`` with
    null values becomes a ``delete_payload`` of those keys (under its ``key``) and a
    ``set_payload`` of the rest. Engines disagree on a null (local mode stores it; a server
    removes the key, but stores it on a point without payload); the connector's meaning, and
    every engine's once split, is "remove the key". A filter-addressed one is sent as it is:
    two ops on one filter can change what the second matches."""
    if op.kind != "set_payload" or op.filter is not None:
        return [op]
    payload = op.payload or {}
    nulls = [k for k, v in payload.items() if v is None]
    if not nulls:
        return [op]
    delete = Op("delete_payload", ids=op.ids, keys=tuple(f"{op.key}.{k}" if op.key else k for k in nulls))
    rest = {k: v for k, v in payload.items() if v is not None}
    # with a key, set_payload walks (creating objects) even when nothing is left to set
    return [delete, replace(op, payload=rest)] if rest or op.key else [delete]


@dataclass(frozen=True, slots=True)
class ShardTarget:
    """A batch's shard key selector (connector/domain/sharding.py) as every wire reads it: the keys
    it names, whether it named a list (a lone key stays lone in Qdrant's JSON), and the key to
    write to where the one target key does not exist (None: no fallback)."""

    keys: list[int | str]
    listed: bool
    fallback: int | str | None = None

    @property
    def as_named(self) -> int | str | list[int | str]:
        """The keys as the selector named them: one key, or the list."""
        return self.keys if self.listed else self.keys[0]


def shard_target(selector: Selector | None) -> ShardTarget | None:
    """``selector`` read once for every wire (None: no selector)."""
    if selector is None:
        return None
    if isinstance(selector, ShardKeyWithFallback):
        return ShardTarget([selector.target], listed=False, fallback=selector.fallback)
    if isinstance(selector, list):
        return ShardTarget(list(selector), listed=True)
    return ShardTarget([selector], listed=False)


class Wire(ABC, Generic[RequestT, AnswerT]):
    """One way of speaking to one Qdrant (see the module). ``encode`` and ``decode`` are pure;
    ``send`` and ``retrieve`` make one call each, which the caller runs through
    :meth:`connector.qdrant.retrying.RetryingClient.call` (retries, timeout, errors)."""

    name: ClassVar[str]

    def __init__(self, client: AsyncQdrantClient) -> None:
        self.client = client

    @staticmethod
    @abstractmethod
    def encode(ops: list[Op], shard_key: Selector | None = None) -> RequestT:
        """The batch request of ``ops``, in order, to ``shard_key``'s shards (:func:`request_ops`
        of each op)."""

    @abstractmethod
    async def send(self, collection: str, request: RequestT, ordering: qm.WriteOrdering, *,
                   timeout: int | None) -> list[qm.UpdateResult]:
        """``request`` with ``wait=true`` and Qdrant's ``timeout``: the result of each operation
        (connector/qdrant/updates.py reads whether they were applied)."""

    @abstractmethod
    async def retrieve(self, collection: str, ids: list[PointKey], *, payload: Selection, vectors: Selection,
                       shard_key: Selector | None, consistency: qm.ReadConsistency | None) -> AnswerT:
        """One read of the points among ``ids`` that exist, the answer as it comes."""

    @staticmethod
    @abstractmethod
    def decode(answers: Iterable[AnswerT]) -> State:
        """The points of ``answers`` as the verifier's state (ids normalised)."""
