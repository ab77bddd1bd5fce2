"""Prometheus metrics: one ``qdrant_connector_`` prefix, base units, no unbounded labels.

Labels are topics, partitions, collections, operation types, Qdrant call names, dead-letter
reasons and verification outcomes: all bounded by configuration or by code. Point ids and
batch ids never become labels.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from connector.domain.records import DeadLetterRecord, VerificationEvent

REGISTRY = CollectorRegistry(auto_describe=True)
PREFIX = "qdrant_connector"

EVENTS_CONSUMED = Counter(
    f"{PREFIX}_events_consumed", "Records consumed from an input topic", ["topic"], registry=REGISTRY
)
BATCHES_APPLIED = Counter(
    f"{PREFIX}_batches_applied", "Verification events published (one per batch)", ["collection"], registry=REGISTRY
)
OPERATIONS = Counter(f"{PREFIX}_operations", "Events applied, per operation type", ["op"], registry=REGISTRY)
POINTS_TOUCHED = Counter(f"{PREFIX}_points_touched", "Points named by applied batches", registry=REGISTRY)
DEAD_LETTERS = Counter(f"{PREFIX}_dead_letters", "Records sent to the dead-letter topic", ["reason"], registry=REGISTRY)
RETRIES = Counter(
    f"{PREFIX}_qdrant_retries", "Qdrant calls retried after a transient error", ["call"], registry=REGISTRY
)
UPDATES_NOT_APPLIED = Counter(
    f"{PREFIX}_qdrant_updates_not_applied", "Batch requests Qdrant answered as queued, not applied "
    "(wait_timeout, acknowledged); each is sent again", registry=REGISTRY
)
VERIFICATIONS = Counter(f"{PREFIX}_verifications", "Verification outcomes", ["status"], registry=REGISTRY)
WINDOW_EVENTS = Histogram(f"{PREFIX}_window_events", "Records per window (window fill)", ["topic"], registry=REGISTRY,
                          buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000))
EMBED_SECONDS = Histogram(f"{PREFIX}_embedding_seconds", "Time of one embedding call", ["model"], registry=REGISTRY)
TEXTS_EMBEDDED = Counter(f"{PREFIX}_texts_embedded", "Texts embedded (rate = texts/s)", ["model"], registry=REGISTRY)
QDRANT_SECONDS = Histogram(f"{PREFIX}_qdrant_request_seconds", "Latency of Qdrant calls", ["call"], registry=REGISTRY)
END_TO_END_SECONDS = Histogram(f"{PREFIX}_end_to_end_seconds", "Oldest event of a batch: produce time to confirmation",
                               registry=REGISTRY, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
CONSUMER_LAG = Gauge(f"{PREFIX}_consumer_lag", "Records of an assigned partition not yet applied and committed "
                     "(log end - the group's committed offset), from the assignment on", ["topic", "partition"],
                     registry=REGISTRY)
REEMBED_WAIT_SECONDS = Histogram(f"{PREFIX}_reembed_wait_seconds",
                                 "Time a re-embed reading payload text waited for earlier patches to be applied",
                                 registry=REGISTRY, buckets=(0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
REEMBED_WAIT_CUT_SHORT = Counter(f"{PREFIX}_reembed_wait_cut_short", "Re-embed windows that read texts before "
                                 "earlier patches were applied, because a rebalance began", registry=REGISTRY)
REEMBED_RECHECKS = Counter(f"{PREFIX}_reembed_rechecks", "Re-embeds published again to be re-done after earlier "
                           "patches (their window's wait was cut short)", registry=REGISTRY)
WINDOWS_QUEUED = Gauge(f"{PREFIX}_windows_queued", "Windows taken and parsed, waiting behind the one being applied "
                       "(stays 1 while that one waits for Qdrant or for earlier patches)", ["topic"], registry=REGISTRY)
CDC_SKIPPED = Counter(f"{PREFIX}_cdc_skipped", "Debezium records with nothing to apply (heartbeat, schema_change, "
                      "tombstone, truncate, unchanged)", ["reason"], registry=REGISTRY)
READY = Gauge(f"{PREFIX}_ready", "1 when the worker is assigned partitions and Qdrant answers", registry=REGISTRY)


def call_name(what: str) -> str:
    """The bounded part of a call description such as ``retrieve(docs, 12 ids)``."""
    return what.split("(", 1)[0]


def observe_window(topic: str, consumed: int, verifications: Sequence[VerificationEvent],
                   dead_letters: Sequence[DeadLetterRecord]) -> None:
    """Count one published window: its records, batches, operations, outcomes, dead letters."""
    EVENTS_CONSUMED.labels(topic).inc(consumed)
    WINDOW_EVENTS.labels(topic).observe(consumed)
    for verification in verifications:
        BATCHES_APPLIED.labels(verification.collection or "none").inc()
        VERIFICATIONS.labels(verification.verification.status).inc()
        POINTS_TOUCHED.inc(verification.points.count)
        for op, count in verification.operations.items():
            OPERATIONS.labels(op).inc(count)
        if verification.latency.max_event_age_seconds is not None:
            END_TO_END_SECONDS.observe(verification.latency.max_event_age_seconds)
    for dead in dead_letters:
        DEAD_LETTERS.labels(dead.error.code).inc()
