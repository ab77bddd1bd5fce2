"""What the connector publishes always fits what the producer and the topics accept. Pure.

A record the broker refuses (larger than the producer's ``max_request_size`` or the topic's
``max.message.bytes``) would fail the window after it was applied; the restart would replay
it and fail again: a crash loop no setting fixes. So every outgoing record is sized first.

Dead letters, three forms, the first that fits ``limit`` (value plus headers):

1. ``envelope``: the JSON dead-letter record, the original bytes in ``original_value_base64``
   (self-describing; the schema in ``schemas/dead_letter.schema.json``). Base64 grows the
   original by a third.
2. ``record_value``: the original bytes, not grown, as the record's value, as Kafka Connect's
   dead-letter queues do; the JSON envelope (without the original) in the header
   ``qcc.dead_letter``. For originals too large for form 1.
3. ``omitted``: the envelope alone, with the original's size and sha256 and its source
   topic/partition/offset, for an original larger than the limit itself (the broker still
   holds it there until retention).

Every form carries the Kafka Connect context headers (``__connect.errors.*``) and
``qcc.dead_letter_form``. Verification events bound their lists (ids, mismatches, dead-letter
references) with counts and digests already; :func:`verification_value` compacts them further
if a batch still does not fit.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Literal

from connector.domain.records import DeadLetterRecord, OffsetRange, VerificationEvent

Headers = list[tuple[str, bytes]]
DeadLetterForm = Literal["envelope", "record_value", "omitted"]
HEADER_ENVELOPE = "qcc.dead_letter"
HEADER_FORM = "qcc.dead_letter_form"
RECORD_OVERHEAD = 512  # key, timestamps and framing of one record, generously


def _headers_size(headers: Headers) -> int:
    return sum(len(name) + len(value) + 8 for name, value in headers)


def context_headers(record: DeadLetterRecord) -> Headers:
    """Context headers in the shape Kafka Connect uses for its dead-letter queues."""
    return [
        ("__connect.errors.topic", record.source.topic.encode()),
        ("__connect.errors.partition", str(record.source.partition).encode()),
        ("__connect.errors.offset", str(record.source.offset).encode()),
        ("__connect.errors.exception.class.name", record.error.code.encode()),
        ("__connect.errors.exception.message", record.error.message.encode()[:4000]),
        ("qcc.schema_version", b"1"),
    ]


def dead_letter_message(record: DeadLetterRecord, original: bytes, limit: int) -> tuple[bytes, Headers, DeadLetterForm]:
    """The value and headers of a dead letter in the first form that fits ``limit``."""
    bare = record.model_copy(update={"original_value_base64": None, "original_value_bytes": len(original),
                                     "original_value_sha256": hashlib.sha256(original).hexdigest()})
    base = context_headers(record)
    envelope = bare.model_copy(update={"original_value_base64": base64.b64encode(original).decode(),
                                       "original_form": "envelope"})
    value = envelope.model_dump_json().encode()
    headers = [*base, (HEADER_FORM, b"envelope")]
    if len(value) + _headers_size(headers) + RECORD_OVERHEAD <= limit:
        return value, headers, "envelope"
    in_header = bare.model_copy(update={"original_form": "record_value"}).model_dump_json().encode()
    headers = [*base, (HEADER_FORM, b"record_value"), (HEADER_ENVELOPE, in_header)]
    if len(original) + _headers_size(headers) + RECORD_OVERHEAD <= limit:
        return original, headers, "record_value"
    marker = bare.model_copy(update={"original_form": "omitted"}).model_dump_json().encode()
    return marker, [*base, (HEADER_FORM, b"omitted")], "omitted"


def verification_value(event: VerificationEvent, limit: int) -> bytes:
    """The event as JSON within ``limit``: as it is, else without its listed ids, mismatches and
    dead-letter references (their counts and digests stay), else with its offset ranges as one
    span per partition (``ranges_exact`` false)."""
    value = event.model_dump_json().encode()
    if len(value) + RECORD_OVERHEAD <= limit:
        return value
    outcome = event.verification.model_copy(update={"mismatches": [], "changed_by_rejected": [], "unavailable": []})
    compact = event.model_copy(update={"points": event.points.model_copy(update={"ids": None}), "texts_cut": [],
                                       "documents": [], "verification": outcome, "dead_letters": [],
                                       "lists_omitted": True})
    value = compact.model_dump_json().encode()
    if len(value) + RECORD_OVERHEAD <= limit:
        return value
    spans: dict[int, OffsetRange] = {}
    for r in compact.ranges:
        span = spans.setdefault(r.partition, r)
        spans[r.partition] = OffsetRange(partition=r.partition, first_offset=min(span.first_offset, r.first_offset),
                                         last_offset=max(span.last_offset, r.last_offset))
    return compact.model_copy(update={"ranges": [spans[p] for p in sorted(spans)], "ranges_exact": False}
                              ).model_dump_json().encode()


def read_dead_letter(value: bytes, headers: Headers | None) -> tuple[dict[str, Any], bytes | None]:
    """Any form of dead letter back as (the envelope as a dict, the original bytes or None)."""
    found = dict(headers or [])
    form = found.get(HEADER_FORM, b"envelope").decode()
    if form == "record_value":
        return json.loads(found[HEADER_ENVELOPE]), value
    envelope = json.loads(value)
    encoded = envelope.get("original_value_base64")
    return envelope, base64.b64decode(encoded) if encoded is not None else None
