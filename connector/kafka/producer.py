"""Producer SDK for upstream services: build, validate, key and publish change events.

    async with ChangeProducer(Settings()) as producer:
        await producer.set_payload("docs", ids=[42], payload={"price": 10})
        await producer.reembed("docs", ids=[42], text_field="body", vector_name="dense")
        await producer.set_text("docs", 42, "body", "new text", vector_name="dense")  # both at once

Every event is validated by the same models the connector parses with, before it is sent.
Records are keyed ``collection/point-id`` when an event names one point, so that all events
of a point land in one partition and are applied in order. Events on several points, or on
a filter, are keyed ``collection/*``: their order relative to single-point events of the
same points holds only when the topic has one partition (see docs/design.md, "Ordering").
A re-embed that reads its text from the payload sees the patches sent before it (the
worker waits for them); ``set_text`` sends a text change and its re-embed together.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from connector.domain.changes import (
    PATCH_ADAPTER,
    REEMBED_ADAPTER,
    ChangeEvent,
    ReembedEvent,
    Rejection,
    parse_change,
    point_ids_of,
)
from connector.kafka.options import client_options
from connector.settings import Settings


def event_key(event: ChangeEvent) -> bytes:
    ids = point_ids_of(event)
    if len(ids) == 1:
        return f"{event.collection}/{ids[0]}".encode()
    return f"{event.collection}/*".encode()


def build_event(document: dict[str, Any]) -> ChangeEvent:
    """Validate a plain dict as a patch or re-embed event (raises pydantic's ValidationError;
    ValueError for anything but a JSON object)."""
    if not isinstance(document, dict):
        raise ValueError(f"an event is a JSON object, not {type(document).__name__}")
    document = {"schema_version": 1, **document}
    if document.get("kind") == "reembed":
        return REEMBED_ADAPTER.validate_python(document)
    return PATCH_ADAPTER.validate_python(document)


def encode_event(event: ChangeEvent) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


LIMIT_SETTINGS = {"event_too_large": "QCC_MAX_EVENT_BYTES", "too_many_ids": "QCC_MAX_IDS_PER_EVENT"}


def checked_event(document: Any, settings: Settings) -> ChangeEvent:
    """``document`` as an event the worker will take: validated like :func:`build_event`, then
    encoded as it will be sent and parsed as the worker parses it, so that what the worker would
    dead-letter for its form (too large, too many ids) is refused before anything is sent
    (ValueError saying why and which setting sets the limit)."""
    event = build_event(document)
    stamped = {"produced_at": datetime.now(timezone.utc)}  # as send() stamps it: part of the size
    sent = event if event.produced_at is not None else event.model_copy(update=stamped)
    parsed = parse_change(encode_event(sent), expect="reembed" if isinstance(event, ReembedEvent) else "patch",
                          max_event_bytes=settings.max_event_bytes, max_ids_per_event=settings.max_ids_per_event)
    if isinstance(parsed, Rejection):
        raise ValueError(f"{parsed.message} ({LIMIT_SETTINGS.get(parsed.code, parsed.code)})")
    return event


class ChangeProducer:
    """An idempotent aiokafka producer with typed helpers for every operation."""

    def __init__(self, settings: Settings, **producer_options: Any) -> None:
        self.settings = settings
        # any event the worker takes (QCC_MAX_EVENT_BYTES) can be sent, with room for key and framing
        options = {"acks": "all", "enable_idempotence": True, "linger_ms": 5,
                   "max_request_size": settings.max_event_bytes + 16_384, **producer_options}
        self._producer = AIOKafkaProducer(**client_options(settings), **options)

    async def __aenter__(self) -> ChangeProducer:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()  # a producer that could not start is still to be closed
            raise
        return self

    async def __aexit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType]) -> None:
        await self._producer.stop()

    def topic_for(self, event: ChangeEvent) -> str:
        return self.settings.reembed_topic if isinstance(event, ReembedEvent) else self.settings.patch_topic

    async def send(self, event: ChangeEvent | dict[str, Any], *, wait: bool = True) -> Any:
        """Publish one event; with ``wait`` returns the broker's RecordMetadata, else a future."""
        if isinstance(event, dict):
            event = build_event(event)
        if event.produced_at is None:
            event = event.model_copy(update={"produced_at": datetime.now(timezone.utc)})
        future = await self._producer.send(self.topic_for(event), encode_event(event), key=event_key(event))
        return await future if wait else future

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> RecordMetadata:
        """Publish bytes as they are (tests and replays of dead letters)."""
        return await self._producer.send_and_wait(topic, value, key=key)

    async def flush(self) -> None:
        await self._producer.flush()

    # typed helpers, one per operation

    async def upsert(self, collection: str, points: list[dict[str, Any]], **extra: Any) -> Any:
        return await self.send({"op": "upsert", "collection": collection, "points": points, **extra})

    async def delete(self, collection: str, **selector: Any) -> Any:
        return await self.send({"op": "delete", "collection": collection, **selector})

    async def set_payload(self, collection: str, payload: dict[str, Any], **selector: Any) -> Any:
        return await self.send({"op": "set_payload", "collection": collection, "payload": payload, **selector})

    async def overwrite_payload(self, collection: str, payload: dict[str, Any], **selector: Any) -> Any:
        return await self.send({"op": "overwrite_payload", "collection": collection, "payload": payload, **selector})

    async def delete_payload(self, collection: str, keys: list[str], **selector: Any) -> Any:
        return await self.send({"op": "delete_payload", "collection": collection, "keys": keys, **selector})

    async def clear_payload(self, collection: str, **selector: Any) -> Any:
        return await self.send({"op": "clear_payload", "collection": collection, **selector})

    async def update_vectors(self, collection: str, points: list[dict[str, Any]]) -> Any:
        return await self.send({"op": "update_vectors", "collection": collection, "points": points})

    async def delete_vectors(self, collection: str, vector_names: list[str], **selector: Any) -> Any:
        return await self.send(
            {"op": "delete_vectors", "collection": collection, "vector_names": vector_names, **selector}
        )

    async def reembed(self, collection: str, **fields: Any) -> Any:
        """Publish a re-embed. One that reads its text from the payload (``text_field``) is sent
        after every patch sent before it is in the log (a flush), so that the worker, which waits
        for those patches to be applied before reading texts, sees them all."""
        if "text_field" in fields:
            await self.flush()
        return await self.send({"kind": "reembed", "collection": collection, **fields})

    async def set_text(self, collection: str, point_id: int | str, field: str, text: str, *,
                       vector_name: str | None = None, model: str | None = None) -> Any:
        """The safe way to change a document's text: set it in the payload, then re-embed the
        point from that same text, inline, so the vector never depends on which topic is read
        first. Returns the re-embed's RecordMetadata."""
        await self.set_payload(collection, {field: text}, ids=[point_id])
        target = {k: v for k, v in (("vector_name", vector_name), ("model", model)) if v is not None}
        return await self.reembed(collection, points=[{"id": point_id, "text": text}], **target)
