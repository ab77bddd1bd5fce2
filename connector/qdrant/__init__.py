"""Qdrant access: one client factory, one retrying caller, what an answer means, the wires
(how requests and reads are spelled), applying plans with isolation, and the collection catalog.

Layers, each depending only on those before it: ``errors`` and ``request_size`` (pure),
``wires`` (models, REST, gRPC: encode, send, retrieve, decode), ``retrying`` (every call goes
through it), ``client`` (builds them from settings, choosing the wire), ``reads``, ``updates``,
``apply`` and ``catalog`` (built on a :class:`RetryingClient`).
"""

from connector.qdrant.apply import ApplyResult, BatchApplier, FailedEvent, apply_isolating, split_at_filters
from connector.qdrant.catalog import CollectionCatalog
from connector.qdrant.client import check_local_storage, make_client, make_retrying
from connector.qdrant.errors import classify
from connector.qdrant.retrying import Backoff, RetryingClient
from connector.qdrant.wires.models import to_qdrant, to_requests

__all__ = [
    "ApplyResult",
    "Backoff",
    "BatchApplier",
    "CollectionCatalog",
    "FailedEvent",
    "RetryingClient",
    "apply_isolating",
    "check_local_storage",
    "classify",
    "make_client",
    "make_retrying",
    "split_at_filters",
    "to_qdrant",
    "to_requests",
]
