"""The app's Faust monitor keeps no statistics of every event, and the rest of Faust's monitoring."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from faust.types import TP

from connector.settings import Settings
from connector.stream.app import create_app
from connector.stream.quiet_monitor import QuietMonitor

pytestmark = pytest.mark.quick


def test_the_app_counts_no_event_in_faust_monitor_but_keeps_commits(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "state", qdrant_path=tmp_path / "qdrant"))
    monitor = app.monitor
    assert isinstance(monitor, QuietMonitor)
    tp = TP("patches", 0)
    message: Any = object()  # the quiet hooks never touch it (Faust's would set its time_in)
    for _ in range(3):
        monitor.on_message_in(tp, 7, message)
        assert monitor.on_stream_event_in(tp, 7, cast(Any, None), cast(Any, None)) is None
        monitor.on_stream_event_out(tp, 7, cast(Any, None), cast(Any, None), None)
        monitor.on_message_out(tp, 7, message)
    assert (monitor.messages_received_total, monitor.events_total, monitor.messages_active) == (0, 0, 0)
    monitor.on_tp_commit({tp: 8})
    assert monitor.tp_committed_offsets[tp] == 8
