"""The worker's event loop follows QCC_EVENT_LOOP."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from connector.cli import new_event_loop
from connector.settings import Settings

pytestmark = pytest.mark.quick


@pytest.mark.parametrize(("setting", "kind"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)])
def test_the_worker_loop_is_the_one_set(setting: str, kind: type) -> None:
    loop = new_event_loop(Settings(event_loop=setting))
    try:
        assert isinstance(loop, kind)
        assert isinstance(loop, uvloop.Loop) == (setting == "uvloop")
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()


def test_the_default_is_uvloop() -> None:
    assert Settings().event_loop == "uvloop"


def test_without_uvloop_the_worker_runs_on_asyncio_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """Where uvloop has no build (Windows: the dependency is left out there), the default still runs."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an absent package looks like to import
    loop = new_event_loop(Settings())
    try:
        assert not isinstance(loop, uvloop.Loop)
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()
    assert "uvloop is not installed" in caplog.text
