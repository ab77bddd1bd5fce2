"""One window of Kafka records -> applied Qdrant batches, verification events, dead letters.

:class:`WindowProcessor` (processor.py) runs the stages (connector/stages.py names them), by
these modules: parse, admission and rows, texts, embedding and chunks, filters, readback,
report; quarantine.py finds the records that break a window, footprint.py which windows may be
applied at the same time.
"""

from connector.stream.window.items import Record, WindowResult
from connector.stream.window.processor import WindowProcessor
from connector.stream.window.quarantine import is_infrastructure
from connector.stream.window.report import batch_id_for, offset_ranges

__all__ = ["Record", "WindowProcessor", "WindowResult", "batch_id_for", "is_infrastructure", "offset_ranges"]
