"""The runner applies independent windows at the same time and confirms every window in order
(connector/stream/pipeline.py). The window processor here is a stand-in that records when
each window starts and lets the test decide when it ends; what is under test is the runner's
scheduling and its confirmations (Faust's acknowledgements of each event)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from connector.errors import WindowAbandoned
from connector.settings import Settings
from connector.stream.pipeline import Runner, Window, WindowsInHand
from connector.stream.window.items import Item, Record, WindowResult
from connector.stream.window.parse import parse_record


class Message:
    def __init__(self, offset: int, log: list[str]) -> None:
        self.topic, self.partition, self.offset, self.acked = "patches", 0, offset, False
        self.tp = ("patches", 0)
        self.log = log


class Event:
    def __init__(self, offset: int, log: list[str]) -> None:
        self.message = Message(offset, log)

    def ack(self) -> None:
        self.message.acked = True
        self.message.log.append(f"ack {self.message.offset}")


class Processor:
    """Records each window's start; each window ends when the test sets its gate."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.gates: dict[int, asyncio.Event] = {}
        self.fail: set[int] = set()

    async def process_quarantining(self, records: Sequence[Record], _parsed: list[Item] | None = None) -> WindowResult:
        first = records[0].offset
        self.log.append(f"start {first}")
        await self.gates.setdefault(first, asyncio.Event()).wait()
        if first in self.fail:
            raise WindowAbandoned("gave up at shutdown")
        self.log.append(f"applied {first}")
        return WindowResult()


def window(offset: int, ids: list[int], log: list[str]) -> Window:
    value = json.dumps({"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": ids,
                        "payload": {"a": 1}}).encode()
    record = Record("patches", 0, offset, value)
    return Window([Event(offset, log)], [record], [parse_record(0, record, Settings(), "patch")])


async def commit() -> None:
    return None


def runner(log: list[str], in_flight: int = 2, stopping: Any = lambda: False) -> tuple[Runner, Processor]:
    processor = Processor(log)
    app: Any = SimpleNamespace(consumer=SimpleNamespace(commit=commit, highwater=lambda _tp: None), producer=None)
    settings = Settings(windows_in_flight=in_flight)
    made = Runner(app, settings, processor, WindowsInHand(), stopping=stopping,  # type: ignore[arg-type]
                  crash_after_confirm=lambda: None)
    return made, processor


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def drive(made: Runner, windows: list[Window], steps: Any) -> None:
    task = asyncio.ensure_future(made.run())
    try:
        for w in windows:
            await made.queue.put(w)
        await settle()
        await steps()
        await asyncio.wait_for(made.queue.join(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_independent_window_runs_beside_the_one_before_and_is_confirmed_after_it() -> None:
    log: list[str] = []
    made, processor = runner(log)

    async def steps() -> None:
        assert log == ["start 10", "start 20"]  # the second started while the first is applied
        processor.gates[20].set()  # the second is done first...
        await settle()
        assert "ack 20" not in log  # ...but waits for the first to be confirmed
        processor.gates[10].set()

    await drive(made, [window(10, [1, 2], log), window(20, [3], log)], steps)
    assert log == ["start 10", "start 20", "applied 20", "applied 10", "ack 10", "ack 20"]


async def test_a_window_that_shares_a_point_waits_for_the_one_before() -> None:
    log: list[str] = []
    made, processor = runner(log)

    async def steps() -> None:
        assert log == ["start 10"]
        processor.gates[10].set()
        await settle()
        processor.gates[20].set()

    await drive(made, [window(10, [1, 2], log), window(20, [2, 3], log)], steps)
    assert log == ["start 10", "applied 10", "ack 10", "start 20", "applied 20", "ack 20"]


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_no_more_windows_run_at_once_than_allowed(in_flight: int) -> None:
    log: list[str] = []
    made, processor = runner(log, in_flight)

    async def steps() -> None:
        assert log == ["start 10", "start 20"][:in_flight]
        for offset in (10, 20, 30):
            processor.gates[offset] = processor.gates.get(offset) or asyncio.Event()
            processor.gates[offset].set()
            await settle()

    await drive(made, [window(10, [1], log), window(20, [2], log), window(30, [3], log)], steps)
    assert [line for line in log if line.startswith("ack")] == ["ack 10", "ack 20", "ack 30"]


async def test_a_window_applied_beside_an_abandoned_one_is_abandoned_too() -> None:
    """Faust must not commit past the abandoned window: the one after it is replayed with it."""
    log: list[str] = []
    made, processor = runner(log)
    first, second = window(10, [1], log), window(20, [2], log)
    processor.fail.add(10)

    async def steps() -> None:
        processor.gates[20].set()
        await settle()
        processor.gates[10].set()

    await drive(made, [first, second], steps)
    assert log == ["start 10", "start 20", "applied 20"]  # nothing acknowledged
    assert first.events[0].message.acked  # marked: never acknowledged
    assert second.events[0].message.acked
    assert made.abandoning


async def test_a_window_abandoned_after_the_one_in_flight_leaves_that_one_confirmed() -> None:
    """Shutdown begins while a window is applied: the next one is abandoned unstarted, the one
    applied is still confirmed (only windows after an abandoned one must be replayed)."""
    log: list[str] = []
    stopping = [False]
    made, processor = runner(log, stopping=lambda: stopping[0])
    first, second = window(10, [1], log), window(20, [2], log)

    task = asyncio.ensure_future(made.run())
    try:
        await made.queue.put(first)
        await settle()
        stopping[0] = True
        await made.queue.put(second)
        await settle()
        processor.gates[10].set()
        await asyncio.wait_for(made.queue.join(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert log == ["start 10", "applied 10", "ack 10"]
    assert second.events[0].message.acked  # marked: never acknowledged
