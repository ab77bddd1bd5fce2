"""The domain, pure and free of IO: events and their wire format, point operations and what they
do to a point, planning, validation, policy and verification.

Modules: ``changes`` (inbound events and their parser), ``records`` (what the connector
publishes: verification events, dead letters), ``operations`` (events as operations),
``semantics`` (what an operation does to a point, the reference model), ``planner``
(coalescing a window's operations), ``validation`` (an event against a collection's
``schema``), ``policy`` (what a topic may do, blast radius, the share of a collection),
``match_all`` (filters that match every point by themselves), ``verifier`` (expected vs read back).
"""

from connector.domain.changes import ChangeEvent, FenceRecord, ReembedEvent, Rejection, parse_change
from connector.domain.operations import Op, op_from_patch, update_vectors_op
from connector.domain.planner import plan, screen_existence
from connector.domain.policy import check_blast_radius, check_policy
from connector.domain.records import VerificationEvent
from connector.domain.schema import CollectionSchema, schema_from_info
from connector.domain.semantics import apply_all, apply_op
from connector.domain.validation import check_event
from connector.domain.verifier import compare, expected_state

__all__ = [
    "ChangeEvent",
    "CollectionSchema",
    "FenceRecord",
    "Op",
    "ReembedEvent",
    "Rejection",
    "VerificationEvent",
    "apply_all",
    "apply_op",
    "check_blast_radius",
    "check_event",
    "check_policy",
    "compare",
    "expected_state",
    "op_from_patch",
    "parse_change",
    "plan",
    "schema_from_info",
    "screen_existence",
    "update_vectors_op",
]
