"""Named fault-injection points for the fault tests, off unless a folder is configured.

A failpoint is active while a file of its name exists in ``QCC_FAILPOINTS_DIR``, so a test
can switch a fault on and off in a running worker process from the outside. Production
deployments leave the setting unset, and then every check is one ``is None`` test.

Failpoints:
- ``qdrant-unavailable``: every Qdrant call fails as if the connection were refused;
- ``qdrant-timeout``: every Qdrant call times out, as httpx reports it;
- ``crash-while-embedding``: the process exits hard inside a model call (stage embed);
- ``crash-after-apply``: ... after a batch is applied, before its verification event;
- ``crash-between-requests``: ... after a batch's first request, when the batch takes several
  (QCC_QDRANT_MAX_REQUEST_BYTES): a window applied in part, such as a document's new chunks
  written and its stale ones not yet deleted;
- ``crash-after-confirm``: ... after the verification event, before offsets are acknowledged;
- ``drop-filter-match``: a filter-addressed op is sent narrowed to leave out the first point
  its filter matched, as a server that drops part of a filter op would (the read-back must say
  mismatch);
- ``write-behind``: between a window's batch and its read-back, another writer sets a payload
  key on a point the batch wrote, or in a re-embed window (which checks no payload) reverses
  a vector it wrote (the read-back must say mismatch; the audit must name it);
- ``hold-apply``: a window's batch request waits while the file exists, as a slow request in
  flight does (shutdown does not cut it short);
- ``agent-crash``: an agent's body raises as soon as it starts, as a bug would (the worker must
  end, exit 70, rather than Faust restarting the agent forever);
- ``poison-<stage>`` (a stage of connector/stages.py with a hook: validate, embed, plan, apply,
  verify): the file holds a marker; that stage raises, as a bug would, for a window holding a
  record or text with the marker. Stands in for inputs that break a stage where no real one is
  known (poison quarantine).

The names that name a stage (``poison-<stage>``, ``hold-apply``, ``crash-after-apply``) are made
from :class:`connector.stages.Stage`, the names the processor's dead letters use too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from connector.stages import Stage

log = logging.getLogger(__name__)

HOLD_APPLY = f"hold-{Stage.APPLY}"
CRASH_AFTER_APPLY = f"crash-after-{Stage.APPLY}"


def poison_name(stage: Stage) -> str:
    """The failpoint that breaks ``stage`` for a marked record."""
    return f"poison-{stage}"


class WrittenOp(Protocol):
    """What the ``write-behind`` writer reads of an op a window applied
    (connector.domain.operations.Op, of a tier above this module)."""

    @property
    def kind(self) -> str: ...

    @property
    def points(self) -> Mapping[Any, Any] | None: ...

    def point_ids(self) -> list[Any]: ...


class QdrantCall(Protocol):
    """A Qdrant call through the retrying caller (connector.qdrant.retrying.RetryingClient.call)."""

    def __call__(self, what: str, fn: Callable[[], Awaitable[Any]]) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class Written:
    """A window's applied ops, handed to the ``write-behind`` writer: ``payload_checked`` says
    whether its read-back compares payloads (a re-embed window's does not)."""

    client: AsyncQdrantClient
    call: QdrantCall
    collection: str
    ops: Sequence[WrittenOp]
    payload_checked: bool


async def write_behind(written: Written) -> None:
    """Failpoint ``write-behind``: another writer changes a point the window just wrote, before
    its read-back (which must then say mismatch): its payload, or where the window checks no
    payload (re-embeds), a dense vector it wrote, reversed."""
    client, collection = written.client, written.collection
    if written.payload_checked:
        target = next((pid for op in written.ops if op.kind != "delete" for pid in op.point_ids()), None)
        if target is not None:
            log.warning("failpoint write-behind: changing point %s behind the connector's back", target)
            await written.call("set_payload", lambda: client.set_payload(
                collection, {"written_behind": True}, points=[target], wait=True))
        return
    vector_written = next(((pid, name, vector) for op in written.ops if op.points is not None
                           for pid, data in op.points.items() for name, vector in data.vectors.items()
                           if isinstance(vector, tuple) and len(set(vector)) > 1), None)
    if vector_written is not None:
        pid, name, vector = vector_written
        log.warning("failpoint write-behind: changing vector %r of point %s behind the connector's back", name, pid)
        changed = list(reversed(vector))
        point = qm.PointVectors(id=pid, vector=changed if name == "" else {name: changed})  # "": the unnamed one
        await written.call("update_vectors", lambda: client.update_vectors(collection, [point], wait=True))


WriteBehind = Callable[[Written], Awaitable[None]]


class Failpoints:
    def __init__(self, folder: Path | None, write_behind: WriteBehind = write_behind) -> None:
        """``write_behind`` is the writer of failpoint ``write-behind`` (a test may give its own)."""
        self._folder = folder
        self._write_behind = write_behind

    def active(self, name: str) -> bool:
        return self._folder is not None and (self._folder / name).exists()

    def crash_if_active(self, name: str) -> None:
        """Exit at once, as SIGKILL would: no cleanup, no commit, no flush; the code a shell reports
        for SIGKILL, which no command of the connector uses (connector/exit_codes.py)."""
        if self.active(name):
            os._exit(128 + signal.SIGKILL)

    def raise_if_active(self, name: str) -> None:
        """Raise, as a bug would, while ``name`` is active."""
        if self.active(name):
            raise RuntimeError(f"failpoint: {name}")

    async def hold(self, name: str) -> None:
        """Wait while ``name`` is active."""
        if self.active(name):
            log.warning("failpoint %s: holding", name)
        while self.active(name):  # noqa: ASYNC110 - a file another process removes
            await asyncio.sleep(0.05)

    def poison(self, stage: Stage, values: list[bytes | None] | list[str]) -> None:
        """Raise if ``poison-<stage>`` is active and one of ``values`` holds its marker."""
        if self._folder is None:
            return
        path = self._folder / poison_name(stage)
        try:
            marker = path.read_text().strip()
        except FileNotFoundError:
            return
        for value in values:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")
            if marker and marker in text:
                raise RuntimeError(f"failpoint: {poison_name(stage)} (a record that breaks this stage)")

    async def stage(self, name: Stage, values: list[bytes | None] | list[str], written: Written | None = None) -> None:
        """The one fault hook at the start of a window's stage ``name`` (validate, plan, apply,
        verify; embed's is in the model call): ``poison-<stage>``; before ``apply`` also
        ``hold-apply``; before ``verify`` (the batch is applied) also ``crash-after-apply`` and
        ``write-behind``, which changes what the window ``written``."""
        if name is Stage.APPLY:
            await self.hold(HOLD_APPLY)
        if name is Stage.VERIFY:
            self.crash_if_active(CRASH_AFTER_APPLY)
            if written is not None and self.active("write-behind"):
                await self._write_behind(written)
        self.poison(name, values)

    def qdrant_fault(self) -> Exception | None:
        """The client-layer error a Qdrant call should fail with now, if any."""
        if self.active("qdrant-unavailable"):
            return ConnectionRefusedError("failpoint: qdrant-unavailable")
        if self.active("qdrant-timeout"):
            return httpx.ReadTimeout("failpoint: qdrant-timeout")
        return None
