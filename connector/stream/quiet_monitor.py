"""Faust's monitor without its statistics of every event."""

from __future__ import annotations

from typing import Any

from faust.sensors.monitor import Monitor
from faust.types import TP, EventT, Message, StreamT

__all__ = ["QuietMonitor"]


class QuietMonitor(Monitor):
    """Faust's default monitor counts and times every message and stream event in memory (four
    calls an event, a clock read in three, a runtime kept in a deque) for Faust's web views,
    which the connector turns off (``web_enabled=False``): its metrics are Prometheus's
    (connector/metrics.py). Those four calls were ~3% of the worker's CPU on upserts (py-spy);
    here they do nothing. Faust's other monitor hooks (commits, sends, rebalances) are kept."""

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        return None

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT[Any],
                           event: EventT[Any]) -> dict[str, Any] | None:
        return None

    def on_stream_event_out(self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any],
                            state: dict[str, Any] | None = None) -> None:
        return None

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        return None
