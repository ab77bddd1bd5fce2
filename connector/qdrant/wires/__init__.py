"""The wires: one object per way of speaking to Qdrant, each owning encode, send, retrieve and decode.

``models`` (qdrant-client's models and calls: local mode, and the reference), ``rest`` (JSON
written from the ops, answers parsed by simdjson) and ``grpc`` (protobuf built from the ops and
read as it comes), behind the interface of ``base``; ``client_internals`` is all they use of
qdrant-client beyond its public calls. The wire is chosen here, once, where the client is made.
"""

from typing import Any

from qdrant_client import AsyncQdrantClient

from connector.qdrant.wires.base import Wire, request_ops, shard_target
from connector.qdrant.wires.grpc import GrpcWire
from connector.qdrant.wires.models import ModelsWire
from connector.qdrant.wires.rest import RestWire
from connector.settings import Settings

__all__ = ["WIRES", "GrpcWire", "ModelsWire", "RestWire", "Wire", "request_ops", "shard_target", "wire_for"]

WIRES: tuple[type[Wire[Any, Any]], ...] = (ModelsWire, RestWire, GrpcWire)


def wire_for(settings: Settings, client: AsyncQdrantClient) -> Wire[Any, Any]:
    """How the connector speaks to the Qdrant of ``settings`` through ``client``: local mode takes
    the models; a server, REST or gRPC as ``QCC_QDRANT_PREFER_GRPC`` says."""
    if not settings.qdrant_url:  # "" is local mode, as make_client has it
        return ModelsWire(client)
    return GrpcWire(client) if settings.qdrant_prefer_grpc else RestWire(client)
