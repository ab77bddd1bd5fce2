"""The worker's event loop follows QCC_EVENT_LOOP."""

from __future__ import annotations

import asyncio

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
