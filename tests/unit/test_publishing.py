"""Everything the connector publishes fits the limit, whatever the input; nothing is lost."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.records import (
    DeadLetterRecord,
    DeadLetterRef,
    ErrorInfo,
    Latency,
    OffsetRange,
    PointsTouched,
    SourceRecord,
    VerificationEvent,
    VerificationOutcome,
)
from connector.kafka.publishing import (
    HEADER_FORM,
    RECORD_OVERHEAD,
    dead_letter_message,
    read_dead_letter,
    verification_value,
)

LIMIT = 1_000_000


def dead(original: bytes, message: str = "not JSON") -> DeadLetterRecord:
    import base64

    return DeadLetterRecord(error=ErrorInfo(code="invalid_json", message=message),
                            source=SourceRecord(topic="patches", partition=3, offset=41, key="docs/5"),
                            original_value_base64=base64.b64encode(original).decode(),
                            failed_at=datetime.now(timezone.utc))


def size(value: bytes, headers: list[tuple[str, bytes]]) -> int:
    return len(value) + sum(len(k) + len(v) + 8 for k, v in headers) + RECORD_OVERHEAD


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([0, 10, 700_000, 749_000, 760_000, 900_000, 999_000, 1_000_000, 1_200_000, 3_000_000]),
       st.sampled_from([65_536, 500_000, LIMIT]))
def test_every_dead_letter_fits_and_keeps_what_it_can(length: int, limit: int) -> None:
    original = bytes(range(256)) * (length // 256) + b"x" * (length % 256)
    value, headers, form = dead_letter_message(dead(original), original, limit)
    assert size(value, headers) <= limit
    envelope, carried = read_dead_letter(value, headers)
    assert dict(headers)[HEADER_FORM].decode() == form == envelope["original_form"]
    assert envelope["source"] == {
        "topic": "patches",
        "partition": 3,
        "offset": 41,
        "timestamp_ms": None,
        "key": "docs/5",
    }
    assert envelope["original_value_bytes"] == length
    assert envelope["original_value_sha256"] == hashlib.sha256(original).hexdigest()
    if form == "omitted":
        assert carried is None
        assert length + RECORD_OVERHEAD > limit - 4096
    else:
        assert carried == original  # the original, byte for byte
    if form == "record_value":
        assert value == original  # not grown by base64
    assert dict(headers)["__connect.errors.offset"] == b"41"


def test_the_report_that_opened_it_a_900_kb_record() -> None:
    original = b"{" + b"a" * 900_000
    value, headers, form = dead_letter_message(dead(original), original, LIMIT)
    assert form == "record_value"
    assert value == original
    assert size(value, headers) <= LIMIT


def verification(dead_letters: int, ranges: int) -> VerificationEvent:
    return VerificationEvent(
        batch_id="b" * 32, collection="docs", topic="patches",
        ranges=[OffsetRange(partition=i % 4, first_offset=2 * i, last_offset=2 * i) for i in range(ranges)],
        event_count=dead_letters, applied_event_count=0, operations={}, request_operations=0, qdrant_requests=1,
        points=PointsTouched(count=5000, ids=list(range(100)), digest="d" * 64), applied_at=datetime.now(timezone.utc),
        latency=Latency(window_seconds=1, embed_seconds=0, apply_seconds=0, verify_seconds=0),
        verification=VerificationOutcome(status="skipped"),
        dead_letters=[DeadLetterRef(partition=0, offset=i, code="invalid_json", message="m" * 500)
                      for i in range(dead_letters)],
        dead_letter_count=dead_letters, worker="w:1",
    )


def test_verification_events_are_compacted_to_fit() -> None:
    small = json.loads(verification_value(verification(3, 3), LIMIT))
    assert len(small["dead_letters"]) == 3
    assert small["ranges_exact"]
    assert not small["lists_omitted"]
    big = json.loads(verification_value(verification(5000, 10), 200_000))  # 5,000 listed refs do not fit
    assert big["lists_omitted"]
    assert big["dead_letters"] == []
    assert big["dead_letter_count"] == 5000
    assert big["points"]["ids"] is None
    assert big["points"]["digest"] == "d" * 64
    assert big["ranges_exact"]
    assert len(big["ranges"]) == 10
    huge = verification_value(verification(10, 40_000), 200_000)  # even the exact ranges do not fit
    spans = json.loads(huge)
    assert len(huge) <= 200_000
    assert not spans["ranges_exact"]
    assert spans["ranges"] == [
        {"partition": p, "first_offset": 2 * p, "last_offset": 2 * (39_996 + p)} for p in range(4)
    ]
