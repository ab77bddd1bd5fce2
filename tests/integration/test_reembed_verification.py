"""A re-embed window verifies the vectors it wrote, not the payload: the patch stream is consumed
beside it and may change a payload between the window's read and its read-back (a CI run saw a
text patch land there while a paused server resumed, and the re-embed window said mismatch).
Driven through the window processor, without a broker, on local mode and the server."""

from __future__ import annotations

from pathlib import Path

from connector.domain.records import VerificationEvent
from connector.embedding.embedder import Embedder
from connector.failpoints import Failpoints, WriteBehind, Written, write_behind
from connector.qdrant import make_client, make_retrying
from connector.stream.window import WindowProcessor
from tests.integration.test_filter_verification import run, settings_for, setup
from tests.qdrant_targets import QdrantTarget

REEMBEDS = [{"schema_version": 1, "kind": "reembed", "collection": "docs", "ids": [1, 2], "text_field": "body"},
            {"schema_version": 1, "kind": "reembed", "collection": "docs",
             "points": [{"id": 3, "text": "a text given inline"}]}]


async def patch_stream_beside(written: Written) -> None:
    """The window's write-behind writer is the patch stream: a text patch of a point the window
    re-embeds, applied between the window's batch and its read-back."""
    await written.client.set_payload(written.collection, {"body": "a newer text"}, points=[2], wait=True)


async def reembed_window(target: QdrantTarget, model_paths: dict[str, str], tmp_path: Path,
                         writer: WriteBehind) -> tuple[WindowProcessor, VerificationEvent]:
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    (failpoints / "write-behind").touch()
    config = settings_for(target, model_paths, failpoints_dir=failpoints)
    client = make_client(config)
    proc = WindowProcessor(config, client, make_retrying(config, client), Embedder(config), "reembed",
                           failpoints=Failpoints(failpoints, writer))
    await setup(proc, 6)
    return proc, await run(proc, REEMBEDS, topic="reembeds")


async def test_a_payload_patched_beside_a_reembed_window_is_not_its_mismatch(
        qdrant_target: QdrantTarget, model_paths: dict[str, str], tmp_path: Path) -> None:
    proc, verification = await reembed_window(qdrant_target, model_paths, tmp_path, patch_stream_beside)
    assert verification.verification.status == "verified", verification.verification
    assert verification.verification.checked_points == 3
    (point,) = await proc.client.retrieve("docs", [2])
    assert point.payload is not None
    assert point.payload["body"] == "a newer text"  # the write did land in between
    await proc.client.close()


async def test_a_vector_changed_behind_a_reembed_window_is_a_mismatch(
        qdrant_target: QdrantTarget, model_paths: dict[str, str], tmp_path: Path) -> None:
    proc, verification = await reembed_window(qdrant_target, model_paths, tmp_path, write_behind)
    outcome = verification.verification
    assert outcome.status == "mismatch", outcome
    assert [m.field for m in outcome.mismatches] == ["vector:"], outcome.mismatches
    assert outcome.mismatches[0].expected != outcome.mismatches[0].actual
    await proc.client.close()
