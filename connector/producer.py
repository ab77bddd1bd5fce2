"""The producer SDK moved to :mod:`connector.kafka.producer`; this name stays for the code
written against it (``from connector.producer import ChangeProducer``)."""

import warnings

from connector.kafka.producer import ChangeProducer, build_event, encode_event

__all__ = ["ChangeProducer", "build_event", "encode_event"]

warnings.warn("connector.producer is now connector.kafka.producer", DeprecationWarning, stacklevel=2)
