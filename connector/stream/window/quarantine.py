"""Poison-record quarantine: a window that fails for what may be a record's fault is cut in
halves, processed in order, until the record(s) that fail alone are found; they are
dead-lettered as ``poison_record`` with the failure, the rest applied. Replaying an applied
part is safe (assignments, same order). When more than half of the window fails alone, it is
not its records: the first failure is raised (and the worker exits; the window is replayed)."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiokafka.errors import KafkaError

from connector.errors import ConfigurationError, StorageError, WindowAbandoned
from connector.stages import Stage
from connector.stream.window.items import Record, WindowResult

__all__ = ["is_infrastructure", "poison_message", "process_quarantining"]

log = logging.getLogger(__name__)

Process = Callable[[Sequence[Record]], Awaitable[WindowResult]]
Poisoned = Callable[[Record, str], WindowResult]


def is_infrastructure(exc: BaseException) -> bool:
    """Failures that are no record's fault: local storage, configuration, the broker, shutdown."""
    return isinstance(exc, (StorageError, ConfigurationError, WindowAbandoned, KafkaError, asyncio.CancelledError,
                            MemoryError))


def poison_message(stage: Stage, exc: BaseException) -> str:
    """What broke, where: the stage (``failed in stage apply (the Qdrant request)``), the error
    and the innermost frame."""
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = f" (in {where.name}, {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"failed in stage {stage} ({stage.doing}): {type(exc).__name__}: {exc}{place}"[:4000]


async def process_quarantining(process: Process, poisoned: Poisoned, stage: Callable[[], Stage],
                               records: Sequence[Record],
                               first: Callable[[], Awaitable[WindowResult]] | None = None) -> WindowResult:
    """``process(records)``, quarantining the records that break it (see the module docstring).
    ``poisoned(record, message)`` reports one such record; ``stage()`` says where it failed;
    ``first()``, when given, makes the first attempt instead (the window parsed ahead)."""
    try:
        return await (first() if first is not None else process(records))
    except Exception as exc:
        if is_infrastructure(exc):
            raise
        log.warning("window of %d records failed (%s: %s); looking for the record that breaks it",
                    len(records), type(exc).__name__, exc)
        result = await _isolate(process, poisoned, stage, list(records))
        count = sum(1 for dead in result.dead_letters if dead.error.code == "poison_record")
        if count > max(1, len(records) // 2):  # ordinary rejections do not count
            raise
        return result


async def _isolate(process: Process, poisoned: Poisoned, stage: Callable[[], Stage],
                   records: list[Record]) -> WindowResult:
    try:
        return await process(records)
    except Exception as exc:
        if is_infrastructure(exc):
            raise
        if len(records) == 1:
            message = poison_message(stage(), exc)
            log.error("record %s:%d:%d breaks the window: %s; dead-lettered", records[0].topic,
                      records[0].partition, records[0].offset, message)
            return poisoned(records[0], message)
        middle = len(records) // 2
        result = await _isolate(process, poisoned, stage, records[:middle])
        result.extend(await _isolate(process, poisoned, stage, records[middle:]))
        return result
